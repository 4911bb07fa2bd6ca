"""``npz:PATH``: a NumPy ``.npz`` archive of inputs, labels and per-input attributes."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from .base import DataSource
from .columns import add_attributes, default_class_names, encode_labels, label_columns

#: The arrays with a meaning of their own; every other one is a candidate attribute.
INPUTS, LABELS, CLASS_NAMES = "x", "y", "class_names"


class NpzSource(DataSource):
    """``npz:PATH``, saved with ``np.savez(path, x=..., y=..., class_names=..., colour=...)``:

    - ``x``: the inputs, one row per input. ``uint8`` arrays shaped (N, H, W) or
      (N, H, W, C) are images; anything else is fed to the model as float32 arrays.
    - ``y`` (optional): the labels, integer classes (``-1``: unknown) or class names.
    - ``class_names`` (optional): one name per class, giving ``label_name``.
    - every other 1-D array of length N (bool, int, float or text; ``split`` included)
      becomes an input-table column. An array it cannot use (another length, 2-D, objects)
      is left out with one warning line naming it.
    """

    def __init__(self, path: str | Path):
        self.spec = f"npz:{path}"
        arrays, unreadable = _read(Path(path))
        for name in (INPUTS, LABELS, CLASS_NAMES):
            if name in unreadable:
                raise SpecError(f"{path}: {name} holds Python objects, which np.load reads only by unpickling; "
                                f"save it as numbers or text (e.g. np.asarray(values, dtype=str))")
        if INPUTS not in arrays:
            raise SpecError(f"{path} has no array 'x' (it has: {', '.join(arrays) or 'none'}); save inputs as x=...")
        self._x = arrays.pop(INPUTS)
        if self._x.ndim == 0:
            raise SpecError(f"{path}: x is a single value; save one row per input, shaped (N, ...)")
        n = self._x.shape[0]
        self.modality = "image" if self._x.dtype == np.uint8 and self._x.ndim in (3, 4) else "array"
        table = pd.DataFrame({"input_id": np.arange(n, dtype=np.int64)})
        names = _class_names(arrays.pop(CLASS_NAMES, None), path)
        y = arrays.pop(LABELS, None)
        if y is not None:
            if y.ndim != 1 or len(y) != n:
                raise SpecError(f"{path}: x has {n} rows but y has shape {tuple(y.shape)}; "
                                "they must match: save one label per row of x")
            labels, text_names = encode_labels(y, f"{path}: y")
            if text_names is not None and names is not None:
                raise SpecError(f"{path}: y holds class names and class_names is given too; "
                                "save y as integer classes (indices into class_names), or drop class_names")
            names = text_names or names
            label_columns(table, labels, names)
            self.class_names = names or default_class_names(labels)
        elif names is not None:
            warnings.warn(f"{path}: class_names is not used: there is no y to name")
        for name in unreadable:
            warnings.warn(f"{path}: {name!r} is not kept as an attribute: it holds Python objects, which "
                          "np.load reads only by unpickling; save it as text (e.g. arr.astype(str))")
        add_attributes(table, arrays, str(path))
        self._table = table

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        if self.modality == "image":
            return [self._x[i] for i in idx]
        return [np.asarray(self._x[i], dtype=np.float32) for i in idx]


def _read(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every array of the archive, and the names of those that hold pickled objects (never
    unpickled: an npz from elsewhere could run code)."""
    arrays: dict[str, np.ndarray] = {}
    unreadable = []
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise SpecError(f"{path} is a single .npy array, not an .npz archive; save it with "
                                "np.savez(path, x=...)")
            for name in z.files:
                try:
                    arrays[name] = z[name]
                except ValueError as e:
                    if "allow_pickle" not in str(e):
                        raise
                    unreadable.append(name)
    except SpecError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SpecError(f"cannot read {path} as .npz: {e}") from e
    return arrays, unreadable


def _class_names(values: np.ndarray | None, path: str | Path) -> list[str] | None:
    if values is None:
        return None
    if values.ndim != 1 or values.dtype.kind not in "US":
        raise SpecError(f"{path}: class_names must be a 1-D array of text (one name per class), "
                        f"got {values.dtype} of shape {tuple(values.shape)}")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.tolist()]
