"""The data-source contract every data adapter follows.

A data source is a fixed, indexable collection of inputs. Input ``i`` has ``input_id == i``.
It gives a table with one row per input (labels and attributes) and the raw items for any
set of indices, so extraction can stream it in chunks, resume at any offset and shard it
across workers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

Modality = Literal["image", "text", "array"]

#: A word span of a text input: ``(start, end, {attribute: value})`` in character offsets.
Span = tuple[int, int, dict[str, str]]


class DataSource(ABC):
    """An indexable set of inputs.

    Subclasses set ``spec``, ``modality`` and ``class_names`` and implement
    :meth:`table` and :meth:`get`.

    Raw items are, by modality:

    - ``"image"``: ``uint8`` arrays of shape ``(H, W, 3)``
    - ``"text"``: ``str``
    - ``"array"``: ``float32`` numpy arrays, fed to the model as they are
    """

    spec: str
    modality: Modality
    class_names: list[str] | None = None
    #: Text sources only: the attributes their word spans carry (see :meth:`spans`), and the
    #: value a token outside every span gets for each.
    span_attributes: tuple[str, ...] = ()
    span_fill: dict[str, str] = {}

    @abstractmethod
    def table(self) -> pd.DataFrame:
        """One row per input, in input order.

        Required column: ``input_id`` (``0..N-1``). Optional: ``label`` (int, ``-1`` when
        unknown; an unlabelled source has no ``label`` column at all), ``label_name``,
        ``split`` (``"train"``/``"test"``), ``text`` and any attribute column (planted
        attributes, user metadata: one plain value per input).
        """

    @abstractmethod
    def get(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        """The raw items for ``indices``, in that order."""

    def spans(self, indices: Sequence[int] | np.ndarray) -> list[list[Span]]:
        """Text sources: per input, word spans ``(start, end, {attr: value})`` sorted by start
        and not overlapping. Extraction gives every token the attributes of the span holding
        its first character (so all subword pieces of a word share them). None by default."""
        return [[] for _ in indices]

    def __len__(self) -> int:
        return len(self.table())

    def labels(self) -> np.ndarray | None:
        """Integer labels per input, or ``None`` when the source has none."""
        t = self.table()
        if "label" not in t.columns:
            return None
        return t["label"].to_numpy(dtype=np.int64)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec!r}: {len(self)} {self.modality} inputs>"
