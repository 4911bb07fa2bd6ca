"""BLAS threads are pinned per worker (issue 14, bug 2).

``Mapper(n_jobs=1)`` used to leave BLAS unpinned: on a loaded machine that ran 4 to 23 times
slower than the same run with one BLAS thread. Now ``n_jobs`` is the thread budget: workers x
BLAS threads per worker never exceed it (nor the cores), and ``n_jobs=1`` pins BLAS to one
thread. Checked from inside the clustering kernel, where the products run.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from neurocarta import threads
from neurocarta.methods.mapper import Mapper


def blas_threads() -> int:
    """The most threads any loaded BLAS would use for a product started now."""
    return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


@pytest.fixture()
def seen(monkeypatch):
    """(thread id, BLAS threads) as the clustering kernel saw them, one entry per interval."""
    cluster = sys.modules["neurocarta.methods.mapper.cluster"]
    real = cluster.dbscan
    calls: list[tuple[int, int]] = []

    def recording(*args, **kwargs):
        calls.append((threading.get_ident(), blas_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster, "dbscan", recording)
    return calls


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(4, 8)) * 3)[rng.integers(0, 4, 600)] + rng.normal(size=(600, 8))


def test_n_jobs_1_pins_blas_to_one_thread(rows, seen):
    before = blas_threads()
    Mapper(intervals=4, eps=2.0, n_jobs=1).fit(rows)
    assert len(seen) == 4
    assert {n for _, n in seen} == {1}
    assert blas_threads() == before  # the caller's setting comes back


def test_workers_times_blas_threads_stay_within_the_budget(rows, seen):
    Mapper(intervals=6, eps=2.0, n_jobs=2).fit(rows)
    workers = {t for t, _ in seen}
    assert len(seen) == 6 and 1 <= len(workers) <= 2
    assert max(n for _, n in seen) * 2 <= max(2, threads.cpu_count())


def test_split_threads_shares_the_budget(monkeypatch):
    monkeypatch.setattr(threads, "cpu_count", lambda: 16)
    assert threads.split_threads(1, 70) == (1, 1)    # n_jobs=1: one thread in all
    assert threads.split_threads(4, 70) == (4, 1)    # many tasks: one BLAS thread per worker
    assert threads.split_threads(4, 1) == (1, 4)     # one task: the budget goes to its BLAS
    assert threads.split_threads(-1, 70) == (16, 1)  # -1: every core
    assert threads.split_threads(64, 2) == (2, 8)    # never more BLAS threads than cores
    assert threads.split_threads(3, 0) == (1, 3)


def test_worker_pool_limits_every_worker_and_restores_the_caller(monkeypatch):
    """The limit holds in every worker for the whole pool, and later pools (from other
    threads too) can set theirs: nothing is left holding BLAS after the block."""
    monkeypatch.setattr(threads, "cpu_count", lambda: 4)
    before = blas_threads()
    for n_jobs, tasks, share in [(2, 8, 1), (4, 1, 4), (2, 8, 1)]:  # each pool hands the setting back
        with threads.worker_pool(n_jobs=n_jobs, tasks=tasks) as pool:
            seen = set(pool.map(lambda _: blas_threads(), range(tasks)))
        assert seen == {share}
        assert blas_threads() == before
    other: list[int] = []

    def in_another_thread():
        with threads.worker_pool(n_jobs=1, tasks=3) as pool:
            other.extend(pool.map(lambda _: blas_threads(), range(3)))

    t = threading.Thread(target=in_another_thread)
    t.start()
    t.join()
    assert other == [1, 1, 1] and blas_threads() == before
