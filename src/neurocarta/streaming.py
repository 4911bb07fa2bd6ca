"""Streaming reductions computed while activations flow past: per-neuron top-k and
per-group sums.

Both keep O(k x neurons) or O(groups x neurons) state whatever the data size, can save that
state for resume (``state()`` / ``from_state()``) and can merge partial results (``merge``),
which is what a sharded run needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_LOW32 = np.uint64(0xFFFFFFFF)


def _order_keys(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Pack (value, row) into uint64 keys whose integer order is the top-k order.

    The high 32 bits are the float32 value mapped to an order-preserving unsigned integer;
    the low 32 bits are ``0xFFFFFFFF - row``, so among equal values the smaller row wins.
    One ``argpartition`` over these keys therefore gives exactly what a full stable sort by
    (value descending, row ascending) gives, ties included (ReLU zeros tie a lot).
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    ordered = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    low = (_LOW32 - rows.astype(np.uint64))[:, None]
    return (ordered.astype(np.uint64) << np.uint64(32)) | low


def _decode_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    high = (keys >> np.uint64(32)).astype(np.uint32)
    bits = np.where(high & np.uint32(0x80000000), high & np.uint32(0x7FFFFFFF), ~high)
    values = bits.astype(np.uint32).view(np.float32)
    rows = (_LOW32 - (keys & _LOW32)).astype(np.int64)
    return values, rows


@dataclass
class TopK:
    """Per-neuron top-k exemplars, best first.

    Attributes
    ----------
    values : float32 (k, C) activation values (spatial max for conv layers).
    input_ids : int64 (k, C) which input each exemplar is.
    rows : int64 (k, C) the activation row (== input id, or the token row for sequences).
    positions : int32 (k, C, 2) the argmax (h, w) for conv layers, (token position, -1)
        for sequence layers, -1 otherwise.
    """

    values: np.ndarray
    input_ids: np.ndarray
    rows: np.ndarray
    positions: np.ndarray

    @property
    def k(self) -> int:
        return self.values.shape[0]


class TopKAccumulator:
    """Keeps the k largest values per neuron over a stream of row batches."""

    def __init__(self, k: int, n_neurons: int):
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.n_neurons = n_neurons
        self._keys = np.zeros((0, n_neurons), dtype=np.uint64)
        self._input_ids = np.zeros((0, n_neurons), dtype=np.int64)
        self._positions = np.zeros((0, n_neurons, 2), dtype=np.int32)

    def update(self, values: np.ndarray, rows: np.ndarray, input_ids: np.ndarray,
               positions: np.ndarray | None = None) -> None:
        """Add a batch: ``values`` (B, C), ``rows``/``input_ids`` (B,), ``positions`` (B, C, 2)."""
        b = values.shape[0]
        if b == 0:
            return
        if positions is None:
            positions = np.full((b, self.n_neurons, 2), -1, dtype=np.int32)
        self._keep(np.concatenate([self._keys, _order_keys(values, rows)]),
                   np.concatenate([self._input_ids, np.broadcast_to(input_ids[:, None], (b, self.n_neurons))]),
                   np.concatenate([self._positions, positions.astype(np.int32, copy=False)]))

    def merge(self, other: "TopKAccumulator") -> None:
        """Fold in another accumulator's partial result (rows must not overlap)."""
        self._keep(np.concatenate([self._keys, other._keys]),
                   np.concatenate([self._input_ids, other._input_ids]),
                   np.concatenate([self._positions, other._positions]))

    def _keep(self, keys: np.ndarray, ids: np.ndarray, pos: np.ndarray) -> None:
        """Keep the k largest keys per neuron (unordered; :meth:`result` sorts)."""
        if keys.shape[0] > self.k:
            sel = np.argpartition(keys, keys.shape[0] - self.k, axis=0)[-self.k:]
            keys = np.take_along_axis(keys, sel, axis=0)
            ids = np.take_along_axis(ids, sel, axis=0)
            pos = np.take_along_axis(pos, sel[:, :, None], axis=0)
        self._keys, self._input_ids, self._positions = keys, ids, pos

    def result(self) -> TopK:
        order = np.argsort(self._keys, axis=0, kind="stable")[::-1]
        keys = np.take_along_axis(self._keys, order, axis=0)
        values, rows = _decode_keys(keys)
        return TopK(
            values=values,
            input_ids=np.take_along_axis(self._input_ids, order, axis=0),
            rows=rows,
            positions=np.take_along_axis(self._positions, order[:, :, None], axis=0),
        )

    def state(self) -> dict[str, np.ndarray]:
        return {"keys": self._keys, "input_ids": self._input_ids, "positions": self._positions}

    @classmethod
    def from_state(cls, k: int, state: dict[str, np.ndarray]) -> "TopKAccumulator":
        acc = cls(k, state["keys"].shape[1])
        acc._keys = state["keys"].astype(np.uint64)
        acc._input_ids = state["input_ids"].astype(np.int64)
        acc._positions = state["positions"].astype(np.int32)
        return acc


class GroupStatsAccumulator:
    """Running per-group count, sum and sum of squares of every neuron, for one column.

    Group values are discovered as they stream in (predictions are only known then); the
    sums are float64 so that group means match those computed from the stored arrays.
    """

    def __init__(self, n_neurons: int):
        self.n_neurons = n_neurons
        self.groups: list = []
        self._slot: dict = {}
        self.count = np.zeros(0, dtype=np.int64)
        self.sum = np.zeros((0, n_neurons), dtype=np.float64)
        self.sumsq = np.zeros((0, n_neurons), dtype=np.float64)

    def _slots(self, values: np.ndarray) -> np.ndarray:
        # factorize, not np.unique: group values may mix types and hold None (unknown labels)
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
        keys = [None if u is None or u is pd.NA or (isinstance(u, float) and np.isnan(u)) else
                (u.item() if hasattr(u, "item") else u) for u in uniques]
        fresh = [u for u in keys if u not in self._slot]
        if fresh:
            for u in fresh:
                self._slot[u] = len(self.groups)
                self.groups.append(u)
            grow = len(self.groups) - self.count.shape[0]
            self.count = np.concatenate([self.count, np.zeros(grow, np.int64)])
            self.sum = np.concatenate([self.sum, np.zeros((grow, self.n_neurons))])
            self.sumsq = np.concatenate([self.sumsq, np.zeros((grow, self.n_neurons))])
        lookup = np.array([self._slot[u] for u in keys], dtype=np.int64)
        return lookup[codes]

    def update(self, group_values: np.ndarray, x: np.ndarray) -> None:
        """Add rows ``x`` (B, C) whose group is ``group_values`` (B,)."""
        if x.shape[0] == 0:
            return
        slots = self._slots(np.asarray(group_values))
        g = len(self.groups)
        onehot = np.zeros((g, x.shape[0]), dtype=np.float64)
        onehot[slots, np.arange(x.shape[0])] = 1.0
        x64 = x.astype(np.float64)
        self.count += onehot.sum(axis=1).astype(np.int64)
        self.sum += onehot @ x64
        self.sumsq += onehot @ (x64 * x64)

    def state(self) -> dict:
        return {"groups": list(self.groups), "count": self.count, "sum": self.sum, "sumsq": self.sumsq}

    @classmethod
    def from_state(cls, state: dict) -> "GroupStatsAccumulator":
        acc = cls(state["sum"].shape[1])
        acc.groups = list(state["groups"])
        acc._slot = {g: i for i, g in enumerate(acc.groups)}
        acc.count, acc.sum, acc.sumsq = state["count"], state["sum"], state["sumsq"]
        return acc
