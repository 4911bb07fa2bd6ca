"""Where method reductions run: in this process, or on a Dask cluster when one is configured.

This module is the one place that decides. Nothing is configured by default, and then every
reduction is a plain loop in this process: importing this module imports no Dask, and no
Dask code runs. Configure a cluster with :func:`use_dask` (a ``distributed.Client`` or a
scheduler address), or set the environment variable ``NEUROCARTA_SCHEDULER`` to an address::

    import neurocarta.compute as compute
    with compute.use_dask("tcp://scheduler:8786"):
        stats = atlas.group_stats("fc1", by="label")   # row blocks summed on the workers

What runs on the cluster when one is configured:

- :func:`group_sums`: per-group count / sum / sum of squares over the rows of a stored array
  (``Atlas.group_stats``, hence NAP and contrastive profiles);
- :func:`topk_from_array`: per-neuron top-k of a stored array;
- :func:`sparse_gram`: ``A @ A.T`` by blocks of A's columns (the concept embedding's
  co-occurrence counts);
- :func:`map_items`: a function over items with one large object sent to every worker once
  (Mapper's per-interval clustering).

Tasks that read stored arrays get the store's location and a row range, never the data, so
workers must be able to open the atlas (a shared file system or a remote URL), and must have
neurocarta installed.
"""

from __future__ import annotations

import os
from functools import reduce
from typing import Any, Callable, Iterable, Sequence

import numpy as np

#: Environment variable holding a scheduler address, used when :func:`use_dask` was not called.
ENV = "NEUROCARTA_SCHEDULER"

_current: "_Setting | None" = None  # None: nothing configured explicitly (the environment decides)
_clients: dict[str, Any] = {}  # clients neurocarta made from addresses, by address


class _Setting:
    """What :func:`use_dask` returns; as a context manager it restores the previous setting."""

    def __init__(self, client, previous: "_Setting | None", created: str | None):
        self.client = client
        self.previous = previous
        self._created = created  # the address this setting made a client for, if it did

    def __enter__(self):
        return self.client

    def __exit__(self, *exc) -> None:
        global _current
        if _current is self:
            _current = self.previous
        if self._created is not None:
            client = _clients.pop(self._created, None)
            if client is not None:
                client.close()


def use_dask(client_or_address=None) -> _Setting:
    """Run neurocarta's reductions on a Dask cluster: a ``distributed.Client``, a scheduler
    address (``"tcp://host:8786"``), or ``None`` to run them in this process again (the
    environment variable is then ignored too).

    Takes effect at once; used as a context manager (``with use_dask(...) as client:``) it
    lasts for the block only, and a client it made from an address is closed at the end.
    A client you pass in is never closed by neurocarta.
    """
    global _current
    created = None
    client = client_or_address
    if isinstance(client_or_address, str):
        created = None if _live(_clients.get(client_or_address)) else client_or_address
        client = _connect(client_or_address)
    elif client_or_address is not None and not hasattr(client_or_address, "submit"):
        raise TypeError(f"use_dask takes a distributed.Client, a scheduler address or None, "
                        f"not {type(client_or_address).__name__}")
    _current = _Setting(client, _current, created)
    return _current


def active_client():
    """The client reductions run on, or ``None`` for in-process.

    An explicit :func:`use_dask` wins; otherwise ``NEUROCARTA_SCHEDULER``, if set, is
    connected to (once per address). Never imports Dask when neither is set.
    """
    if _current is not None:
        return _current.client
    address = os.environ.get(ENV, "").strip()
    return _connect(address) if address else None


def reset() -> None:
    """Forget any :func:`use_dask` setting and close the clients neurocarta made from addresses."""
    global _current
    _current = None
    while _clients:
        _, client = _clients.popitem()
        client.close()


def _live(client) -> bool:
    return client is not None and getattr(client, "status", "") == "running"


def _connect(address: str):
    client = _clients.get(address)
    if not _live(client):
        from distributed import Client

        client = _clients[address] = Client(address, set_as_default=False)
    return client


def _slots(client) -> int:
    """Worker threads in the cluster (at least 1)."""
    return max(1, sum(client.nthreads().values()))


# --------------------------------------------------------------------------- generic helpers

_ACTIVE = object()  # map_reduce's default: whatever client is active


def map_reduce(fn: Callable, items: Iterable, combine: Callable, split_every: int = 8, client: Any = _ACTIVE):
    """``fn`` over ``items``, the results folded left to right with ``combine(a, b)``.

    In-process: a plain loop. On a cluster: one task per item, then a tree of folds over
    runs of ``split_every`` neighbouring results, on the workers; only the final result
    comes back. Neighbours are folded in item order, so ``combine`` need only be
    associative, not commutative. ``fn`` and ``combine`` must be picklable on a cluster.
    ``client``: the one to use (``None``: in-process), by default the active one.
    """
    items = list(items)
    if not items:
        raise ValueError("map_reduce needs at least one item")
    client = active_client() if client is _ACTIVE else client
    if client is None:
        out = fn(items[0])
        for item in items[1:]:
            out = combine(out, fn(item))
        return out
    futures = client.map(fn, items, pure=False)
    while len(futures) > 1:
        runs = [futures[i:i + split_every] for i in range(0, len(futures), split_every)]
        futures = [run[0] if len(run) == 1 else client.submit(_fold, combine, *run, pure=False) for run in runs]
    return futures[0].result()


def _fold(combine: Callable, *parts):
    return reduce(combine, parts)


def map_items(fn: Callable, items: Sequence, broadcast: dict | None = None, **kwargs) -> list:
    """``[fn(item, **broadcast, **kwargs) for item in items]``, in item order.

    On a cluster each ``broadcast`` value is sent to every worker once (not once per task)
    and each item is one task; in-process it is that plain loop.
    """
    broadcast = dict(broadcast or {})
    client = active_client()
    if client is None:
        return [fn(item, **broadcast, **kwargs) for item in items]
    if not len(items):
        return []
    shared = {name: client.scatter(value, broadcast=True) for name, value in broadcast.items()}
    return client.gather(client.map(fn, list(items), pure=False, **shared, **kwargs))


def _row_ranges(n_rows: int, step: int, client) -> list[tuple[int, int]]:
    """Task row ranges: whole runs of ``step``-row blocks, about 4 tasks per worker thread."""
    n_blocks = -(-n_rows // step)
    per_task = max(1, -(-n_blocks // (4 * _slots(client))))
    rows = per_task * step
    return [(lo, min(lo + rows, n_rows)) for lo in range(0, n_rows, rows)]


def _store_client(root):
    """The active client for tasks that open the store at ``root`` themselves; ``None`` for a
    ``memory://`` store, which lives in this process only and no worker can see."""
    return None if str(root).startswith("memory://") else active_client()


def _open_array(root, array_path: str):
    """A stored array, opened as :class:`~neurocarta.store.atlas.Atlas` opens its group."""
    import zarr

    return zarr.open_group(str(root), mode="r", zarr_format=3)[array_path]


def _blocks(array, lo: int, hi: int, step: int):
    """``(start, float32 block)`` over rows ``lo:hi``, ``step`` rows at a time (as
    ``LayerActivations.iter_chunks`` reads them)."""
    for start in range(lo, hi, step):
        yield start, np.asarray(array[start:min(start + step, hi)], dtype=np.float32)


# --------------------------------------------------------------------------- group sums

def group_sums(root, array_path: str, keys: np.ndarray,
               chunk_rows: int | None = None) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Per-group ``(groups, count, sum, sumsq)`` of every column of a stored (rows x neurons)
    array, grouped by ``keys`` (one group value per row).

    The result is :class:`~neurocarta.streaming.GroupStatsAccumulator`'s: groups in order of
    first appearance, int64 counts, float64 sums; ready for ``GroupStats.from_sums``.
    ``root`` is the Zarr v3 group (a folder or URL) and ``array_path`` the array in it; rows
    are read ``chunk_rows`` at a time (default: the array's chunk rows). On a cluster each
    task opens the array itself and sums its own row range; the partial sums are merged by
    group value.
    """
    array = _open_array(root, array_path)
    n_rows = array.shape[0]
    keys = np.asarray(keys)
    if keys.shape[0] != n_rows:
        raise ValueError(f"group_sums needs one key per row: {keys.shape[0]} keys for {n_rows} rows")
    step = int(chunk_rows or array.chunks[0])
    client = _store_client(root)
    ranges = [(0, n_rows)] if client is None or n_rows == 0 else _row_ranges(n_rows, step, client)
    tasks = [(str(root), array_path, lo, hi, step, keys[lo:hi]) for lo, hi in ranges]
    state = map_reduce(_group_sums_task, tasks, _merge_group_states, client=client)
    return state["groups"], state["count"], state["sum"], state["sumsq"]


def _group_sums_task(task) -> dict:
    """The accumulator state of rows ``lo:hi`` (read ``step`` rows at a time)."""
    from .streaming import GroupStatsAccumulator

    root, array_path, lo, hi, step, keys = task
    array = _open_array(root, array_path)
    acc = GroupStatsAccumulator(array.shape[1])
    for start, block in _blocks(array, lo, hi, step):
        acc.update(keys[start - lo:start - lo + block.shape[0]], block)
    return acc.state()


def _merge_group_states(a: dict, b: dict) -> dict:
    """Two accumulator states merged by group value (``a``'s groups first, then ``b``'s new
    ones: merging consecutive row ranges in order keeps first-appearance order)."""
    from .streaming import GroupStatsAccumulator

    acc = GroupStatsAccumulator.from_state(a)
    acc.merge(GroupStatsAccumulator.from_state(b))
    return acc.state()


# --------------------------------------------------------------------------- top-k

def topk_from_array(root, array_path: str, k: int, chunk_rows: int | None = None,
                    input_ids: np.ndarray | None = None, positions: np.ndarray | None = None):
    """Per-neuron top-k (a :class:`~neurocarta.streaming.TopK`) of a stored (rows x neurons)
    array, recomputed from the stored values.

    ``input_ids`` (rows,) maps rows to inputs (default: the row itself, as for per-input
    layers); ``positions`` (rows,) is each row's token position for sequence layers (stored
    as ``(position, -1)``; default -1). On a cluster each task reads its own row range and
    keeps its top-k; the partial results are merged on the workers.
    """
    from .streaming import TopKAccumulator

    array = _open_array(root, array_path)
    n_rows = array.shape[0]
    step = int(chunk_rows or array.chunks[0])
    client = _store_client(root)
    ranges = [(0, n_rows)] if client is None or n_rows == 0 else _row_ranges(n_rows, step, client)

    def part(x, lo, hi):
        return None if x is None else np.asarray(x[lo:hi])

    tasks = [(str(root), array_path, lo, hi, step, int(k), part(input_ids, lo, hi), part(positions, lo, hi))
             for lo, hi in ranges]
    merged = map_reduce(_topk_task, tasks, _merge_topk_states, client=client)
    return TopKAccumulator.from_state(int(k), merged["state"]).result()


def _topk_task(task) -> dict:
    """The top-k state of rows ``lo:hi``; ``input_ids``/``positions`` hold those rows' values."""
    from .streaming import TopKAccumulator

    root, array_path, lo, hi, step, k, input_ids, positions = task
    array = _open_array(root, array_path)
    acc = TopKAccumulator(k, array.shape[1])
    for start, block in _blocks(array, lo, hi, step):
        rows = np.arange(start, start + block.shape[0], dtype=np.int64)
        part = slice(start - lo, start - lo + block.shape[0])
        ids = rows if input_ids is None else np.asarray(input_ids[part], dtype=np.int64)
        pos = None if positions is None else np.asarray(positions[part], dtype=np.int64)  # (rows,): (pos, -1)
        acc.update(block, rows, ids, pos)
    return {"k": k, "state": acc.state()}


def _merge_topk_states(a: dict, b: dict) -> dict:
    from .streaming import TopKAccumulator

    acc = TopKAccumulator.from_state(a["k"], a["state"])
    acc.merge(TopKAccumulator.from_state(b["k"], b["state"]))
    return {"k": a["k"], "state": acc.state()}


# --------------------------------------------------------------------------- sparse products

def sparse_gram(a, n_blocks: int | None = None):
    """``A @ A.T`` of a scipy sparse matrix, as CSR.

    In-process it is exactly that product. On a cluster A's columns are split into
    ``n_blocks`` runs (default: 2 per worker thread); each task multiplies its run,
    ``A[:, run] @ A[:, run].T``, and the partial products are summed on the workers.
    """
    client = active_client()
    if client is None:
        return (a @ a.T).tocsr()
    import scipy.sparse as sp

    at = sp.csr_matrix(a.T)  # rows of at are A's columns: cheap row slices
    n_cols = at.shape[0]
    n_blocks = max(1, min(n_blocks or 2 * _slots(client), n_cols))
    edges = np.linspace(0, n_cols, n_blocks + 1).astype(np.int64)
    blocks = [at[lo:hi] for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
    if not blocks:
        return (a @ a.T).tocsr()
    return map_reduce(_gram_block, blocks, _add_sparse).tocsr()


def _gram_block(block):
    return (block.T @ block).tocsr()


def _add_sparse(a, b):
    return (a + b).tocsr()
