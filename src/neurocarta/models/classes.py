"""Class names of a model's outputs, and whether the data's labels are those classes.

A prediction is always shown by name when one is known (``pred_name`` in the outputs
table): the model's own class names first (ImageNet's for the ImageNet models, ``id2label``
for a Hugging Face classifier), else the data's when its labels are the model's classes.
``correct`` and ``loss`` only mean something in that second case: a folder of photos
labelled ``cat``/``dog`` scored against ImageNet's 1,000 classes would mark every
prediction wrong, so there they stay NA.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

IMAGENET_CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")

# transformers fills id2label with LABEL_0, LABEL_1, ... when nobody named the classes
_PLACEHOLDER_LABEL = re.compile(r"LABEL_\d+")


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in index order (``tabby``, ``tiger cat``, ...),
    from the file shipped in the package (its header says where it came from)."""
    lines = IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines()
    names = tuple(line for line in lines if line and not line.startswith("#"))
    if len(names) != 1000:  # a damaged install, not something a user did
        raise RuntimeError(f"{IMAGENET_CLASSES_FILE} holds {len(names)} class names, not 1000; reinstall neurocarta")
    return names


def id2label_names(id2label: Mapping[int | str, str] | None) -> list[str] | None:
    """A transformers config's ``id2label`` as a list in index order, or None when the
    names are transformers' placeholders (``LABEL_0`` ...) or the ids are not ``0..n-1``."""
    if not id2label:
        return None
    try:
        by_id = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        return None
    if sorted(by_id) != list(range(len(by_id))):
        return None
    names = [by_id[i] for i in range(len(by_id))]
    if all(_PLACEHOLDER_LABEL.fullmatch(n) for n in names):
        return None
    return names


def _named(names: Sequence[str] | None) -> list[str] | None:
    """``names`` unless missing or only the indices as text (``"0"``, ``"1"``, ...), which
    a source writes when it knows no names."""
    if not names:
        return None
    names = [str(n) for n in names]
    return None if names == [str(i) for i in range(len(names))] else names


def _same_name(a: str, b: str) -> bool:
    """Class names compare without case, spaces or underscores (``Tiger_Cat`` is ``tiger cat``)."""
    def key(s: str) -> str:
        return re.sub(r"[\s_]+", " ", s).strip().casefold()
    return key(a) == key(b)


def labels_are_model_classes(model_names: Sequence[str] | None, data_names: Sequence[str] | None,
                             n_data_classes: int, n_outputs: int) -> bool:
    """Whether the data's label ``i`` means the model's output ``i``.

    When both sides name their classes, the names decide (same count, same names in the same
    order). When either side only has indices, the counts decide: ``n_data_classes`` (how
    many classes the data's labels count) must equal the model's ``n_outputs``.
    """
    if n_data_classes < 1:
        return False
    model, data = _named(model_names), _named(data_names)
    if model is not None and len(model) != n_outputs:
        model = None
    if model is not None and data is not None:
        return len(model) == len(data) and all(_same_name(m, d) for m, d in zip(model, data))
    return n_data_classes == n_outputs


def prediction_names(model_names: Sequence[str] | None, data_names: Sequence[str] | None,
                     labels_match: bool, n_outputs: int) -> list[str]:
    """The name of each of the model's ``n_outputs`` classes: the model's own names, else the
    data's when its labels are the model's classes, else the index as text."""
    model = _named(model_names)
    if model is not None and len(model) == n_outputs:
        return model
    data = _named(data_names)
    if labels_match and data is not None and len(data) == n_outputs:
        return data
    return [str(i) for i in range(n_outputs)]
