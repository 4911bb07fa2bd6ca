"""Errors meant for people.

A :class:`UserError` is something the user can fix (a bad spec, a missing file, a layer
that does not exist). The CLI prints its message as one line on stderr and exits with
code 2. Anything else is a bug and exits with code 1.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix. The message says what is wrong and how to fix it."""


class AtlasError(UserError):
    """An atlas on disk is missing files, corrupt, or does not match its manifest."""


class SpecError(UserError):
    """A model or data spec cannot be resolved."""


class LayerError(UserError):
    """A layer pattern matches no module, or a layer output cannot be captured."""


class NonFiniteError(UserError):
    """A captured activation is NaN or infinite (neurocarta's rule: fail, never store it)."""
