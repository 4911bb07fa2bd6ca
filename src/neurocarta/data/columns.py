"""Turning what a user's data carries into input-table columns.

Every adapter (``npz:``, ``py:``, ``hfds:``, a ``--inputs`` table) gets its labels and its
attributes through these helpers, so that one rule decides what a usable column is and how
class names become integer labels.

The data stage sits below the store (pyproject.toml's stage rules), so the column names the
schema owns (store/schema.py) are spelled out here as plain strings.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError

#: Columns a data source writes itself: a user's array, key or column of that name is not
#: an attribute (``input_id`` numbers the rows; the label comes from ``y``/``class_names``).
RESERVED = ("input_id", "label", "label_name")


def scalar_column(values: Any, n: int) -> tuple[np.ndarray | None, str]:
    """``values`` as one input-table column of length ``n``, or ``(None, why not)``.

    Usable: 1-D booleans, integers, floats and strings (bytes are decoded as UTF-8).
    Anything else (2-D, the wrong length, objects, complex numbers) is refused with the
    reason, for a warning that names the column.
    """
    a = np.asarray(values)
    if a.ndim != 1:
        return None, f"it is {a.ndim}-D {tuple(a.shape)}, not one value per input"
    if len(a) != n:
        return None, f"it has {len(a)} values for {n} inputs"
    if a.dtype.kind in "biuf":
        return a, ""
    if a.dtype.kind == "U":
        return a.astype(object), ""
    if a.dtype.kind == "S":
        try:
            return np.array([v.decode("utf-8") for v in a], dtype=object), ""
        except UnicodeDecodeError:
            return None, "its bytes are not UTF-8 text"
    if a.dtype.kind == "O":
        return _object_column(a)
    return None, f"its dtype {a.dtype} is not bool, int, float or text"


def _object_column(a: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Python objects (a list of attribute values): all text, or all plain numbers or bools;
    ``None`` (or NaN) is a missing value."""
    items = [None if _missing(v) else _plain_scalar(v) for v in a]
    kinds = {type(v) for v in items if v is not None}
    if any(v is _NOT_SCALAR for v in items):
        bad = next(v for v, item in zip(a, items) if item is _NOT_SCALAR)
        return None, f"it holds {type(bad).__name__} values, not one number, bool or text per input"
    if kinds <= {str}:
        return np.array(items, dtype=object), ""
    if str in kinds:
        return None, "it mixes text and numbers"
    if kinds <= {bool}:  # missing values keep it an object column: pandas writes a nullable bool
        return (np.array(items, dtype=bool) if None not in items else np.array(items, dtype=object)), ""
    return pd.to_numeric(pd.Series(items, dtype=object)).to_numpy(), ""


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


_NOT_SCALAR = object()


def _plain_scalar(v: Any) -> Any:
    """A 0-d tensor, numpy scalar or Python scalar as a Python scalar; ``_NOT_SCALAR`` otherwise."""
    if isinstance(v, (bool, int, float, str)):
        return v
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    if hasattr(v, "numel") and v.numel() == 1:  # a one-element tensor
        return v.item()
    return _NOT_SCALAR


def add_attributes(table: pd.DataFrame, columns: dict[str, Any], where: str) -> None:
    """Add each usable column of ``columns`` to ``table`` (in place); warn once per column that
    is not usable or whose name is reserved, naming it and saying why."""
    for name, values in columns.items():
        if name in RESERVED or name in table.columns:
            warnings.warn(f"{where}: {name!r} is not kept as an attribute: the input table already has a "
                          f"{name!r} column; rename it")
            continue
        column, why = scalar_column(values, len(table))
        if column is None:
            warnings.warn(f"{where}: {name!r} is not kept as an attribute: {why}")
            continue
        table[name] = column


def encode_labels(values: Sequence[Any], where: str) -> tuple[np.ndarray, list[str] | None]:
    """Labels as integer classes and their names.

    Integers (or integral floats) stay as they are, ``-1`` meaning unknown, and get no names.
    Text labels become classes numbered in sorted name order, and the names are returned;
    an empty or missing name is an unknown label (``-1``).
    """
    a = values if isinstance(values, np.ndarray) else _object_array(values)
    if a.ndim != 1:
        raise SpecError(f"{where}: labels must be one value per input, got shape {tuple(a.shape)}")
    if a.dtype.kind in "US" or (a.dtype.kind == "O" and all(isinstance(v, str) or _missing(v) for v in a)):
        text = [v.decode("utf-8") if isinstance(v, bytes) else (v if isinstance(v, str) else "") for v in a.tolist()]
        names = sorted({v for v in text if v})
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] if v else -1 for v in text], dtype=np.int64), names
    if a.dtype.kind == "O":  # tensors, numpy scalars, None (unknown)
        a = np.array([-1 if _missing(v) else _plain_scalar(v) for v in a])
    if a.dtype.kind == "f":  # a table's empty cells: unknown
        a = np.where(np.isnan(a), -1, a)
    if a.dtype.kind == "b" or a.dtype.kind not in "iuf" or (a.dtype.kind == "f" and not np.all(a == np.round(a))):
        raise SpecError(f"{where}: labels must be integer classes or class names, got {a.dtype} values "
                        f"such as {a[:3].tolist()}")
    return a.astype(np.int64), None


def _object_array(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` as they are (numpy would unpack tensors or lists)."""
    if hasattr(values, "detach"):  # a tensor of labels (torchvision's targets can be one)
        return values.detach().cpu().numpy()
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def label_columns(table: pd.DataFrame, labels: np.ndarray, names: list[str] | None) -> None:
    """Add ``label`` (and ``label_name`` when the classes have names) to ``table`` in place;
    an unknown label (``-1``) gets an empty name."""
    table["label"] = labels
    if names is not None:
        if labels.max(initial=-1) >= len(names):
            raise SpecError(f"label {int(labels.max())} has no class name: {len(names)} names were given "
                            f"(classes 0..{len(names) - 1}); give one name per class")
        table["label_name"] = [names[i] if i >= 0 else "" for i in labels]


def default_class_names(labels: np.ndarray) -> list[str] | None:
    """``"0", "1", ...`` up to the largest label, for labels that came without names."""
    top = int(labels.max(initial=-1))
    return [str(c) for c in range(top + 1)] if top >= 0 else None
