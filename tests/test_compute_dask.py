"""Method reductions on Dask (neurocarta.compute): each Dask path gives what the in-process path
gives, on one real out-of-process LocalCluster; with nothing configured no Dask is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from neurocarta import compute

distributed = pytest.importorskip("distributed")

ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "NUMBA_NUM_THREADS")}


@pytest.fixture(scope="module")
def client():
    import logging

    # processes=True: the workers really are other processes, so every task and every
    # argument crosses a pickle boundary as it would on a cluster
    # (no dashboard; the scheduler's bare HTTP server on a free port, not on a busy 8787)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       host="127.0.0.1", scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                       silence_logs=logging.ERROR, env=ONE_THREAD)
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(autouse=True)
def _no_setting(monkeypatch):
    monkeypatch.delenv(compute.ENV, raising=False)
    compute.reset()
    yield
    compute.reset()


def in_process(fn, *args, **kwargs):
    with compute.use_dask(None):
        return fn(*args, **kwargs)


def on_dask(client, task, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with ``client`` configured; checks tasks named ``task`` ran on it."""
    with compute.use_dask(client) as c, distributed.get_task_stream(client=client) as stream:
        assert compute.active_client() is c
        out = fn(*args, **kwargs)
    names = {distributed.utils.key_split(t["key"]) for t in stream.data}
    assert task in names, names
    return out


# --------------------------------------------------------------------------- data

@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A (1000 x 24) float16 Zarr v3 array in 37-row chunks (ReLU-like: many tied zeros), with
    group keys mixing ints, strings and missing values, in an order where blocks discover
    the groups differently."""
    import zarr

    root = tmp_path_factory.mktemp("store") / "atlas"
    rng = np.random.default_rng(0)
    x = np.maximum(0, rng.normal(size=(1000, 24))).astype(np.float16)
    g = zarr.open_group(str(root), mode="w", zarr_format=3)
    arr = g.create_array("snap/acts/layer/value", shape=x.shape, chunks=(37, 24), dtype="float16")
    arr[:] = x
    pool = np.array([3, 1, "cat", None, 7.0, "dog"], dtype=object)
    keys = pool[rng.integers(0, len(pool), 1000)]
    keys[:400] = np.where(keys[:400] == "dog", 3, keys[:400])  # "dog" first appears late
    return root, "snap/acts/layer/value", x, keys


def planted_sets(n_neurons=150, n_inputs=400, k=20, seed=0):
    rng = np.random.default_rng(seed)
    sets = [np.sort(rng.choice(n_inputs, size=k, replace=False)) for _ in range(n_neurons)]
    sets[5] = np.zeros(0, dtype=np.int64)  # an empty exemplar set
    indptr = np.r_[0, np.cumsum([len(s) for s in sets])].astype(np.int64)
    return indptr, np.concatenate(sets).astype(np.int64), n_inputs


# --------------------------------------------------------------------------- tests

def test_group_sums_on_dask_equal_in_process_and_numpy(client, stored):
    root, path, x, keys = stored
    ref = in_process(compute.group_sums, root, path, keys)
    got = on_dask(client, "group_sums_task", compute.group_sums, root, path, keys)
    assert got[0] == ref[0]  # same groups in the same (first-appearance) order
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-12)
    np.testing.assert_allclose(got[3], ref[3], rtol=1e-12)
    # and both are right: against numpy on the raw rows
    x64 = x.astype(np.float64)
    for g, count, s, ss in zip(*got):
        mask = np.array([k is None if g is None else (k is not None and k == g) for k in keys])
        assert count == mask.sum()
        np.testing.assert_allclose(s, x64[mask].sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(ss, (x64[mask] ** 2).sum(axis=0), rtol=1e-12)
    assert set(map(str, got[0])) == {"3", "1", "cat", "None", "7.0", "dog"}


def test_memory_store_stays_in_process(client, stored):
    """A memory:// store exists in this process only: its reductions never go to the workers."""
    import zarr

    _, _, x, keys = stored
    zarr.open_group("memory://nc-compute-test", mode="w", zarr_format=3).create_array(
        "a", shape=x.shape, chunks=(100, 24), dtype="float16")[:] = x
    ref = in_process(compute.group_sums, "memory://nc-compute-test", "a", keys)
    with compute.use_dask(client), distributed.get_task_stream(client=client) as stream:
        got = compute.group_sums("memory://nc-compute-test", "a", keys)
        top = compute.topk_from_array("memory://nc-compute-test", "a", 3)
    assert not stream.data and got[0] == ref[0]
    np.testing.assert_array_equal(got[2], ref[2])
    np.testing.assert_array_equal(top.values, np.sort(x.astype(np.float32), axis=0)[::-1][:3])


def test_nap_profiles_from_dask_group_sums(client, stored):
    """NAP profiles come from Atlas.group_stats, which hands these sums to GroupStats.from_sums."""
    from neurocarta.methods.topomap.profiles import profiles_from_stats
    from neurocarta.store.atlas import GroupStats

    root, path, _, keys = stored
    a = profiles_from_stats(GroupStats.from_sums("label", *in_process(compute.group_sums, root, path, keys)))
    b = profiles_from_stats(GroupStats.from_sums("label", *on_dask(client, "group_sums_task", compute.group_sums, root, path, keys)))
    assert a.groups == b.groups and a.values.shape == (24, 6)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-10, atol=1e-12)


def test_topk_on_dask_equals_in_process_and_a_full_sort(client, stored):
    root, path, x, _ = stored
    ids = np.arange(1000) // 4  # token-layer style: 4 rows per input
    pos = (np.arange(1000) % 4).astype(np.int32)
    ref = in_process(compute.topk_from_array, root, path, 7, input_ids=ids, positions=pos)
    got = on_dask(client, "topk_task", compute.topk_from_array, root, path, 7, input_ids=ids, positions=pos)
    for name in ("values", "input_ids", "rows", "positions"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
    # the top-k order: value descending, smaller row first among ties (zeros tie a lot here)
    order = np.lexsort((np.broadcast_to(np.arange(1000)[:, None], x.shape), -x.astype(np.float32)), axis=0)[:7]
    np.testing.assert_array_equal(got.rows, order)
    np.testing.assert_array_equal(got.values, np.take_along_axis(x.astype(np.float32), order, axis=0))
    np.testing.assert_array_equal(got.input_ids, order // 4)
    np.testing.assert_array_equal(got.positions[..., 0], order % 4)
    assert (got.positions[..., 1] == -1).all()


def test_cooccurrence_on_dask_is_the_same_sparse_matrix(client):
    from neurocarta.methods.concepts.embedding import cooccurrence, ppmi_svd

    indptr, indices, n_inputs = planted_sets()
    ref = in_process(cooccurrence, indptr, indices, n_inputs)
    got = on_dask(client, "gram_block", cooccurrence, indptr, indices, n_inputs)
    assert isinstance(got, sp.csr_matrix) and got.shape == ref.shape == (150, 150)
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_array_equal(got.data, ref.data)
    assert got.diagonal()[5] == 0 and got.diagonal()[0] == 20
    emb_ref = in_process(ppmi_svd, indptr, indices, 8, n_inputs=n_inputs)
    np.testing.assert_array_equal(on_dask(client, "gram_block", ppmi_svd, indptr, indices, 8, n_inputs=n_inputs), emb_ref)


def test_mapper_graph_on_dask_is_identical(client):
    from neurocarta.methods.mapper import Mapper

    rng = np.random.default_rng(0)
    x = np.maximum(0, rng.normal(size=(1500, 12)) + 6 * np.eye(12)[rng.integers(0, 5, 1500)])

    def fit():
        return Mapper(intervals=8, overlap=0.3).fit(x).graph_

    ref, got = in_process(fit), on_dask(client, "cluster_rows", fit)
    assert ref.n_nodes > 5 and ref.n_edges > 0
    assert got.cubes == ref.cubes and got.n_nodes == ref.n_nodes
    for a, b in zip(got.nodes, ref.nodes):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.edges, ref.edges)
    np.testing.assert_array_equal(got.shared, ref.shared)
    np.testing.assert_array_equal(got.jaccard, ref.jaccard)


def _pid(_):
    return [os.getpid()]


def _concat(a, b):
    return a + b


# the workers cannot import this test module: ship its helpers by value
import cloudpickle  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_map_reduce_runs_on_the_workers_in_item_order(client):
    items = list(range(23))
    assert on_dask(client, "fold", compute.map_reduce, lambda i: [i], items, _concat, split_every=3) == items
    pids = set(on_dask(client, "pid", compute.map_reduce, _pid, items, _concat))
    assert os.getpid() not in pids and pids <= set(client.run(os.getpid).values())
    assert in_process(compute.map_reduce, _pid, items, _concat) == [os.getpid()] * 23


def test_use_dask_nests_and_environment_variable_is_honoured(client, monkeypatch):
    address = client.scheduler.address
    assert compute.active_client() is None
    with compute.use_dask(client):
        with compute.use_dask(None):
            assert compute.active_client() is None
        assert compute.active_client() is client
    assert compute.active_client() is None

    monkeypatch.setenv(compute.ENV, address)
    env_client = compute.active_client()
    assert env_client is not None and env_client is not client and env_client.scheduler.address == address
    assert compute.active_client() is env_client  # connected once, then reused
    assert os.getpid() not in set(compute.map_reduce(_pid, range(4), _concat))
    with compute.use_dask(None):  # an explicit setting wins over the environment
        assert compute.active_client() is None
    compute.reset()
    assert env_client.status == "closed"

    monkeypatch.delenv(compute.ENV)
    with compute.use_dask(address) as owned:  # an address: a client made for the block, closed after it
        assert owned.scheduler.address == address and compute.active_client() is owned
    assert owned.status == "closed" and compute.active_client() is None
    with pytest.raises(TypeError):
        compute.use_dask(42)


def test_in_process_runs_never_import_dask(stored, tmp_path):
    """With nothing configured, group sums, top-k, co-occurrence and Mapper run with no Dask
    import at all; the same script with NEUROCARTA_SCHEDULER set to a dead address fails
    trying to connect, which shows the variable is read."""
    root, path, _, keys = stored
    np.save(tmp_path / "keys.npy", keys, allow_pickle=True)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from neurocarta import compute
        from neurocarta.methods.concepts.embedding import cooccurrence
        from neurocarta.methods.mapper import Mapper
        keys = np.load({str(tmp_path / 'keys.npy')!r}, allow_pickle=True)
        groups, count, s, ss = compute.group_sums({str(root)!r}, {path!r}, keys)
        assert count.sum() == 1000
        compute.topk_from_array({str(root)!r}, {path!r}, 5)
        cooccurrence(np.array([0, 2, 3]), np.array([0, 1, 1]))
        Mapper(intervals=4).fit(np.random.default_rng(0).normal(size=(300, 5)))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != compute.ENV}
    env.update(ONE_THREAD)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    env[compute.ENV] = "tcp://127.0.0.1:9"  # nothing listens there
    env["DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"] = "1s"
    failed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and "127.0.0.1:9" in failed.stderr, failed.stderr[-2000:]
