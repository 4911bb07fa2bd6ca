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
from numba import njit

_LOW32 = np.uint64(0xFFFFFFFF)


def _order_keys(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Pack (value, row) into uint64 keys whose integer order is the top-k order.

    The high 32 bits are the float32 value mapped to an order-preserving unsigned integer;
    the low 32 bits are ``0xFFFFFFFF - row``, so among equal values the smaller row wins.
    Keeping the k largest keys therefore gives exactly what a full stable sort by (value
    descending, row ascending) gives, ties included (ReLU zeros tie a lot). In this order
    -0.0 ranks just below 0.0, NaNs with the sign bit clear above +inf and those with it set
    below -inf. :func:`_scan_insert` computes the same keys inline.
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
    """Keeps the k largest values per neuron over a stream of row batches.

    Each neuron holds a min-heap of the packed keys of :func:`_order_keys` (its root is the
    current k-th best), with the input ids and positions moved alongside. Slots not yet
    filled hold key 0, below every real key, so the first k rows fill them like any other.
    An update is one compiled pass over the batch: each value's ordered high 32 bits are
    compared with the root's; only the few that can enter (after warm-up almost none) build
    their full key and replace the root. Keys are distinct (the row is in the low bits), so
    the kept set is exactly that of a full stable sort by (value descending, row ascending),
    whatever the batch sizes or the order of merges.

    Heaps are stored neuron-major, ``(C, k)``, so one neuron's heap is contiguous; ``state``
    and ``result`` give the ``(m, C)`` row-major layout, m = min(rows seen, k).
    """

    def __init__(self, k: int, n_neurons: int):
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.n_neurons = n_neurons
        self._n_live = 0  # rows kept per neuron: min(rows seen, k), the same for every neuron
        self._heap_keys = np.zeros((n_neurons, k), dtype=np.uint64)
        self._heap_ids = np.full((n_neurons, k), -1, dtype=np.int64)
        self._heap_pos = np.full((n_neurons, k, 2), -1, dtype=np.int32)
        self._root_high = np.zeros(n_neurons, dtype=np.int64)  # heap root key >> 32, contiguous

    def update(self, values: np.ndarray, rows: np.ndarray, input_ids: np.ndarray,
               positions: np.ndarray | None = None) -> None:
        """Add a batch: ``values`` (B, C), ``rows``/``input_ids`` (B,).

        ``positions`` is ``None`` (all -1), (B, C, 2) per value, or (B,) ints meaning
        ``(pos, -1)`` for every neuron of that row (token positions). A (B, C, 2) array
        broadcast along the neurons (stride 0, as ``np.broadcast_to`` makes) is read per row,
        never expanded. Values are ranked as float32 (float16 values are read as they are,
        through a table of their float32 keys).
        """
        b = values.shape[0]
        if b == 0:
            return
        if values.ndim != 2 or values.shape[1] != self.n_neurons:
            raise ValueError(f"values must be (rows, {self.n_neurons}), got {values.shape}")
        low = _LOW32 - np.asarray(rows).astype(np.uint64)
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        pos, step_row, step_neuron = _position_source(positions, b, self.n_neurons)
        heaps = (self._heap_keys, self._heap_ids, self._heap_pos, self._root_high)
        if values.dtype == np.float16:  # read as stored: no float32 copy of the batch
            _scan_insert_f16(np.ascontiguousarray(values).view(np.uint16), _F16_HIGH, low, ids, pos,
                             step_row, step_neuron, *heaps)
        else:
            bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
            _scan_insert(bits, low, ids, pos, step_row, step_neuron, *heaps)
        self._n_live = min(self.k, self._n_live + b)

    def merge(self, other: "TopKAccumulator") -> None:
        """Fold in another accumulator's partial result (rows must not overlap)."""
        self._insert(other._heap_keys, other._heap_ids, other._heap_pos)
        self._n_live = min(self.k, self._n_live + other._n_live)

    def _insert(self, keys: np.ndarray, ids: np.ndarray, pos: np.ndarray) -> None:
        """Insert entries given neuron-major: keys (C, m), ids (C, m), pos (C, m, 2); key 0 = empty."""
        _insert_keys(keys, ids, pos, self._heap_keys, self._heap_ids, self._heap_pos, self._root_high)

    def _live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The live entries, neuron-major (C, m), in heap order (unordered)."""
        m = self._n_live
        if m == self.k:
            return self._heap_keys, self._heap_ids, self._heap_pos
        take = np.argsort(self._heap_keys, axis=1)[:, self.k - m:]  # empty slots (key 0) sort first
        return (np.take_along_axis(self._heap_keys, take, axis=1), np.take_along_axis(self._heap_ids, take, axis=1),
                np.take_along_axis(self._heap_pos, take[:, :, None], axis=1))

    def result(self) -> TopK:
        keys, ids, pos = self._live()
        order = np.argsort(keys, axis=1)[:, ::-1]  # keys are distinct: best first
        values, rows = _decode_keys(np.ascontiguousarray(np.take_along_axis(keys, order, axis=1).T))
        return TopK(
            values=values,
            input_ids=np.ascontiguousarray(np.take_along_axis(ids, order, axis=1).T),
            rows=rows,
            positions=np.ascontiguousarray(np.take_along_axis(pos, order[:, :, None], axis=1).transpose(1, 0, 2)),
        )

    def state(self) -> dict[str, np.ndarray]:
        """The live entries as (m, C) arrays (a copy; unordered), readable by :meth:`from_state`."""
        keys, ids, pos = self._live()
        return {"keys": keys.T.copy(), "input_ids": ids.T.copy(), "positions": pos.transpose(1, 0, 2).copy()}

    @classmethod
    def from_state(cls, k: int, state: dict[str, np.ndarray]) -> "TopKAccumulator":
        """Rebuild from :meth:`state`: keys, input_ids (m, C) and positions (m, C, 2), any order."""
        keys = np.asarray(state["keys"])
        acc = cls(k, keys.shape[1])
        # older versions kept these unordered, not as heaps; inserting builds the heaps either way
        acc._insert(np.ascontiguousarray(keys.T, dtype=np.uint64),
                    np.ascontiguousarray(np.asarray(state["input_ids"]).T, dtype=np.int64),
                    np.ascontiguousarray(np.asarray(state["positions"]).transpose(1, 0, 2), dtype=np.int32))
        acc._n_live = min(k, keys.shape[0])
        return acc


def _position_source(positions, b: int, c: int) -> tuple[np.ndarray, int, int]:
    """(array, row step, neuron step) such that value (i, j)'s position is arr[i*rs, j*ns]."""
    if positions is None:
        return _NO_POSITION, 0, 0
    positions = np.asarray(positions)
    if positions.shape == (b,):
        pos = np.full((b, 1, 2), -1, dtype=np.int64)
        pos[:, 0, 0] = positions
        return pos, 1, 0
    if positions.shape != (b, c, 2):
        raise ValueError(f"positions must be None, ({b},) or ({b}, {c}, 2), got {positions.shape}")
    if positions.strides[1] == 0:  # broadcast along neurons: one pair per row
        pos = np.empty((b, 1, 2), dtype=np.int64)  # a writable copy: one compiled variant
        pos[:, 0, :] = positions[:, 0, :]
        return pos, 1, 0
    return np.ascontiguousarray(positions, dtype=np.int32 if positions.dtype == np.int32 else np.int64), 1, 1


_NO_POSITION = np.full((1, 1, 2), -1, dtype=np.int64)


@njit(nogil=True, cache=True)
def _sift_root(c, key, ident, p0, p1, hk, hid, hp):
    """Replace the root of neuron c's min-heap with (key, ident, (p0, p1)) and sift it down."""
    k = hk.shape[1]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= k:
            break
        if child + 1 < k and hk[c, child + 1] < hk[c, child]:
            child += 1
        if hk[c, child] >= key:
            break
        hk[c, i] = hk[c, child]
        hid[c, i] = hid[c, child]
        hp[c, i, 0] = hp[c, child, 0]
        hp[c, i, 1] = hp[c, child, 1]
        i = child
    hk[c, i] = key
    hid[c, i] = ident
    hp[c, i, 0] = p0
    hp[c, i, 1] = p1


@njit(nogil=True, cache=True)
def _scan_insert(bits, low, ids, pos, step_row, step_neuron, hk, hid, hp, root_high):
    """Offer every value of a batch to its neuron's heap.

    The order-preserving high 32 bits of a value (as in :func:`_order_keys`) are compared with
    the root's; only when they reach it is the full key built and compared, so a rejected
    value costs a few integer operations.
    """
    n_rows, n_neurons = bits.shape
    for r in range(n_rows):
        for c in range(n_neurons):
            u = np.int64(bits[r, c])
            high = u ^ 0xFFFFFFFF if u >= 0x80000000 else u | 0x80000000
            if high >= root_high[c]:  # the cheap test inline: most values stop here
                _offer(r, c, high, low, ids, pos, step_row, step_neuron, hk, hid, hp, root_high)


@njit(nogil=True, cache=True)
def _offer(r, c, high, low, ids, pos, step_row, step_neuron, hk, hid, hp, root_high):
    """Row ``r``'s value for neuron ``c``, whose high key bits reach the root's: into the heap
    if its full key beats the root."""
    key = (np.uint64(high) << np.uint64(32)) | low[r]
    if key > hk[c, 0]:
        pr, pc = r * step_row, c * step_neuron
        _sift_root(c, key, ids[r], pos[pr, pc, 0], pos[pr, pc, 1], hk, hid, hp)
        root_high[c] = np.int64(hk[c, 0] >> np.uint64(32))


@njit(nogil=True, cache=True)
def _scan_insert_f16(bits, table, low, ids, pos, step_row, step_neuron, hk, hid, hp, root_high):
    """:func:`_scan_insert` for float16 values: ``table[bits]`` is the high key of the value
    converted to float32, so the keys are those the float32 copy would give."""
    n_rows, n_neurons = bits.shape
    for r in range(n_rows):
        for c in range(n_neurons):
            high = np.int64(table[bits[r, c]])
            if high >= root_high[c]:
                _offer(r, c, high, low, ids, pos, step_row, step_neuron, hk, hid, hp, root_high)


# the high 32 bits of _order_keys for every float16 bit pattern, via numpy's float16 -> float32 cast
_F16_HIGH = (_order_keys(np.arange(1 << 16, dtype=np.uint16).view(np.float16)[:, None], np.zeros(1, np.int64))[:, 0]
             >> np.uint64(32)).astype(np.uint32)


@njit(nogil=True, cache=True)
def _insert_keys(keys, ids, pos, hk, hid, hp, root_high):
    """Offer ready-made entries, neuron-major (C, m); key 0 (an empty slot) is never taken."""
    for c in range(keys.shape[0]):
        for j in range(keys.shape[1]):
            key = keys[c, j]
            if key > hk[c, 0]:
                _sift_root(c, key, ids[c, j], pos[c, j, 0], pos[c, j, 1], hk, hid, hp)
        root_high[c] = np.int64(hk[c, 0] >> np.uint64(32))


@njit(nogil=True, cache=True)
def _add_group_rows(x, slots, total, total_sq):
    for r in range(x.shape[0]):
        g = slots[r]
        for c in range(x.shape[1]):
            v = np.float64(x[r, c])
            total[g, c] += v
            total_sq[g, c] += v * v


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
        self.count += np.bincount(slots, minlength=len(self.groups))
        # One compiled pass, row by row into float64 sums. (A one-hot matrix product was
        # measured 10-20x slower: BLAS runs a (groups x rows) @ (rows x neurons) product with
        # ~10 groups far below its peak, over float64 copies of the block.)
        x = np.ascontiguousarray(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)  # float16: exact
        _add_group_rows(x, slots, self.sum, self.sumsq)

    def merge(self, other: "GroupStatsAccumulator") -> None:
        """Fold in another accumulator's sums (over other rows); groups are matched by value,
        whatever order each side discovered them in."""
        if not other.groups:
            return
        slots = self._slots(np.asarray(other.groups + [None], dtype=object)[:-1])
        self.count[slots] += other.count
        self.sum[slots] += other.sum
        self.sumsq[slots] += other.sumsq

    def state(self) -> dict:
        return {"groups": list(self.groups), "count": self.count, "sum": self.sum, "sumsq": self.sumsq}

    @classmethod
    def from_state(cls, state: dict) -> "GroupStatsAccumulator":
        acc = cls(state["sum"].shape[1])
        acc.groups = list(state["groups"])
        acc._slot = {g: i for i, g in enumerate(acc.groups)}
        acc.count, acc.sum, acc.sumsq = state["count"], state["sum"], state["sumsq"]
        return acc
