"""Worker threads that run BLAS, within a thread budget.

numpy's BLAS (OpenBLAS here) starts as many threads as there are cores for every product. A
method that runs products on n worker threads of its own then asks for n x cores threads; on
a loaded machine an unpinned run measured 4 to 23 times slower than the same run with BLAS
pinned to one thread (issue 14). So such a method takes a budget, ``n_jobs``, and runs its
tasks in :func:`worker_pool`, which splits the budget (:func:`split_threads`) into workers
and BLAS threads per worker: ``n_jobs=1`` is one worker with BLAS pinned to one thread.

threadpoolctl does the pinning. Most BLAS builds (OpenBLAS with pthreads, MKL) keep one
setting per process, and threadpoolctl lets one thread at a time change it: the limit is
set by the thread that starts the pool, around the whole pool, so workers never undo each
other's. Each worker also asks for it, which is what BLAS builds with per-thread limits
(OpenMP) need. Dask workers need nothing from here: Dask starts every worker process with
OMP/MKL/OPENBLAS_NUM_THREADS=1 (distributed's ``pre-spawn-environ``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

from threadpoolctl import threadpool_limits


def cpu_count() -> int:
    """Cores this process may run on (its CPU affinity, where the system reports it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def split_threads(n_jobs: int, tasks: int) -> tuple[int, int]:
    """``(workers, BLAS threads per worker)`` for a budget of ``n_jobs`` threads (-1: every
    core) over ``tasks`` independent tasks.

    Workers are at most the tasks; the budget, capped at the cores, is shared out among them,
    so ``workers x threads <= max(cores, workers)``: a budget of 4 over one task gives one
    worker 4 BLAS threads, over 10 tasks 4 workers of one thread each.
    """
    budget = cpu_count() if n_jobs == -1 else int(n_jobs)
    workers = max(1, min(budget, tasks))
    return workers, max(1, min(budget, cpu_count()) // workers)


@contextmanager
def worker_pool(n_jobs: int, tasks: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool for ``tasks`` tasks within a budget of ``n_jobs`` threads, each worker's
    BLAS limited to its share for as long as the block runs."""
    workers, blas = split_threads(n_jobs, tasks)
    with threadpool_limits(limits=blas, user_api="blas"), \
            ThreadPoolExecutor(workers, initializer=_limit_this_thread, initargs=(blas,)) as pool:
        yield pool


def _limit_this_thread(blas: int) -> None:
    # Per-thread limits (OpenMP builds) last as long as the worker; with a process-wide limit
    # threadpoolctl leaves the setting to the thread that set it above.
    threadpool_limits(limits=blas, user_api="blas")
