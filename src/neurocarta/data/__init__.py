"""Data sources: built-in sets and adapters for the user's files.

``load_data(spec)`` turns a spec string into a :class:`DataSource`:

==========================  ===================================================
``shapes[:n=..,seed=..]``   synthetic shapes with planted attributes (built in)
``digits``                  scikit-learn's 8x8 digits (built in)
``sentences[:n=..,seed=..]`` template sentences, planted word categories (built in)
``folder:PATH``             one subfolder of images per class (none: unlabelled)
``text:PATH``               one text per line, optional tab + label
``npz:PATH``                arrays ``x``, optional ``y`` and ``class_names``, and
                            any 1-D array of length N as an attribute
``hfds:PATH[:SPLIT]``       a Hugging Face dataset saved with ``save_to_disk``
``py:module:callable``      a map-style torch Dataset of ``x``, ``(x, y)`` or
                            ``(x, y, {attributes})`` items, or a DataSource
==========================  ===================================================

A metadata table (``.csv`` or ``.parquet``) adds attributes to any of them:
:func:`with_inputs` (``extract --inputs``).
"""

from __future__ import annotations

from .base import DataSource
from .metadata import with_inputs
from .subset import SubsetSource, limit_source
from ..errors import SpecError
from ..specs import existing_path, import_callable, parse_options, split_spec

DATA_FORMS = ("shapes, digits, sentences, folder:PATH, text:PATH, npz:PATH, hfds:PATH[:SPLIT] or "
              "py:module:callable")


def load_data(spec: "str | DataSource") -> DataSource:
    """Resolve a data spec (or pass a DataSource through)."""
    if isinstance(spec, DataSource):
        return spec
    kind, rest = split_spec(spec)
    if kind == "shapes":
        from .shapes import ShapesSource

        return _build(ShapesSource, rest, spec)
    if kind == "digits":
        from .digits import DigitsSource

        return _build(DigitsSource, rest, spec)
    if kind == "sentences":
        from .sentences import SentencesSource

        return _build(SentencesSource, rest, spec)
    if kind == "folder":
        from .files import FolderSource

        return FolderSource(existing_path(rest, "folder"))
    if kind == "text":
        from .files import TextSource

        return TextSource(existing_path(rest, "text"))
    if kind == "npz":
        from .npz import NpzSource

        return NpzSource(existing_path(rest, "npz"))
    if kind == "hfds":
        from .hfds import HFDatasetSource

        return HFDatasetSource(rest)
    if kind == "py":
        from .python import TorchDatasetSource

        made = import_callable(rest, "the data spec")()
        if isinstance(made, DataSource):
            return made
        return TorchDatasetSource(made, spec)
    raise SpecError(f"unknown data spec {spec!r}; use {DATA_FORMS}")


def _build(cls, rest: str, spec: str) -> DataSource:
    try:
        options = parse_options(rest)
    except SpecError as e:
        raise SpecError(f"data spec {spec!r}: {e}") from e
    try:
        return cls(**options)
    except SpecError:
        raise
    except TypeError as e:
        raise SpecError(f"data spec {spec!r} has an unknown option ({e}); see the docs of {cls.__name__}") from e
    except ValueError as e:  # a value of the wrong kind that the source's own checks did not word
        raise SpecError(f"data spec {spec!r} has an option value of the wrong kind ({e}); "
                        f"see the docs of {cls.__name__}") from e


__all__ = ["DataSource", "SubsetSource", "limit_source", "load_data", "with_inputs", "DATA_FORMS"]
