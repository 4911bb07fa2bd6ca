"""Errors meant for people.

A :class:`UserError` is something the user can fix (a bad spec, a missing file, a layer
that does not exist). The CLI prints its message as one line on stderr and exits with
code 2. Anything else is a bug and exits with code 1.

There is one family: every error here is a :class:`UserError`, and a ``UserError`` is also
a ``ValueError``, so code that catches bad values the Python way (``except ValueError``, as
scikit-learn's callers do) catches neurocarta's too.
"""

from __future__ import annotations

from typing import Any, Iterable


class UserError(ValueError):
    """Something the user can fix. The message says what is wrong and how to fix it."""


class AtlasError(UserError):
    """An atlas on disk is missing files, corrupt, or does not match its manifest."""


class SpecError(UserError):
    """A model or data spec cannot be resolved."""


class LayerError(UserError):
    """A layer pattern matches no module, or a layer output cannot be captured."""


class NonFiniteError(UserError):
    """A captured activation is NaN or infinite (neurocarta's rule: fail, never store it)."""


class ParameterError(UserError):
    """A parameter of an estimator or a method is not one of its choices or out of its range.

    ``TopoMap``, ``Mapper`` and ``ConceptAtlas`` raise it from ``fit`` (never from
    ``__init__``), through :func:`check_choice` and :func:`check_number`.
    """


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; else a :class:`ParameterError` naming them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 integer: bool = False, low_open: bool = False, high_open: bool = False) -> Any:
    """``value`` as an int (``integer``) or a float, checked against ``[low, high]`` (an end
    is excluded when ``low_open`` / ``high_open``); else a :class:`ParameterError`.

    Booleans and non-integral floats are refused where an integer is wanted, NaN always.
    """
    wanted = "a whole number" if integer else "a number"
    if low is not None and high is not None:
        wanted += f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        wanted += f" {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        wanted += f" {'<' if high_open else '<='} {high:g}"
    try:
        if isinstance(value, bool) or (integer and float(value) != int(value)):
            raise TypeError
        number = int(value) if integer else float(value)
    except (TypeError, ValueError, OverflowError):
        raise ParameterError(f"{name} must be {wanted}, got {value!r}") from None
    outside = number != number  # NaN
    if low is not None:
        outside |= number <= low if low_open else number < low
    if high is not None:
        outside |= number >= high if high_open else number > high
    if outside:
        raise ParameterError(f"{name} must be {wanted}, got {value!r}")
    return number
