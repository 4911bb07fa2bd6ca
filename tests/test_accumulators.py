"""Streaming top-k and group sums against their batch definitions."""

from __future__ import annotations

import numpy as np

from neurocarta.streaming import GroupStatsAccumulator, TopKAccumulator


def _full_sort_topk(x: np.ndarray, k: int) -> np.ndarray:
    rows = np.broadcast_to(np.arange(x.shape[0])[:, None], x.shape)
    return np.lexsort((rows, -x), axis=0)[:k]  # value descending, then row ascending


def test_streaming_topk_equals_full_sort_with_ties_and_negatives():
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(2000, 13)), 0).astype(np.float32)  # many tied zeros
    x[:, 3] = -np.abs(x[:, 3]) - 1.0  # an all-negative neuron
    x[:, 4] = 0.0  # all tied
    acc = TopKAccumulator(k=50, n_neurons=13)
    for s in range(0, 2000, 77):
        rows = np.arange(s, min(s + 77, 2000))
        acc.update(x[rows], rows, rows)
    res = acc.result()
    want = _full_sort_topk(x, 50)
    np.testing.assert_array_equal(res.rows, want)
    np.testing.assert_array_equal(res.values, np.take_along_axis(x, want, axis=0))
    np.testing.assert_array_equal(res.rows[:, 4], np.arange(50))


def test_topk_with_fewer_rows_than_k_and_merge_of_shards():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    small = TopKAccumulator(k=100, n_neurons=5)
    small.update(x, np.arange(30), np.arange(30))
    assert small.result().values.shape == (30, 5)
    a, b = TopKAccumulator(10, 5), TopKAccumulator(10, 5)
    a.update(x[:17], np.arange(17), np.arange(17))
    b.update(x[17:], np.arange(17, 30), np.arange(17, 30))
    a.merge(b)
    np.testing.assert_array_equal(a.result().rows, _full_sort_topk(x, 10))


def test_topk_state_round_trip_continues_identically():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    one = TopKAccumulator(20, 6)
    one.update(x[:200], np.arange(200), np.arange(200))
    resumed = TopKAccumulator.from_state(20, {k: v.copy() for k, v in one.state().items()})
    one.update(x[200:], np.arange(200, 400), np.arange(200, 400))
    resumed.update(x[200:], np.arange(200, 400), np.arange(200, 400))
    np.testing.assert_array_equal(one.result().rows, resumed.result().rows)


def test_group_stats_match_pandas():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 4))
    groups = rng.choice(np.array(["a", "b", "c"], dtype=object), size=500)
    acc = GroupStatsAccumulator(4)
    for s in range(0, 500, 64):
        acc.update(groups[s:s + 64], x[s:s + 64])
    for g in ("a", "b", "c"):
        slot = acc.groups.index(g)
        sel = x[groups == g]
        assert acc.count[slot] == len(sel)
        np.testing.assert_allclose(acc.sum[slot] / acc.count[slot], sel.mean(0), rtol=1e-12)
        np.testing.assert_allclose(acc.sumsq[slot], (sel ** 2).sum(0), rtol=1e-12)


def test_group_stats_accept_missing_and_mixed_values():
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    acc = GroupStatsAccumulator(2)
    acc.update(np.array([True, None, False, None, True, True], dtype=object), x)
    acc.update(np.array([None, None], dtype=object), x[:2])
    slot = {g: i for i, g in enumerate(acc.groups)}
    assert set(slot) == {True, False, None}
    assert acc.count[slot[None]] == 4 and acc.count[slot[True]] == 3
    np.testing.assert_allclose(acc.sum[slot[None]], x[[1, 3]].sum(0) + x[:2].sum(0))
