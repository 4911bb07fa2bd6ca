"""``py:module:callable`` data: a callable returning a torch ``Dataset`` or a DataSource."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from .base import DataSource
from .columns import add_attributes, default_class_names, encode_labels, label_columns


class TorchDatasetSource(DataSource):
    """Wraps a map-style torch Dataset whose items are ``x``, ``(x, y)`` or ``(x, y, attributes)``.

    ``y`` is an integer class (``-1``: unknown) or a class name; ``attributes`` is a dict of
    one plain value per key (``{"site": "A", "age": 61}``), and each key becomes an
    input-table column (a key an item lacks is a missing value there). Class names come
    from text labels, or else from the dataset's ``classes`` (torchvision's convention) or
    ``class_names`` attribute.

    Building the table reads every item once (labels and attributes live in the items),
    except for ``(x, y)`` items of a dataset with ``targets``, as torchvision's have.

    Tensor or array items are fed to the model as float32 arrays ("array" modality);
    PIL images and uint8 (H, W, 3) arrays are images; strings are text.
    """

    def __init__(self, dataset: Any, spec: str):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise SpecError(f"{spec} must return a map-style Dataset with __len__ and __getitem__ "
                            "(or a neurocarta DataSource)")
        self.dataset = dataset
        self.spec = spec
        n = len(dataset)
        if n == 0:
            raise SpecError(f"{spec} returned an empty dataset")
        first = _parts(dataset[0], spec, 0)
        self.modality = _modality(first[0])
        table = pd.DataFrame({"input_id": np.arange(n, dtype=np.int64)})
        names = list(getattr(dataset, "classes", None) or getattr(dataset, "class_names", None) or []) or None
        labels, attributes = self._labels_and_attributes(first, n)
        if labels is not None:
            codes, text_names = encode_labels(labels, f"{spec}: the labels (y)")
            names = text_names or names
            label_columns(table, codes, names)
            names = names or default_class_names(codes)
        self.class_names = [str(c) for c in names] if names and labels is not None else None
        add_attributes(table, attributes, spec)
        self._table = table

    def _labels_and_attributes(self, first: tuple, n: int) -> tuple[Sequence | None, dict[str, list]]:
        """The labels (``None`` when the items carry none) and the attribute columns."""
        _, y, attrs = first
        if y is None and attrs is None:
            return None, {}
        targets = getattr(self.dataset, "targets", None)
        if attrs is None and targets is not None and len(targets) == n:
            return targets, {}
        labels: list[Any] = []
        columns: dict[str, list] = {}
        for i in range(n):
            _, y, attrs = first if i == 0 else _parts(self.dataset[i], self.spec, i)
            labels.append(y)
            for key, value in (attrs or {}).items():
                columns.setdefault(str(key), [None] * i).append(value)
            for values in columns.values():  # keys this item lacks are missing values
                values.extend([None] * (i + 1 - len(values)))
        return (labels if first[1] is not None else None), columns

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        return [_raw(_parts(self.dataset[int(i)], self.spec, int(i))[0], self.modality) for i in indices]


def _parts(item: Any, spec: str, index: int) -> tuple[Any, Any, dict | None]:
    """``(x, y, attributes)`` of one item; ``y`` and ``attributes`` are ``None`` when absent."""
    if not isinstance(item, (tuple, list)):
        return item, None, None
    if len(item) == 2 and isinstance(item[1], dict):  # (x, attributes): unlabelled
        return item[0], None, item[1]
    if len(item) in (1, 2):
        return item[0], (item[1] if len(item) == 2 else None), None
    if len(item) == 3 and isinstance(item[2], dict):
        return item[0], item[1], item[2]
    raise SpecError(f"{spec}: item {index} is a {len(item)}-tuple ({', '.join(type(v).__name__ for v in item)}); "
                    "return x, (x, y) or (x, y, {attribute: value})")


def _modality(x: Any) -> str:
    if isinstance(x, str):
        return "text"
    if type(x).__module__.startswith("PIL"):
        return "image"
    a = np.asarray(x)
    if a.dtype.kind == "O":
        raise SpecError(f"the dataset's inputs are {type(x).__name__} values; return a tensor, an array, "
                        "a PIL image or a string as x")
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
