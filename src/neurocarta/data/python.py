"""``py:module:callable`` data: a callable returning a torch ``Dataset`` or a DataSource."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from .base import DataSource


class TorchDatasetSource(DataSource):
    """Wraps a map-style torch Dataset whose items are ``x`` or ``(x, y)``.

    Tensor or array items are fed to the model as float32 arrays ("array" modality);
    PIL images and uint8 (H, W, 3) arrays are images; strings are text.
    """

    def __init__(self, dataset: Any, spec: str):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise SpecError(f"{spec} must return a map-style Dataset with __len__ and __getitem__")
        self.dataset = dataset
        self.spec = spec
        n = len(dataset)
        if n == 0:
            raise SpecError(f"{spec} returned an empty dataset")
        first = dataset[0]
        x = first[0] if isinstance(first, (tuple, list)) else first
        self.modality = _modality(x)
        self.class_names = list(getattr(dataset, "classes", []) or []) or None
        labels = None
        if isinstance(first, (tuple, list)) and len(first) > 1:
            targets = getattr(dataset, "targets", None)
            if targets is not None and len(targets) == n:
                labels = np.asarray(targets, dtype=np.int64)
            else:
                labels = np.array([int(dataset[i][1]) for i in range(n)], dtype=np.int64)
        table = pd.DataFrame({"input_id": np.arange(n, dtype=np.int64)})
        if labels is not None:
            table["label"] = labels
        self._table = table

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        out = []
        for i in indices:
            item = self.dataset[int(i)]
            x = item[0] if isinstance(item, (tuple, list)) else item
            out.append(_raw(x, self.modality))
        return out


def _modality(x: Any) -> str:
    if isinstance(x, str):
        return "text"
    if type(x).__module__.startswith("PIL"):
        return "image"
    a = np.asarray(x)
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (1, 3, 4):
        return "image"
    return "array"


def _raw(x: Any, modality: str) -> Any:
    if modality == "text":
        return str(x)
    if modality == "image":
        if type(x).__module__.startswith("PIL"):
            return np.asarray(x.convert("RGB"), dtype=np.uint8)
        return np.asarray(x, dtype=np.uint8)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)
