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
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import UserError
from ..store.location import Location
from ..store.writer import AtlasWriter
from ..streaming import GroupStatsAccumulator, TopKAccumulator
from .plan import ExtractionPlan, ExtractOptions
from .pump import pump
from .runner import ChunkRunner
from .sink import AtlasSink, Reductions

SHARDS_PER_WORKER = 8   # enough tasks for Dask to balance uneven workers, and a short tail
MAX_SHARD_CHUNKS = 16   # and small enough that a lost shard costs little


def check_supported(plan: ExtractionPlan) -> None:
    """Refuse what a distributed run cannot do, before anything is written."""
    token_layers = [i.name for i in plan.infos.values() if i.rows == "token"]
    if token_layers:
        raise UserError(
            f"--workers/--scheduler need one row per input, but {', '.join(token_layers)} record one row per "
            "token; pass --pool mean (or cls, max) to pool token layers, or extract without workers")
    if plan.out.remote and plan.out.url.startswith("memory://") and plan.opts.workers is not None:
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
    # unpickling this function imported this module, and with it torch, the store, the
    # runner and the sink; running the kernels once compiles them
    acc = TopKAccumulator(1, 1)
    acc.update(np.zeros((1, 1), np.float16), np.zeros(1, np.int64), np.zeros(1, np.int64))
    GroupStatsAccumulator(1).update(np.zeros(1), np.zeros((1, 1), np.float32))


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
    travel as task arguments): the atlas URL and the options; ``run_id`` keys the
    per-process cache."""

    run_id: str
    out: str
    opts: ExtractOptions


class ShardDispatcher:
    """The coordinator's side: sends shards of one run to the cluster and merges what comes back.

    The model and the data go to the workers as their specs: spec strings as they are;
    Python objects (a module, a DataSource) pickled into the atlas's ``_work/`` folder, which
    every worker can read anyway, and loaded once per worker process. (Sending them through
    ``client.scatter`` took seconds per object, and Dask's own torch serializer rebuilds
    modules without their hook dicts.)
    """

    def __init__(self, client: Any, plan: ExtractionPlan, sink: AtlasSink):
        import cloudpickle

        self.client, self.plan, self.sink = client, plan, sink
        run_id = uuid.uuid4().hex[:12]

        def ship(obj: Any, name: str) -> Any:
            if isinstance(obj, (str, os.PathLike)):
                return str(obj)
            return _Stored(sink.writer.write_work_file(f"objects/{run_id}-{name}.pkl", cloudpickle.dumps(obj)))

        opts = replace(plan.opts, workers=None, scheduler=None, progress=False, overwrite=False)
        self.spec = WorkerSpec(run_id, plan.out.url, opts)
        self.model, self.data = ship(plan.model_spec, "model"), ship(plan.data_spec, "data")

    def run(self, s_index: int, chunks: list[tuple[int, int]]) -> Iterator[tuple[tuple[int, int], dict]]:
        """Submit the shards covering ``chunks`` and yield ``((start, stop), result)`` as they finish."""
        from distributed import as_completed

        client, plan = self.client, self.plan
        n_workers = len(client.scheduler_info().get("workers", {})) or 1
        shards = plan_shards(chunks, n_workers, plan.opts.shard_size, plan.opts.chunk_size)
        if not shards:
            return
        snap, path = plan.snapshots[s_index]
        ranges = {}
        futures = []
        for a, b in shards:
            f = client.submit(_shard_task, self.spec, self.model, self.data, s_index, snap,
                              str(path) if path else None, a, b,
                              key=f"neurocarta-shard-{self.spec.run_id}-{s_index}-{a}", pure=False)
            ranges[f.key] = (a, b)
            futures.append(f)
        for future, result in as_completed(futures, with_results=True):
            yield ranges[future.key], result
            future.release()

    def merge(self, result: dict, red: Reductions) -> None:
        """Fold one shard's partial reductions into ``red``, and write its sample rows."""
        red.merge_state(self.plan.opts.topk, result)
        for path, lo, rows in result["sample"]:
            self.sink.write_sample(path, lo, rows)


@dataclass
class _Stored:
    """A model or data object pickled inside the atlas (``_work/objects/``)."""

    rel: str

    def load(self, out: str) -> Any:
        import cloudpickle

        return cloudpickle.loads(Location(out).read_bytes(self.rel))


class ShardWorker:
    """A worker process's part of one distributed run, built once from the specs: the plan
    (layers and groups adopted from the coordinator's manifest), its chunk runner, and a
    sink that keeps sample rows for the coordinator. Shards of one process take turns: one
    module, one set of hooks."""

    def __init__(self, spec: WorkerSpec, model: Any, data: Any):
        self.plan = ExtractionPlan(model, data, spec.out, spec.opts)
        writer = AtlasWriter.attach(self.plan.out)
        self.plan.adopt(writer.manifest)
        self.runner = ChunkRunner(self.plan)
        self.sink = AtlasSink(self.plan, writer, keep_sample=True)
        self.lock = threading.Lock()
        self.loaded_snapshot = 0

    def run_shard(self, s_index: int, snap: str, path: str | None, start: int, stop: int) -> dict[str, Any]:
        """Run inputs ``[start, stop)`` of one snapshot: write their rows into the atlas (whole
        storage chunks, or what a resume left of one) and return the partial reductions."""
        with self.lock:
            try:
                from distributed import get_worker

                torch.set_num_threads(max(1, int(get_worker().state.nthreads)))
            except (ImportError, ValueError, AttributeError):
                pass
            if self.loaded_snapshot != s_index:
                if path is not None:
                    self.plan.load_snapshot(path)
                self.loaded_snapshot = s_index
            red = Reductions()
            pump(self.runner, self.sink, s_index, snap, self.plan.chunk_ranges(start, stop), red)
            result = red.state()
            result["sample"] = self.sink.take_sample()
            return result


_CACHE: dict[str, ShardWorker] = {}
_CACHE_LOCK = threading.Lock()


def _shard_task(spec: WorkerSpec, model: Any, data: Any, s_index: int, snap: str, path: str | None,
                start: int, stop: int) -> dict:
    """Runs on a worker: one shard, with the process's cached worker of this run."""
    with _CACHE_LOCK:
        worker = _CACHE.get(spec.run_id)
        if worker is None:
            _CACHE.clear()  # one run at a time per worker process; free an old model
            model, data = (x.load(spec.out) if isinstance(x, _Stored) else x for x in (model, data))
            worker = _CACHE[spec.run_id] = ShardWorker(spec, model, data)
    return worker.run_shard(s_index, snap, path, start, stop)
