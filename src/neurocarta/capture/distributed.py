"""Extraction across Dask workers (``extract --workers N`` or ``--scheduler ADDRESS``).

The coordinator (the process that runs ``extract``) does everything a single-process run
does except the forward passes: it probes the model, writes the manifest, creates every
array at its final size, and then hands out *shards*, runs of whole chunks of inputs. Each
worker loads the model and the data from their specs (once per process), runs its shard
and writes the rows straight into the atlas. Shards are made of whole chunks and every
per-input array is chunked by ``chunk_size`` rows (thumbnails by a divisor of it), so no
two workers ever write one Zarr chunk. Table rows go into per-chunk Parquet parts.

What a shard cannot write alone comes back to the coordinator, which merges it: the
partial top-k (exact, ties broken by row), the group sums and the rows of the seeded
sample. After each merge the coordinator commits, recording which shards are done; a rerun
after a crash runs only the others, and a shard that a dying worker left half-written is
simply written again whole by whichever worker Dask gives it to next.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..errors import UserError
from ..store import layout
from ..streaming import GroupStatsAccumulator, TopKAccumulator

if TYPE_CHECKING:
    from .extraction import ExtractOptions, Extraction

SHARDS_PER_WORKER = 8   # enough tasks for Dask to balance uneven workers, and a short tail
MAX_SHARD_CHUNKS = 16   # and small enough that a lost shard costs little


def check_supported(ex: "Extraction") -> None:
    """Refuse what a distributed run cannot do, before anything is written."""
    token_layers = [i.name for i in ex.infos.values() if i.rows == "token"]
    if token_layers:
        raise UserError(
            f"--workers/--scheduler need one row per input, but {', '.join(token_layers)} record one row per "
            "token; pass --pool mean (or cls, max) to pool token layers, or extract without workers")
    if ex.out.remote and ex.out.url.startswith("memory://") and ex.opts.workers is not None:
        raise UserError("a memory:// store lives inside one process, so worker processes cannot write to it; "
                        "use a local folder or an s3:// / gs:// URL with --workers")


@contextmanager
def cluster(opts: "ExtractOptions") -> Iterator[Any]:
    """The Dask client of a distributed run (None for an in-process run).

    ``workers``: a local cluster of that many processes sharing this machine's cores;
    ``scheduler``: an address of a running scheduler, or a ``distributed.Client``.
    """
    if not opts.distributed:
        yield None
        return
    from distributed import Client, LocalCluster

    if opts.workers is not None:
        threads = max(1, (os.cpu_count() or 1) // opts.workers)
        # everything on 127.0.0.1; the status page on a free port rather than a warning about 8787
        with LocalCluster(n_workers=opts.workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as local, \
                Client(local) as client:
            yield client
    elif isinstance(opts.scheduler, str):
        try:
            client = Client(opts.scheduler, timeout="20s")
        except OSError as e:
            raise UserError(f"cannot reach the Dask scheduler at {opts.scheduler} ({e.__class__.__name__}); "
                            "start one with `dask scheduler`, or use --workers N for a local cluster") from e
        with client:
            yield client
    else:
        yield opts.scheduler


def warm_up(client: Any) -> list:
    """Start importing torch, neurocarta and the compiled kernels on every worker now, while
    the coordinator probes the model and creates the arrays (the first shard then starts
    seconds sooner). Returns the futures, which the caller keeps alive."""
    workers = list(client.scheduler_info().get("workers", {}))
    return [client.submit(_warm, pure=False, workers=[w], allow_other_workers=False, key=f"neurocarta-warm-{uuid.uuid4().hex[:8]}")
            for w in workers]


def _warm() -> None:
    from . import extraction  # noqa: F401 - torch, the store, the numba kernels' module
    from ..streaming import GroupStatsAccumulator, TopKAccumulator

    acc = TopKAccumulator(1, 1)
    acc.update(np.zeros((1, 1), np.float16), np.zeros(1, np.int64), np.zeros(1, np.int64))
    GroupStatsAccumulator(1).update(np.zeros(1), np.zeros((1, 1), np.float32))


def coalesce(ranges: list[list[int]]) -> list[list[int]]:
    """Sorted, merged ``[start, stop)`` ranges (what ``progress.json`` records as done)."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def plan_shards(chunks: list[tuple[int, int]], n_workers: int, shard_size: int | None,
                chunk_size: int) -> list[tuple[int, int]]:
    """Group consecutive chunks into shards: ``shard_size`` inputs, or by default enough
    shards for ``SHARDS_PER_WORKER`` per worker, at most ``MAX_SHARD_CHUNKS`` chunks each."""
    if shard_size:
        per = max(1, shard_size // chunk_size)
    else:
        per = min(MAX_SHARD_CHUNKS, max(1, math.ceil(len(chunks) / (SHARDS_PER_WORKER * max(1, n_workers)))))
    shards: list[tuple[int, int]] = []
    run: list[tuple[int, int]] = []
    for c in chunks:
        if run and (len(run) == per or c[0] != run[-1][1]):
            shards.append((run[0][0], run[-1][1]))
            run = []
        run.append(c)
    if run:
        shards.append((run[0][0], run[-1][1]))
    return shards


@dataclass
class WorkerSpec:
    """What a worker needs to rebuild the extraction besides the model and the data (which
    travel as task arguments): the atlas URL and
    the options; ``run_id`` keys the per-process cache."""

    run_id: str
    out: str
    opts: Any


def run_shards(ex: "Extraction", client: Any, s_index: int,
               chunks: list[tuple[int, int]]) -> Iterator[tuple[tuple[int, int], dict]]:
    """Submit the shards covering ``chunks`` and yield ``((start, stop), result)`` as they finish."""
    from distributed import as_completed

    n_workers = len(client.scheduler_info().get("workers", {})) or 1
    shards = plan_shards(chunks, n_workers, ex.opts.shard_size, ex.opts.chunk_size)
    if not shards:
        return
    spec, model, data = _worker_spec(ex, client)
    snap, path = ex.snapshots[s_index]
    ranges = {}
    futures = []
    for a, b in shards:
        f = client.submit(_shard_task, spec, model, data, s_index, snap, str(path) if path else None, a, b,
                          key=f"neurocarta-shard-{spec.run_id}-{s_index}-{a}", pure=False)
        ranges[f.key] = (a, b)
        futures.append(f)
    for future, result in as_completed(futures, with_results=True):
        yield ranges[future.key], result
        future.release()


def _worker_spec(ex: "Extraction", client: Any) -> tuple[WorkerSpec, Any, Any]:
    """The spec, the model and the data for the tasks: spec strings as they are; Python
    objects (a module, a DataSource) pickled into the atlas's ``_work/`` folder, which every
    worker can read anyway, and loaded once per worker process. (Sending them through
    ``client.scatter`` took seconds per object, and Dask's own torch serializer rebuilds
    modules without their hook dicts.)"""
    if getattr(ex, "_worker_spec", None) is None:
        import cloudpickle

        run_id = uuid.uuid4().hex[:12]

        def ship(obj: Any, name: str) -> Any:
            if isinstance(obj, (str, os.PathLike)):
                return str(obj)
            rel = f"{layout.WORK}/objects/{run_id}-{name}.pkl"
            ex.writer.loc.write_bytes(rel, cloudpickle.dumps(obj))
            return _Stored(rel)

        opts = replace(ex.opts, workers=None, scheduler=None, progress=False, overwrite=False)
        ex._worker_spec = (WorkerSpec(run_id, ex.out.url, opts), ship(ex.model_spec, "model"),
                           ship(ex.data_spec, "data"))
    return ex._worker_spec


@dataclass
class _Stored:
    """A model or data object pickled inside the atlas (``_work/objects/``)."""

    rel: str

    def load(self, out: str) -> Any:
        import cloudpickle

        from ..store.location import Location

        return cloudpickle.loads(Location(out).read_bytes(self.rel))


_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


def _shard_task(spec: WorkerSpec, model: Any, data: Any, s_index: int, snap: str, path: str | None,
                start: int, stop: int) -> dict:
    """Runs on a worker: one shard, with the process's cached extraction of this run."""
    import torch

    with _CACHE_LOCK:
        ex = _CACHE.get(spec.run_id)
        if ex is None:
            from .extraction import Extraction

            _CACHE.clear()  # one run at a time per worker process; free an old model
            model, data = (x.load(spec.out) if isinstance(x, _Stored) else x for x in (model, data))
            ex = Extraction(model, data, spec.out, spec.opts)
            ex.attach_worker()
            ex._shard_lock = threading.Lock()
            ex._loaded_snapshot = 0
            _CACHE[spec.run_id] = ex
    with ex._shard_lock:  # one module, one set of hooks: shards of one process take turns
        try:
            from distributed import get_worker

            torch.set_num_threads(max(1, int(get_worker().state.nthreads)))
        except (ImportError, ValueError, AttributeError):
            pass
        if ex._loaded_snapshot != s_index:
            if path is not None:
                ex._load_snapshot(path)
            ex._loaded_snapshot = s_index
        return ex.run_shard(s_index, snap, start, stop)


def merge_shard(ex: "Extraction", snap: str, result: dict, topk: dict, stats: dict) -> None:
    """Fold one shard's partial reductions into the coordinator's, and write its sample rows."""
    for name, state in result["topk"].items():
        part = TopKAccumulator.from_state(ex.opts.topk, state)
        if name in topk:
            topk[name].merge(part)
        else:
            topk[name] = part
    for key, state in result["stats"].items():
        part = GroupStatsAccumulator.from_state(state)
        if key in stats:
            stats[key].merge(part)
        else:
            stats[key] = part
    for path, lo, rows in result["sample"]:
        ex.writer.array(path)[lo:lo + rows.shape[0]] = rows
