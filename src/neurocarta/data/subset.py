"""A subset of another data source, renumbered ``0..n-1`` (used by ``--limit``)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .base import DataSource


class SubsetSource(DataSource):
    """Inputs ``indices`` of ``parent``; the parent's index is kept as ``source_index``."""

    def __init__(self, parent: DataSource, indices: np.ndarray, spec: str):
        self.parent = parent
        self.indices = np.asarray(indices, dtype=np.int64)
        self.spec = spec
        self.modality = parent.modality
        self.class_names = parent.class_names
        self.span_attributes = parent.span_attributes
        self.span_fill = parent.span_fill
        t = parent.table().iloc[self.indices].reset_index(drop=True)
        if "source_index" not in t.columns:
            t.insert(1, "source_index", t["input_id"].to_numpy())
        t["input_id"] = np.arange(len(t), dtype=np.int64)
        self._table = t

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        return self.parent.get(self.indices[np.asarray(indices, dtype=np.int64)])

    def spans(self, indices: Sequence[int] | np.ndarray) -> list:
        return self.parent.spans(self.indices[np.asarray(indices, dtype=np.int64)])


def limit_source(source: DataSource, limit: int | None, seed: int) -> DataSource:
    """A seeded random subset of ``limit`` inputs, kept in the parent's order.

    A random subset rather than the first N, because many sources are sorted by class.
    """
    n = len(source)
    if limit is None or limit >= n:
        return source
    if limit < 1:
        from ..errors import UserError

        raise UserError(f"--limit must be at least 1, got {limit}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=limit, replace=False))
    return SubsetSource(source, idx, f"{source.spec}|limit={limit},seed={seed}")
