"""Streaming top-k and group sums against their batch definitions."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from neurocarta.streaming import GroupStatsAccumulator, TopKAccumulator, _order_keys


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


def _reference_topk(x, rows, ids, pos, k):
    """Full sort of every row seen: value descending (0.0 above -0.0, as the keys order them),
    then row ascending; the best min(n, k) per neuron as (values, rows, input_ids, positions)."""
    n, c = x.shape
    r = np.broadcast_to(rows[:, None], x.shape)
    negzero = (x == 0) & np.signbit(x)
    order = np.lexsort((r, negzero, -x), axis=0)[:k]
    return (np.take_along_axis(x, order, axis=0), rows[order], ids[order],
            np.take_along_axis(pos, order[:, :, None], axis=0))


def _assert_topk(res, want, context=""):
    values, rows, ids, pos = want
    assert res.values.shape == values.shape, context
    np.testing.assert_array_equal(res.values.view(np.uint32), values.astype(np.float32).view(np.uint32), context)
    np.testing.assert_array_equal(res.rows, rows, context)
    np.testing.assert_array_equal(res.input_ids, ids, context)
    np.testing.assert_array_equal(res.positions, pos, context)
    assert res.values.dtype == np.float32 and res.rows.dtype == np.int64
    assert res.input_ids.dtype == np.int64 and res.positions.dtype == np.int32


def _random_values(rng, kind, n, c):
    if kind == "normal":
        return rng.normal(size=(n, c)).astype(np.float32)
    if kind == "relu":  # many tied zeros
        return np.maximum(rng.normal(size=(n, c)), 0).astype(np.float32)
    if kind == "small_ints":  # heavy ties
        return rng.integers(-2, 3, size=(n, c)).astype(np.float32)
    if kind == "float16":  # rounded: ties between nearby values
        return rng.normal(size=(n, c)).astype(np.float16).astype(np.float32)
    if kind == "negative":
        return -np.abs(rng.normal(size=(n, c))).astype(np.float32) - 1.0
    if kind == "signed_zeros":  # 0.0 and -0.0 interleaved with a few other values
        return rng.choice(np.array([0.0, -0.0, 0.0, -0.0, 1.0, -1.0], dtype=np.float32), size=(n, c))
    raise ValueError(kind)


def _random_positions(rng, mode, n, c):
    """Full (n, C, 2) positions and, for per-row modes, the (n,) token positions."""
    if mode == "none":
        return np.full((n, c, 2), -1, dtype=np.int32), None
    if mode == "token":
        tok = rng.integers(0, 50, size=n)
        full = np.full((n, c, 2), -1, dtype=np.int32)
        full[:, :, 0] = tok[:, None]
        return full, tok
    return rng.integers(0, 30, size=(n, c, 2)).astype(np.int32), None


def _feed(acc, rng, x, rows, ids, full_pos, tok, mode, lo, hi):
    """Update with rows [lo, hi) in random batch sizes (empty batches included), passing the
    positions in a random one of the forms a caller may use."""
    s = lo
    while s < hi:
        b = min(hi - s, int(rng.choice([0, 1, 2, 5, 17, 64, 200])))
        sl = slice(s, s + b)
        if mode == "none":
            p = None
        elif mode == "token":
            form = rng.integers(3)
            if form == 0:
                p = tok[sl]
            elif form == 1:  # what extraction passes for token layers
                pair = np.stack([tok[sl], np.full(b, -1)], axis=1)
                p = np.broadcast_to(pair[:, None, :], (b, x.shape[1], 2))
            else:
                p = full_pos[sl].astype(np.int64)
        else:
            p = full_pos[sl] if rng.integers(2) else full_pos[sl].astype(np.int64)
        v = x[sl]
        if np.array_equal(v.astype(np.float16).astype(np.float32), v, equal_nan=True) and rng.integers(2):
            v = v.astype(np.float16)  # stored activations are often float16: same ranking
        acc.update(v, rows[sl], ids[sl], p)
        s += b


KINDS = ["normal", "relu", "small_ints", "float16", "negative", "signed_zeros"]


@pytest.mark.parametrize("seed", range(6))
def test_topk_random_streams_equal_full_sort(seed):
    """Random batchings, ties, merges and resumes all give the full sort's top-k exactly."""
    rng = np.random.default_rng(100 + seed)
    for case in range(25):
        kind = KINDS[(seed + case) % len(KINDS)]
        n, c = int(rng.integers(0, 300)), int(rng.integers(1, 8))
        k = int(rng.choice([1, 2, 7, 40, 120, 400]))  # often more than the rows seen
        mode = ["none", "token", "full"][case % 3]
        x = _random_values(rng, kind, n, c)
        rows = rng.permutation(n).astype(np.int64) + int(rng.choice([0, 1000, 2**31]))  # any order, distinct
        ids = rows // 3
        full_pos, tok = _random_positions(rng, mode, n, c)
        want = _reference_topk(x, rows, ids, full_pos, k)
        ctx = f"seed {seed} case {case}: {kind} n={n} c={c} k={k} positions={mode}"

        one = TopKAccumulator(k, c)
        _feed(one, rng, x, rows, ids, full_pos, tok, mode, 0, n)
        _assert_topk(one.result(), want, ctx)
        assert one.result().values.shape == (min(n, k), c)

        # two shards over disjoint rows, merged
        cut = int(rng.integers(0, n + 1))
        a, b = TopKAccumulator(k, c), TopKAccumulator(k, c)
        _feed(a, rng, x, rows, ids, full_pos, tok, mode, 0, cut)
        _feed(b, rng, x, rows, ids, full_pos, tok, mode, cut, n)
        a.merge(b)
        _assert_topk(a.result(), want, ctx + " merged")

        # resumed mid-stream from a pickled state, which must not alias the live one
        first = TopKAccumulator(k, c)
        _feed(first, rng, x, rows, ids, full_pos, tok, mode, 0, cut)
        state = first.state()
        frozen = pickle.dumps(state)
        _feed(first, rng, x, rows, ids, full_pos, tok, mode, cut, n)
        assert pickle.dumps(state) == frozen, "state() must be a copy"
        assert state["keys"].shape == (min(cut, k), c)
        resumed = TopKAccumulator.from_state(k, pickle.loads(frozen))
        _feed(resumed, rng, x, rows, ids, full_pos, tok, mode, cut, n)
        _assert_topk(resumed.result(), want, ctx + " resumed")
        _assert_topk(first.result(), want, ctx + " uninterrupted")


def _old_format_state(x, rows, ids, pos, k):
    """The state as the argpartition version kept it: the best min(n, k) keys per neuron,
    unordered, as (m, C) arrays."""
    keys = _order_keys(x, rows)
    ids2 = np.broadcast_to(ids[:, None], x.shape)
    if keys.shape[0] > k:
        sel = np.argpartition(keys, keys.shape[0] - k, axis=0)[-k:]
        keys = np.take_along_axis(keys, sel, axis=0)
        ids2 = np.take_along_axis(ids2, sel, axis=0)
        pos = np.take_along_axis(pos, sel[:, :, None], axis=0)
    shuffle = np.random.default_rng(0).permutation(keys.shape[0])
    return {"keys": keys[shuffle], "input_ids": np.ascontiguousarray(ids2[shuffle]), "positions": pos[shuffle]}


@pytest.mark.parametrize("n_before,k", [(0, 10), (7, 10), (10, 10), (150, 10), (150, 400)])
def test_topk_resumes_from_old_format_state(n_before, k):
    rng = np.random.default_rng(n_before + k)
    x = np.maximum(rng.normal(size=(300, 6)), 0).astype(np.float16).astype(np.float32)
    rows = np.arange(300, dtype=np.int64)
    pos = rng.integers(0, 9, size=(300, 6, 2)).astype(np.int32)
    old = _old_format_state(x[:n_before], rows[:n_before], rows[:n_before] + 5, pos[:n_before], k)
    acc = TopKAccumulator.from_state(k, pickle.loads(pickle.dumps(old)))
    _assert_topk(acc.result(), _reference_topk(x[:n_before], rows[:n_before], rows[:n_before] + 5,
                                               pos[:n_before], k))
    acc.update(x[n_before:], rows[n_before:], rows[n_before:] + 5, pos[n_before:])
    _assert_topk(acc.result(), _reference_topk(x, rows, rows + 5, pos, k))


def test_topk_orders_special_floats_as_the_keys_do():
    """NaN, infinities, subnormals and signed zeros keep the key order (_order_keys), whatever
    the batching: +NaN above +inf, -0.0 below 0.0, -NaN last."""
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0,
                        np.finfo(np.float32).max, -np.finfo(np.float32).max], dtype=np.float32)
    rng = np.random.default_rng(5)
    x = rng.choice(special, size=(90, 4))
    rows = np.arange(90, dtype=np.int64)
    keys = _order_keys(x, rows)
    order = np.argsort(keys, axis=0)[::-1][:20]
    acc = TopKAccumulator(20, 4)
    for s in range(0, 90, 13):
        acc.update(x[s:s + 13], rows[s:s + 13], rows[s:s + 13])
    res = acc.result()
    np.testing.assert_array_equal(res.rows, order)
    np.testing.assert_array_equal(res.values.view(np.uint32), np.take_along_axis(x, order, axis=0).view(np.uint32))


def test_topk_float16_input_ranks_as_its_float32_cast():
    """Every float16 bit pattern (NaNs, infinities, subnormals, -0.0) ranks as the float32
    copy would: the same result from float16 and from float32 batches."""
    x16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(-1, 8)
    x16 = x16[np.random.default_rng(6).permutation(x16.shape[0])]
    rows = np.arange(x16.shape[0], dtype=np.int64)
    got, want = TopKAccumulator(50, 8), TopKAccumulator(50, 8)
    for s in range(0, x16.shape[0], 1000):
        got.update(x16[s:s + 1000], rows[s:s + 1000], rows[s:s + 1000])
    want.update(x16.astype(np.float32), rows, rows)
    keys = _order_keys(x16.astype(np.float32), rows)
    order = np.argsort(keys, axis=0)[::-1][:50]
    np.testing.assert_array_equal(got.result().rows, order)
    np.testing.assert_array_equal(want.result().rows, order)
    np.testing.assert_array_equal(got.result().values.view(np.uint32), want.result().values.view(np.uint32))


def test_topk_empty_and_bad_shapes():
    acc = TopKAccumulator(5, 3)
    acc.update(np.zeros((0, 3), np.float32), np.arange(0), np.arange(0))
    res = acc.result()
    assert res.values.shape == (0, 3) and res.positions.shape == (0, 3, 2)
    assert TopKAccumulator.from_state(5, acc.state()).result().values.shape == (0, 3)
    with pytest.raises(ValueError):
        acc.update(np.zeros((2, 4), np.float32), np.arange(2), np.arange(2))
    with pytest.raises(ValueError):
        acc.update(np.zeros((2, 3), np.float32), np.arange(2), np.arange(2), np.zeros((2, 3), np.int64))


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
