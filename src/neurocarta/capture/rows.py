"""What the model produced for a run of consecutive inputs, on its way from the runner to the sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..store import schema


@dataclass
class Rows:
    """The rows of inputs ``[start, stop)``: per-layer arrays, outputs, token rows, thumbnails.

    The runner makes one per batch; the sink writes several batches at once (a chunk, or
    what a timed commit cuts), joined with :meth:`extend`.
    """

    start: int
    stop: int
    parts: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    tokens: list[pd.DataFrame] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)

    def add(self, layer: str, **arrays: np.ndarray) -> None:
        d = self.parts.setdefault(layer, {})
        for k, v in arrays.items():
            d.setdefault(k, []).append(v)

    def extend(self, more: "Rows") -> "Rows":
        """Append the rows of the inputs that follow these; returns self."""
        if more.start != self.stop:
            raise ValueError(f"rows {more.start}:{more.stop} do not follow {self.start}:{self.stop}")
        for layer, arrays in more.parts.items():
            d = self.parts.setdefault(layer, {})
            for k, v in arrays.items():
                d.setdefault(k, []).extend(v)
        self.outputs += more.outputs
        self.tokens += more.tokens
        self.thumbs += more.thumbs
        self.stop = more.stop
        return self

    def arrays(self, layer: str) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts[layer].items()}

    def outputs_frame(self) -> pd.DataFrame | None:
        """pred, confidence, loss and correct (nullable boolean) per input, or None."""
        if not self.outputs:
            return None
        cols = {k: np.concatenate([p[k] for p in self.outputs]) for k in self.outputs[0]}
        correct = cols.pop(schema.CORRECT)
        df = pd.DataFrame(cols)
        df[schema.CORRECT] = pd.array(correct == 1, dtype="boolean")
        df.loc[correct < 0, schema.CORRECT] = pd.NA
        return df

    def tokens_frame(self) -> pd.DataFrame | None:
        return pd.concat(self.tokens, ignore_index=True) if self.tokens else None


def plain(v: Any) -> Any:
    """A JSON- and dict-friendly scalar: numpy scalars become Python ones, NA becomes None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v
