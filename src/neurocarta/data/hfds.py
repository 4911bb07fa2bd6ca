"""``hfds:PATH[:SPLIT][?image=COL|text=COL,label=COL]``: a Hugging Face ``datasets`` set saved
on local disk (``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``), read through
``datasets.load_from_disk``: nothing is downloaded.

- The input column is the image column (an ``Image`` feature), else the text column (a
  string feature); with several candidates, ``?image=COL`` or ``?text=COL`` picks one, and
  a text column named ``text`` wins among strings.
- The label is the ``ClassLabel`` column (its ``names`` become the class names), else a
  column named ``label``; ``?label=COL`` picks one among several.
- Every other column of one plain value per row (bool, int, float, text, a second
  ``ClassLabel`` as its names) becomes an input-table attribute; nested or list columns
  are left out with one warning each.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError

try:
    import datasets
except ImportError as e:  # an optional extra: say how to get it, in one line
    raise SpecError("hfds: data needs the datasets package: pip install 'neurocarta[hf]'") from e
from .base import DataSource
from .columns import add_attributes, default_class_names, encode_labels, label_columns

FORM = "hfds:PATH[:SPLIT][?image=COL|text=COL,label=COL]"
#: ``Value`` dtypes of one plain value per row.
_TEXT = {"string", "large_string"}
_PLAIN = _TEXT | {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64"}


def parse_hfds(rest: str) -> tuple[Path, str | None, dict[str, str]]:
    """``PATH[:SPLIT][?key=value,...]`` -> (path, split or None, choices)."""
    where, _, query = rest.partition("?")
    choices: dict[str, str] = {}
    for part in filter(None, query.split(",")):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in ("image", "text", "label") or not value.strip():
            raise SpecError(f"cannot read {part!r} in hfds:{rest}; choose columns with ?image=COL, ?text=COL "
                            f"or label=COL ({FORM})")
        choices[key.strip()] = value.strip()
    if "image" in choices and "text" in choices:
        raise SpecError(f"hfds:{rest} names both an image and a text column; pick one input column")
    path, split = Path(where).expanduser(), None
    if not path.exists() and ":" in where:  # PATH:SPLIT (a path may itself hold a colon)
        head, _, split = where.rpartition(":")
        path = Path(head).expanduser()
    if not where or not path.exists():
        raise SpecError(f"hfds path {where!r} does not exist; give the folder written by save_to_disk ({FORM})")
    return path, split or None, choices


class HFDatasetSource(DataSource):
    """A local Hugging Face dataset (see the module docstring for the columns it reads)."""

    def __init__(self, rest: str):
        self.spec = f"hfds:{rest}"
        path, split, choices = parse_hfds(rest)
        self._ds = _load(path, split)
        features = self._ds.features
        where = self.spec.partition("?")[0]  # errors suggest this spec with a choice added
        self._input, self.modality = _input_column(features, choices, where)
        label = _label_column(features, choices, self._input, where)
        others = [c for c in features if c not in (self._input, label)]
        plain = [c for c in others if _is_plain(features[c])]
        for c in others:
            if c not in plain:
                warnings.warn(f"{self.spec}: column {c!r} is not kept as an attribute: it is "
                              f"{_describe(features[c])}, not one plain value per row")
        # only the small columns are read here: the inputs stay on disk until get()
        frame = self._ds.select_columns([c for c in [label, *plain] if c]).to_pandas()
        table = pd.DataFrame({"input_id": np.arange(len(self._ds), dtype=np.int64)})
        self.class_names = None
        if label is not None:
            names = _class_label_names(features[label])
            codes, text_names = encode_labels(frame[label].to_numpy(), f"{self.spec}: column {label!r}")
            names = names or text_names
            label_columns(table, codes, names)
            self.class_names = names or default_class_names(codes)
        if self.modality == "text":  # the viewer and the token tables read a text input's "text"
            table["text"] = self._ds.select_columns([self._input])[self._input]
        attributes = {}
        for c in plain:
            names = _class_label_names(features[c])
            values = frame[c].to_numpy()
            attributes[c] = (np.array([names[v] if v >= 0 else None for v in values], dtype=object)
                             if names else values)
        add_attributes(table, attributes, self.spec)
        self._table = table

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        rows = self._ds.select_columns([self._input])[[int(i) for i in indices]][self._input]
        if self.modality == "text":
            return [str(v) for v in rows]
        return [np.asarray(im.convert("RGB"), dtype=np.uint8) for im in rows]


def _load(path: Path, split: str | None) -> Any:
    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise SpecError(f"{path} is not a dataset saved with save_to_disk ({str(e).splitlines()[0]})") from e
    if isinstance(ds, datasets.DatasetDict):
        if split is None and len(ds) == 1:
            return next(iter(ds.values()))
        if split not in ds:
            what = f"has no split {split!r}" if split else "holds several splits"
            raise SpecError(f"{path} {what}; pick one of {', '.join(ds)} with hfds:{path}:SPLIT")
        return ds[split]
    if split is not None:
        raise SpecError(f"{path} holds one dataset, not splits; drop ':{split}' (hfds:{path})")
    return ds


def _input_column(features: Any, choices: dict[str, str], where: str) -> tuple[str, str]:
    for modality in ("image", "text"):
        if modality in choices:
            col = choices[modality]
            if col not in features:
                raise SpecError(f"{where} has no column {col!r}; its columns: {', '.join(features)}")
            ok = isinstance(features[col], datasets.Image) if modality == "image" else _is_text(features[col])
            if not ok:
                raise SpecError(f"column {col!r} of {where} is {_describe(features[col])}, not {modality}")
            return col, modality
    images = [c for c, f in features.items() if isinstance(f, datasets.Image)]
    if len(images) == 1:
        return images[0], "image"
    if len(images) > 1:
        raise SpecError(f"{where} has several image columns ({', '.join(images)}); pick one with "
                        f"{where}?image={images[0]}")
    # a text label column is the label, not an input
    texts = [c for c, f in features.items() if _is_text(f) and c != choices.get("label", "label")]
    if len(texts) == 1 or "text" in texts:
        return ("text" if "text" in texts else texts[0]), "text"
    if texts:
        raise SpecError(f"{where} has several text columns ({', '.join(texts)}); pick the input with "
                        f"{where}?text={texts[0]}")
    raise SpecError(f"{where} has no image or text column (its columns: {', '.join(features)}); "
                    "hfds: reads Image features and string columns")


def _label_column(features: Any, choices: dict[str, str], input_col: str, where: str) -> str | None:
    if "label" in choices:
        if choices["label"] not in features or choices["label"] == input_col:
            raise SpecError(f"{where} has no label column {choices['label']!r}; its columns: {', '.join(features)}")
        return choices["label"]
    labels = [c for c, f in features.items() if isinstance(f, datasets.ClassLabel)]
    if len(labels) > 1 and "label" not in labels:
        raise SpecError(f"{where} has several ClassLabel columns ({', '.join(labels)}); pick the label with "
                        f"{where}?label={labels[0]} (the others become attributes)")
    if labels:
        return "label" if "label" in labels else labels[0]
    return "label" if "label" in features and "label" != input_col and _is_plain(features["label"]) else None


def _is_text(feature: Any) -> bool:
    return getattr(feature, "dtype", None) in _TEXT and type(feature).__name__ == "Value"


def _is_plain(feature: Any) -> bool:
    return isinstance(feature, datasets.ClassLabel) or (
        isinstance(feature, datasets.Value) and feature.dtype in _PLAIN)


def _class_label_names(feature: Any) -> list[str] | None:
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def _describe(feature: Any) -> str:
    dtype = getattr(feature, "dtype", None)
    return f"a {type(feature).__name__}" + (f" of {dtype}" if isinstance(dtype, str) else "")
