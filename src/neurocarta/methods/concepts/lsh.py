"""Locality-sensitive hashing over MinHash signatures: the pairs of neurons worth verifying.

Banding: a signature of ``n_hashes`` entries is cut into ``bands`` bands of ``rows`` entries
(``bands * rows <= n_hashes``; spare entries are unused). Two sets become a candidate pair
when all ``rows`` entries of at least one band agree. Sets of Jaccard ``s`` agree on one entry
with probability ``s``, so they become candidates with probability

    P(s) = 1 - (1 - s**rows)**bands,

an S-curve rising from 0 to 1 whose midpoint lies near ``(1 / bands)**(1 / rows)``.

Candidates are then verified by exact Jaccard (``similar_pairs``), so false positives cost
only verification time, never a wrong result, while a false negative is a similar pair lost
for good. That is why the defaults favour recall.

Time grows linearly with the number of sets (a hash table per band, plus the candidates): no all-pairs
step anywhere, unlike comparing every pair of neurons.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
from numba import njit

from neurocarta.errors import UserError
from neurocarta.methods.concepts.minhash import (check_csr, check_n_hashes, jaccard_unchecked,
                                                 signatures_unchecked)

DEFAULT_MAX_BUCKET = 2000
FALSE_POSITIVE_WEIGHT = 0.05
FALSE_NEGATIVE_WEIGHT = 0.95
_GRID = 513  # integration points on each side of the threshold
_KEY_BLOCK = 1 << 22  # band keys computed at once (x 8 bytes)


# ----------------------------------------------------------------------------- the S-curve

def collision_probability(s: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """P(two sets of Jaccard ``s`` share at least one band) = 1 - (1 - s**rows)**bands."""
    _check_banding(bands, rows)
    p = 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands
    return float(p) if np.ndim(p) == 0 else p


def _check_banding(bands: int, rows: int, n_hashes: int | None = None) -> None:
    for name, v in (("bands", bands), ("rows", rows)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")
    if n_hashes is not None and bands * rows > n_hashes:
        raise UserError(f"bands x rows = {bands} x {rows} = {bands * rows} exceeds the signature length "
                        f"{n_hashes}; lower bands or rows, or raise n_hashes")


def _check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        t = float("nan")
    if not 0.0 < t <= 1.0:  # also rejects NaN
        raise UserError(f"threshold must lie in (0, 1], got {threshold!r}; it is the Jaccard similarity "
                        "above which two neurons count as similar, e.g. 0.5")
    return t


def lsh_params(threshold: float, n_hashes: int = 128, false_positive_weight: float = FALSE_POSITIVE_WEIGHT,
               false_negative_weight: float = FALSE_NEGATIVE_WEIGHT) -> tuple[int, int]:
    """(bands, rows) for a Jaccard threshold: the banding that minimises the weighted error area.

    The rule: over every (b, r) with b * r <= n_hashes, minimise

        false_positive_weight * integral_0^t P(s) ds + false_negative_weight * integral_t^1 (1 - P(s)) ds

    with P(s) = 1 - (1 - s**r)**b (trapezoid rule, 513 points a side). The first term is the
    area of pairs below the threshold that still collide, the second that of pairs above it
    that do not. The S-curve's midpoint is near (1/b)**(1/r); with equal weights it lands
    near the threshold (within about 0.05 for n_hashes = 128).

    Why the defaults (0.05, 0.95) favour recall: ``similar_pairs`` verifies every candidate by
    exact Jaccard, so a false positive costs one exact Jaccard of two short sets (about 0.5 us),
    while a false negative is a similar pair lost. With n_hashes = 128 and these weights, for
    every threshold from 0.05 to 0.95 the recall of pairs spread uniformly over [t, 1] is at
    least 0.98, and even pairs exactly at the threshold collide with probability at least 0.90
    (with equal weights: 0.75 and 0.31). The price is a midpoint below the threshold (about
    0.34 for t = 0.5), i.e. more candidates to verify.
    """
    t = _check_threshold(threshold)
    n_hashes = check_n_hashes(n_hashes)
    wfp, wfn = float(false_positive_weight), float(false_negative_weight)
    if not (wfp >= 0 and wfn >= 0 and wfp + wfn > 0):
        raise UserError(f"the weights must be non-negative and not both zero, got false_positive_weight={wfp} "
                        f"and false_negative_weight={wfn}")
    return _best_banding(t, n_hashes, wfp, wfn)


@lru_cache(maxsize=256)
def _best_banding(t: float, n_hashes: int, wfp: float, wfn: float) -> tuple[int, int]:
    combos = np.array([(b, r) for b in range(1, n_hashes + 1) for r in range(1, n_hashes // b + 1)])
    bands, rows = combos[:, 0], combos[:, 1]
    lo, hi = np.linspace(0.0, t, _GRID), np.linspace(t, 1.0, _GRID)

    def curve(s: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 - s[None, :] ** rows[:, None]) ** bands[:, None]

    fp = np.trapezoid(curve(lo), lo, axis=1)
    fn = np.trapezoid(1.0 - curve(hi), hi, axis=1)
    k = int(np.argmin(wfp * fp + wfn * fn))
    return int(bands[k]), int(rows[k])


# ----------------------------------------------------------------------------- candidates

@njit(nogil=True, cache=True, inline="always")
def _band_key(row, c0, rows):
    """One uint64 for entries c0 .. c0 + rows - 1 of a signature row: equal entries, equal keys.

    A splitmix64 mix folded over the entries. Unequal entries collide with probability about
    2**-64 per pair; such a collision only adds a candidate, which verification drops.
    """
    h = np.uint64(0x9E3779B97F4A7C15)
    for c in range(c0, c0 + rows):
        h ^= np.uint64(row[c])
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


@njit(nogil=True, cache=True)
def _band_keys(sig, live, band0, n_bands, rows):
    """Keys (n_bands, n_live) of bands band0 .. band0 + n_bands - 1 for the live sets.

    All bands of a set are keyed while its signature row is in cache: one sequential pass
    over the signatures instead of a strided pass per band (4x faster at 100k sets).
    """
    out = np.empty((n_bands, live.shape[0]), np.uint64)
    for u in range(live.shape[0]):
        row = sig[live[u]]
        for k in range(n_bands):
            out[k, u] = _band_key(row, (band0 + k) * rows, rows)
    return out


@njit(nogil=True, cache=True)
def _band_buckets(keys, live, cap):
    """Group the live sets by their key in one band: (members, starts, sizes) of the buckets
    with two or more sets, members listed bucket after bucket.

    Why a hash table and not a sort: grouping is then O(n) per band, not O(n log n), so the
    LSH stage stays linear in the number of sets. ``cap`` is a power of two >= 2 n (open
    addressing with linear probing, at most half full); key and bucket id share a slot, so a
    probe touches one cache line.
    """
    n, mask = live.shape[0], cap - 1
    table = np.full((cap, 2), -1, np.int64)  # (key bits, bucket id); id -1 = free
    bucket = np.empty(n, np.int64)
    n_buckets = 0
    for u in range(n):
        k = np.int64(keys[u])
        s = k & mask
        while table[s, 1] != -1 and table[s, 0] != k:
            s = (s + 1) & mask
        if table[s, 1] == -1:
            table[s, 0], table[s, 1] = k, n_buckets
            n_buckets += 1
        bucket[u] = table[s, 1]
    counts = np.zeros(n_buckets, np.int64)
    for u in range(n):
        counts[bucket[u]] += 1
    first = np.full(n_buckets, -1, np.int64)  # where each kept bucket starts in ``members``
    kept, total = 0, 0
    for g in range(n_buckets):
        if counts[g] > 1:
            first[g] = total
            total += counts[g]
            kept += 1
    starts, sizes = np.empty(kept, np.int64), np.empty(kept, np.int64)
    kept = 0
    for g in range(n_buckets):
        if counts[g] > 1:
            starts[kept], sizes[kept] = first[g], counts[g]
            kept += 1
    members = np.empty(total, np.int64)
    fill = first.copy()
    for u in range(n):
        g = bucket[u]
        if first[g] >= 0:
            members[fill[g]] = live[u]
            fill[g] += 1
    return members, starts, sizes


@njit(nogil=True, cache=True)
def _count_bucket_pairs(sizes, window):
    """Pairs each bucket emits: all B(B-1)/2, or with a sliding window of ``window`` members."""
    total = 0
    for s in sizes:
        if s <= window:
            total += s * (s - 1) // 2
        else:
            w = window - 1
            total += (s - w) * w + w * (w - 1) // 2
    return total


@njit(nogil=True, cache=True)
def _emit_bucket_pairs(members, starts, sizes, window, n, out):
    """Codes i * n + j (i < j) of each bucket's pairs: all of them, or those within ``window``
    consecutive members for buckets larger than ``window``."""
    m = 0
    for u in range(starts.shape[0]):
        s0, size = starts[u], sizes[u]
        reach = size if size <= window else window
        for x in range(size):
            a = members[s0 + x]
            for y in range(x + 1, min(size, x + reach)):
                b = members[s0 + y]
                out[m] = a * n + b if a < b else b * n + a
                m += 1
    return out


def _band_pairs(signatures: np.ndarray, keys: np.ndarray, live: np.ndarray,
                max_bucket: int) -> tuple[np.ndarray, int, int]:
    """Pair codes of one band (its keys given), and the number of giant buckets and of their members."""
    cap = 1 << max(1, int(2 * len(live)).bit_length())
    members, starts, sizes = _band_buckets(keys, live, cap)
    giant = np.flatnonzero(sizes > max_bucket)
    for g in giant:  # rare: order by whole signature, then set number, so windows hold look-alikes
        seg = np.sort(members[starts[g]:starts[g] + sizes[g]])
        members[starts[g]:starts[g] + sizes[g]] = seg[np.lexsort(signatures[seg].T[::-1])]
    out = np.empty(_count_bucket_pairs(sizes, max_bucket), dtype=np.int64)
    _emit_bucket_pairs(members, starts, sizes, max_bucket, len(signatures), out)
    return out, len(giant), int(sizes[giant].sum())


def candidate_pairs(signatures: np.ndarray, bands: int, rows: int, max_bucket: int = DEFAULT_MAX_BUCKET) -> np.ndarray:
    """Candidate pairs (m, 2) int64, unique, i < j, sorted: sets whose signatures agree on all
    ``rows`` entries of at least one of ``bands`` bands (band k = columns k*rows .. (k+1)*rows - 1).

    Per band, each set's rows are mixed into one 64-bit key, sets with equal keys are grouped
    into buckets with a hash table (linear time), and every pair inside a bucket is emitted;
    the bands' pairs are then merged.

    Empty sets (signature all ``EMPTY``) are never candidates: their Jaccard is 0 by definition,
    and they would otherwise share one bucket.

    Giant buckets: a bucket of B sets would emit B(B-1)/2 pairs (50 million for B = 10,000),
    which happens when many sets are near-duplicates or ``rows`` is too small. A bucket larger
    than ``max_bucket`` (w) is instead ordered by its members' whole signatures (lexicographic,
    so sets agreeing on more hashes sit together; ties by set number) and emits only the pairs
    within a sliding window of w consecutive members: about B * w pairs instead of B^2 / 2, and
    the bucket stays connected. Pairs further apart in that order can be missed unless another
    band catches them; a warning says how many buckets and sets this touched. Raise
    ``max_bucket`` to get every pair, or ``rows`` to make buckets smaller.
    """
    sig = np.ascontiguousarray(signatures)
    if sig.ndim != 2 or not np.issubdtype(sig.dtype, np.unsignedinteger):
        raise UserError(f"signatures must be a 2-D unsigned-integer array from minhash_signatures, got shape "
                        f"{sig.shape} and dtype {sig.dtype}")
    _check_banding(bands, rows, sig.shape[1])
    if not isinstance(max_bucket, (int, np.integer)) or max_bucket < 2:
        raise UserError(f"max_bucket must be an integer of at least 2, got {max_bucket!r}")
    n = len(sig)
    live = np.flatnonzero(~(sig == np.iinfo(sig.dtype).max).all(axis=1)).astype(np.int64)
    u, n_giant, giant_sets = _all_band_codes(sig, live, bands, rows, int(max_bucket))
    if n_giant:
        warnings.warn(f"LSH: {n_giant} bucket(s) over all bands held more than max_bucket={max_bucket} sets "
                      f"({giant_sets} set slots); they emitted only pairs within a sliding window of "
                      f"{max_bucket} sets in signature order, so some pairs may be missing. Raise max_bucket "
                      "for all pairs, or rows for smaller buckets", stacklevel=2)
    return np.stack([u // max(n, 1), u % max(n, 1)], axis=1).astype(np.int64, copy=False)


def _all_band_codes(sig: np.ndarray, live: np.ndarray, bands: int, rows: int,
                    max_bucket: int) -> tuple[np.ndarray, int, int]:
    """Sorted unique pair codes i * n + j over all bands, giant buckets met, their set slots."""
    codes: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    pending, n_giant, giant_sets = 0, 0, 0
    block = max(1, _KEY_BLOCK // max(len(live), 1))  # bands keyed at once: at most 32 MB of keys
    for b0 in range(0, bands, block):
        for band_keys in _band_keys(sig, live, b0, min(block, bands - b0), rows):
            c, g, gs = _band_pairs(sig, band_keys, live, max_bucket)
            codes.append(c)
            pending += len(c)
            n_giant, giant_sets = n_giant + g, giant_sets + gs
            if pending > max(4_000_000, 2 * len(codes[0])):  # merge as we go: repeats across bands
                codes = [np.unique(np.concatenate(codes))]   # do not pile up, merges stay O(total)
                pending = len(codes[0])
    return np.unique(np.concatenate(codes)), n_giant, giant_sets


# ----------------------------------------------------------------------------- the pipeline

def similar_pairs(indptr: np.ndarray, indices: np.ndarray, threshold: float, n_hashes: int = 128,
                  bands: int | None = None, rows: int | None = None, seed: int = 0,
                  max_bucket: int = DEFAULT_MAX_BUCKET) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of sets with exact Jaccard >= ``threshold``, found in time linear in the sets.

    MinHash signatures -> LSH candidates -> exact Jaccard of each candidate -> keep those at or
    above the threshold. Returns ``(pairs, jaccard)``: (m, 2) int64 with i < j sorted, and their
    exact Jaccard (float64). Every returned pair is truly similar; a similar pair is missed only
    when its signatures share no band (see ``lsh_params`` for how rarely).

    ``bands`` and ``rows`` default to ``lsh_params(threshold, n_hashes)``; give one and the other
    becomes ``n_hashes // given``; give both to override the rule.
    """
    t = _check_threshold(threshold)
    indptr, indices = check_csr(indptr, indices)
    n_hashes = check_n_hashes(n_hashes)
    if bands is None and rows is None:
        bands, rows = lsh_params(t, n_hashes)
    elif rows is None:
        _check_banding(bands, 1)
        rows = max(1, n_hashes // bands)
    elif bands is None:
        _check_banding(1, rows)
        bands = max(1, n_hashes // rows)
    _check_banding(bands, rows, n_hashes)
    sig = signatures_unchecked(indptr, indices, n_hashes, seed)
    cand = candidate_pairs(sig, bands, rows, max_bucket=max_bucket)
    jac = jaccard_unchecked(indptr, indices, cand)
    keep = jac >= t
    return cand[keep], jac[keep]
