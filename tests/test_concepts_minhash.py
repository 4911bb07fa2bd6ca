"""MinHash signatures, exact Jaccard and LSH banding of neurons' exemplar sets (issue 5)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import brentq

from neurocarta.errors import UserError
from neurocarta.methods.concepts.lsh import (candidate_pairs, collision_probability, lsh_params,
                                             similar_pairs)
from neurocarta.methods.concepts.minhash import (EMPTY, estimate_jaccard, exact_jaccard,
                                                 minhash_signatures)

H = 128
UNIVERSE = 1_200_000


def to_csr(sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    sets = [np.unique(np.asarray(s, dtype=np.int64)) for s in sets]
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    indices = np.concatenate(sets) if sets else np.zeros(0, np.int64)
    return indptr, indices.astype(np.int64)


def pair_with_jaccard(rng: np.random.Generator, j: float, size: int = 200, layout: str = "random", block: int = 0):
    """Two sets of ``size`` ids sharing ``ov`` of them: Jaccard ov / (2 size - ov), close to j.

    Layouts "consecutive" (a run of ids) and "strided" (multiples of 1024) are the hard cases
    for linear hash functions; they use the ids of their own ``block`` so that pairs share no
    ids and their errors are independent."""
    ov = int(round(2 * size * j / (1 + j)))
    if layout == "random":
        ids = rng.choice(UNIVERSE, 2 * size - ov, replace=False)
    else:
        ids = (block * 2 * size + np.arange(2 * size - ov)) * (1 if layout == "consecutive" else 1024)
    return ids[:size], ids[size - ov:], ov / (2 * size - ov)


def python_jaccard(a, b) -> float:
    a, b = set(map(int, a)), set(map(int, b))
    return len(a & b) / len(a | b) if a | b else 0.0


# ----------------------------------------------------------------------------- MinHash accuracy

@pytest.mark.parametrize("layout", ["random", "consecutive", "strided"])
def test_estimates_lie_within_the_expected_error(layout):
    rng = np.random.default_rng(7)
    sets, truth = [], []
    for block, j in enumerate(np.linspace(0.02, 0.98, 600)):
        a, b, exact = pair_with_jaccard(rng, j, layout=layout, block=block)
        sets += [a, b]
        truth.append(exact)
    truth = np.array(truth)
    sig = minhash_signatures(*to_csr(sets), n_hashes=H, seed=3)
    err = estimate_jaccard(sig[0::2], sig[1::2]) - truth
    sd = np.sqrt(truth * (1 - truth) / H)  # binomial: H independent agreements of probability J
    # no bias: the mean error is within 4 standard errors of 0 (unscrambled linear hashes are
    # off by about -0.04 on consecutive and strided ids)
    assert abs(err.mean()) < 4 * np.sqrt(np.mean(sd**2) / len(err))
    # spread as the binomial says: E|N(0, sd)| = sd sqrt(2 / pi), within 15 %
    ratio = np.abs(err).mean() / np.mean(sd * np.sqrt(2 / np.pi))
    assert 0.85 < ratio < 1.15, ratio
    # no estimate beyond 4 sigma (plus one hash of rounding)
    assert (np.abs(err) <= 4 * sd + 1 / H).all(), np.abs(err / sd).max()


def test_estimate_jaccard_by_hand():
    a = np.array([1, 2, 3, 4], dtype=np.uint32)
    b = np.array([1, 2, 0, 0], dtype=np.uint32)
    assert estimate_jaccard(a, b) == 0.5
    assert isinstance(estimate_jaccard(a, b), float)
    np.testing.assert_array_equal(estimate_jaccard(np.stack([a, a]), np.stack([b, a])), [0.5, 1.0])
    with pytest.raises(UserError, match="same, non-zero number of hashes"):
        estimate_jaccard(a, b[:3])


# ----------------------------------------------------------------------------- shared hash family

def test_hash_functions_are_shared_across_sets_and_batches():
    rng = np.random.default_rng(0)
    sets = [rng.choice(UNIVERSE, int(rng.integers(1, 300)), replace=False) for _ in range(50)]
    sets[10] = sets[3].copy()
    indptr, indices = to_csr(sets)
    sig = minhash_signatures(indptr, indices, n_hashes=64, seed=5)
    assert sig.shape == (50, 64) and sig.dtype == np.uint32
    np.testing.assert_array_equal(sig[10], sig[3])  # identical sets, identical signatures
    assert (sig[3] != sig[4]).any()
    assert (sig < 2**31).all()
    # a set's signature does not depend on the batch: alone, or in a reversed batch
    alone = minhash_signatures(*to_csr([sets[7]]), n_hashes=64, seed=5)
    np.testing.assert_array_equal(alone[0], sig[7])
    rev = minhash_signatures(*to_csr(sets[::-1]), n_hashes=64, seed=5)
    np.testing.assert_array_equal(rev[::-1], sig)
    # seeded: same seed same family, another seed another family
    np.testing.assert_array_equal(minhash_signatures(indptr, indices, n_hashes=64, seed=5), sig)
    assert (minhash_signatures(indptr, indices, n_hashes=64, seed=6) != sig).mean() > 0.9
    # the first hashes do not depend on how many follow
    np.testing.assert_array_equal(minhash_signatures(indptr, indices, n_hashes=16, seed=5), sig[:, :16])


def test_empty_sets_get_the_empty_signature_and_never_pair():
    indptr, indices = to_csr([[], [1, 2, 3], [], [1, 2, 3]])
    sig = minhash_signatures(indptr, indices, n_hashes=8)
    assert (sig[0] == EMPTY).all() and (sig[2] == EMPTY).all()
    assert not (sig[1] == EMPTY).any()
    np.testing.assert_array_equal(candidate_pairs(sig, bands=8, rows=1), [[1, 3]])
    np.testing.assert_array_equal(exact_jaccard(indptr, indices, np.array([[0, 2], [0, 1], [1, 3]])), [0, 0, 1])


@pytest.mark.parametrize("bad, call, match", [
    ("n_hashes", lambda p, i: minhash_signatures(p, i, n_hashes=0), "n_hashes must be a positive integer"),
    ("negative id", lambda p, i: minhash_signatures(p, np.array([-1, 2, 3, 4])), "non-negative"),
    ("huge id", lambda p, i: minhash_signatures(p, np.array([1, 2, 3, 2**31])), "below 2\\*\\*31"),
    ("not monotone", lambda p, i: minhash_signatures(np.array([0, 3, 2, 4]), i), "not monotone"),
    ("bad end", lambda p, i: minhash_signatures(np.array([0, 2, 3]), i), "end at len\\(indices\\)"),
    ("float ids", lambda p, i: minhash_signatures(p, i.astype(float)), "must hold integers"),
    ("unsorted", lambda p, i: exact_jaccard(p, np.array([1, 2, 3, 1]), np.array([[0, 1]])), "set 1 .*sorted"),
    ("duplicate", lambda p, i: exact_jaccard(p, np.array([1, 1, 3, 4]), np.array([[0, 1]])), "set 0 .*unique"),
    ("pair range", lambda p, i: exact_jaccard(p, i, np.array([[0, 2]])), "outside 0..1"),
    ("pair shape", lambda p, i: exact_jaccard(p, i, np.array([0, 1])), "\\(m, 2\\)"),
])
def test_bad_input_raises_user_error(bad, call, match):
    indptr, indices = np.array([0, 2, 4]), np.array([1, 2, 3, 4])
    with pytest.raises(UserError, match=match):
        call(indptr, indices)


# ----------------------------------------------------------------------------- exact Jaccard

@pytest.mark.parametrize("top", [60, 2**31 - 1], ids=["dense-ids", "sparse-ids"])
def test_exact_jaccard_matches_python_sets(top):
    rng = np.random.default_rng(1)
    # a small alphabet gives every size of overlap; ids spread up to ``top`` take the rank path
    alphabet = np.sort(rng.choice(top, 60, replace=False)) if top > 60 else np.arange(60)
    sets = [rng.choice(alphabet, int(rng.integers(0, 40)), replace=False) for _ in range(80)]
    indptr, indices = to_csr(sets)
    pairs = rng.integers(0, 80, (3000, 2))  # unsorted, with i == j and i > j
    got = exact_jaccard(indptr, indices, pairs)
    want = [python_jaccard(sets[i], sets[j]) for i, j in pairs]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    assert got.dtype == np.float64 and 0 < np.mean(np.array(want) > 0) < 1


# ----------------------------------------------------------------------------- the S-curve

def test_collision_probability_by_hand():
    assert collision_probability(0.5, bands=2, rows=2) == pytest.approx(1 - 0.75**2)  # 0.4375
    assert collision_probability(0.9, bands=1, rows=3) == pytest.approx(0.729)
    assert collision_probability(0.2, bands=3, rows=1) == pytest.approx(1 - 0.8**3)
    np.testing.assert_allclose(collision_probability(np.array([0.0, 1.0]), 20, 5), [0.0, 1.0])
    with pytest.raises(UserError, match="rows must be a positive integer"):
        collision_probability(0.5, 2, 0)


def _midpoint(bands: int, rows: int) -> float:
    return brentq(lambda s: collision_probability(s, bands, rows) - 0.5, 0.0, 1.0)


@pytest.mark.parametrize("t", [0.2, 0.5, 0.8])
def test_lsh_params_put_the_s_curve_at_the_threshold(t):
    # equal weights: the S-curve's 0.5 point lies within 0.05 of the threshold
    b, r = lsh_params(t, H, false_positive_weight=0.5, false_negative_weight=0.5)
    assert b * r <= H
    assert abs(_midpoint(b, r) - t) <= 0.05, (b, r, _midpoint(b, r))
    assert abs((1 / b) ** (1 / r) - _midpoint(b, r)) < 0.05  # the docstring's approximation
    # defaults favour recall: midpoint below t, pairs at t itself collide with P >= 0.9, and
    # pairs spread over [t, 1] with P >= 0.95 on average
    b, r = lsh_params(t, H)
    assert b * r <= H and _midpoint(b, r) < t
    assert collision_probability(t, b, r) >= 0.9
    assert collision_probability(np.linspace(t, 1, 201), b, r).mean() >= 0.95


def test_lsh_params_known_values_and_bad_thresholds():
    assert lsh_params(0.5, 128, 0.5, 0.5) == (25, 5)
    assert lsh_params(1.0, 128) == (1, 128)  # nothing above 1 to miss: fewest false positives
    for bad in (0, 1.5, -1, float("nan"), "x"):
        with pytest.raises(UserError, match=r"threshold must lie in \(0, 1\], got"):
            lsh_params(bad)
    with pytest.raises(UserError, match="weights must be non-negative"):
        lsh_params(0.5, 128, 0.0, 0.0)


# ----------------------------------------------------------------------------- LSH recall

def planted_sets(n: int, n_pairs: int, t: float, seed: int = 0):
    """n random 200-id sets, the first 2 * n_pairs of them in planted pairs of Jaccard in [t, 1]."""
    rng = np.random.default_rng(seed)
    sets, planted = [], []
    for j in rng.uniform(t, 1.0, n_pairs):
        a, b, _ = pair_with_jaccard(rng, max(j, t + 0.003))  # rounding of the overlap stays >= t
        planted.append((len(sets), len(sets) + 1))
        sets += [a, b]
    sets += [rng.choice(UNIVERSE, 200, replace=False) for _ in range(n - len(sets))]
    return sets, np.array(planted)


def test_lsh_recall_of_planted_pairs_and_verified_output():
    t = 0.5
    sets, planted = planted_sets(3000, 300, t)
    indptr, indices = to_csr(sets)
    assert (exact_jaccard(indptr, indices, planted) >= t).all()
    b, r = lsh_params(t, H)
    cand = candidate_pairs(minhash_signatures(indptr, indices, H), b, r)
    assert cand.dtype == np.int64 and (cand[:, 0] < cand[:, 1]).all()
    assert len(np.unique(cand, axis=0)) == len(cand)
    codes = set(map(tuple, cand.tolist()))
    recall = np.mean([tuple(p) in codes for p in planted.tolist()])
    assert recall >= 0.95, recall
    assert len(cand) < 3 * len(planted)  # random 200-of-1.2M sets hardly ever collide

    pairs, jac = similar_pairs(indptr, indices, t)
    assert (jac >= t).all() and len(pairs) >= 0.95 * len(planted)
    np.testing.assert_allclose(jac, [python_jaccard(sets[i], sets[j]) for i, j in pairs])
    assert (np.diff(pairs[:, 0]) >= 0).all()
    # overriding the banding: one band of all hashes finds only near-identical pairs
    few, _ = similar_pairs(indptr, indices, t, bands=1, rows=H)
    assert len(few) < len(pairs)


def test_giant_buckets_are_windowed_with_a_warning():
    rng = np.random.default_rng(2)
    base = rng.choice(UNIVERSE, 200, replace=False)
    sets = [base] * 1000 + [rng.choice(UNIVERSE, 200, replace=False) for _ in range(20)]
    sig = minhash_signatures(*to_csr(sets), H)
    with pytest.warns(UserWarning, match="max_bucket=100"):
        cand = candidate_pairs(sig, bands=4, rows=32, max_bucket=100)
    # (B - w + 1) (w - 1) + ... : linear in B, not B^2 / 2 = 499,500
    assert len(cand) == (1000 - 99) * 99 + 99 * 98 // 2
    assert cand.max() < 1000
    # the window chains the whole bucket: one connected component
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    g = coo_matrix((np.ones(len(cand)), (cand[:, 0], cand[:, 1])), shape=(1000, 1000))
    assert connected_components(g, directed=False)[0] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(candidate_pairs(sig, bands=4, rows=32, max_bucket=1000)) == 1000 * 999 // 2
