"""Concept coherence of neuron groups, measured on data with attribute columns.

NeuroCartography judged its groups by asking people whether a group's exemplar images show
one concept. Here the data carry attributes per input (a class, a colour, a planted
concept), and a group's coherence for an attribute is measured: pool the exemplar input
ids of all members as a multiset (an input in the top-k of three members counts three
times), look up each one's attribute value, and take the share of the most common value.
A group of neurons that all respond to red images scores 1 for "colour"; a group whose
exemplars mix all colours scores the majority colour's share.

The share of the most common value is biased upwards for small samples, so a score alone
says little. It is compared with random neuron groups of the same sizes (drawn from the
neurons that have exemplars), which carry the same bias; the report gives both, their
ratio (lift) and their difference.

Missing values (NaN / None, as pandas sees them) are dropped from the pool, so coherence is
the share among exemplars whose value is known; a group with no known value gets NaN and
is left out of the report's means.

Everything is vectorised: per attribute, a sparse neurons x values count matrix is built
once, and all groups' pooled histograms are one sparse product with a groups x neurons
membership matrix (the random groups' membership is built once and shared by all
attributes), so thousands of groups times many attributes take a fraction of a second.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...errors import UserError
from .embedding import validate_sets

#: Largest neurons x values (and block of groups x values) histogram kept dense: 32 MB.
DENSE_CELLS = 2 ** 22


# --------------------------------------------------------------------------- counting

def _as_groups(groups: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Flatten groups to (group id per member, member neuron index), checking the range."""
    arrays = [np.asarray(g).ravel() for g in groups]
    for a in arrays:
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise UserError("a neuron group must be an array of integer neuron indices")
    sizes = np.array([a.size for a in arrays], dtype=np.int64)
    members = np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)
    if members.size and (members.min() < 0 or members.max() >= n):
        raise UserError(f"neuron group members must lie in 0..{n - 1}")
    return np.repeat(np.arange(sizes.size), sizes), members


def _membership(gid: np.ndarray, members: np.ndarray, n_groups: int, n: int) -> sp.csr_matrix:
    """Groups x neurons matrix of member counts (a neuron listed twice counts twice)."""
    data = np.ones(members.size, dtype=np.float64)
    return sp.csr_matrix((data, (gid, members)), shape=(n_groups, n))


def _codes(values: np.ndarray | pd.Series, n_inputs: int, name: str = "values") -> tuple[np.ndarray, int]:
    """Integer codes per input id (-1 for missing) and the number of distinct known values."""
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if values.ndim != 1:
        raise UserError(f"attribute {name} must be one value per input (1-D)")
    if values.shape[0] < n_inputs:
        raise UserError(f"attribute {name} has {values.shape[0]} values but the exemplars "
                        f"use input ids up to {n_inputs - 1}")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64), len(uniques)


def _value_counts(indptr: np.ndarray, indices: np.ndarray, codes: np.ndarray,
                  n_values: int) -> np.ndarray | sp.csr_matrix:
    """Neurons x values matrix: how many of a neuron's exemplars hold each known value.

    A group's pooled histogram is then the sum of its members' rows, one product for all
    groups. Dense when it is small (up to ``DENSE_CELLS`` cells, the common case of an
    attribute with tens or hundreds of values); sparse otherwise (e.g. an id-like column),
    where rows hold at most k entries.
    """
    n = indptr.size - 1
    nv = max(n_values, 1)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    vals = codes[indices]
    known = vals >= 0
    rows, vals = rows[known], vals[known]
    if n * nv <= DENSE_CELLS:
        return np.bincount(rows * nv + vals, minlength=n * nv).reshape(n, nv).astype(np.float64)
    return sp.csr_matrix((np.ones(rows.size), (rows, vals)), shape=(n, nv))


def _mode_share(membership: sp.csr_matrix, counts: np.ndarray | sp.csr_matrix) -> np.ndarray:
    """Per group, the count of its most common value over its count of known values."""
    if isinstance(counts, np.ndarray):
        totals, best = _dense_sum_max(membership, counts)
    else:
        totals, best = _row_sum_max(sp.csr_matrix(membership @ counts))
    return np.where(totals > 0, best / np.maximum(totals, 1), np.nan)


def _dense_sum_max(membership: sp.csr_matrix, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row sums and maxima of membership @ counts, in blocks of groups to bound memory."""
    g = membership.shape[0]
    totals, best = np.zeros(g), np.zeros(g)
    step = max(1, DENSE_CELLS // counts.shape[1])
    for lo in range(0, g, step):
        pooled = np.asarray(membership[lo:lo + step] @ counts)
        totals[lo:lo + step] = pooled.sum(axis=1)
        best[lo:lo + step] = pooled.max(axis=1, initial=0.0)
    return totals, best


def _row_sum_max(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Row sums and maxima of a non-negative CSR matrix without sorting its indices."""
    totals = np.zeros(m.shape[0])
    best = np.zeros(m.shape[0])
    filled = np.flatnonzero(np.diff(m.indptr) > 0)
    if filled.size:
        totals[filled] = np.add.reduceat(m.data, m.indptr[filled])
        best[filled] = np.maximum.reduceat(m.data, m.indptr[filled])
    return totals, best


# --------------------------------------------------------------------------- public API

def group_coherence(groups: Sequence[np.ndarray], indptr: np.ndarray, indices: np.ndarray,
                    values: np.ndarray | pd.Series) -> np.ndarray:
    """Coherence of each group for one attribute: the share of the pooled exemplars (a
    multiset over members) that hold the most common known value; NaN for a group with no
    known value. ``values[x]`` is input x's attribute value, of any dtype."""
    indptr, indices, n_inputs = validate_sets(indptr, indices)
    codes, n_values = _codes(values, n_inputs)
    n = indptr.size - 1
    gid, members = _as_groups(groups, n)
    return _mode_share(_membership(gid, members, len(groups), n),
                       _value_counts(indptr, indices, codes, n_values))


def random_groups(sizes: Sequence[int], candidates: np.ndarray, draws: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``draws`` random groups per size, as (group id, member) with group id = draw * G + g.

    Each group is a run of one random permutation of the candidates, so its members are
    distinct and it is a uniform random subset of its size; groups in the same permutation
    are disjoint, which leaves every group's distribution unchanged. Group sizes are packed
    into permutations in order, starting a new permutation when a group would not fit.
    """
    sizes = np.asarray(sizes, dtype=np.int64).ravel()
    m = candidates.size
    if sizes.size and (sizes.min() < 0 or sizes.max() > m):
        raise UserError(f"random groups need sizes in 0..{m} (the number of candidate neurons)")
    all_sizes = np.tile(sizes, draws)
    starts = np.zeros(all_sizes.size, dtype=np.int64)
    pos = 0
    for i, s in enumerate(all_sizes.tolist()):  # cheap integer loop; the sampling is vectorised
        if m and pos % m + s > m:  # would straddle two permutations: start the next one
            pos += m - pos % m
        starts[i] = pos
        pos += s
    n_perm = -(-pos // m) if m else 0
    stream = np.concatenate([rng.permutation(candidates) for _ in range(n_perm)]) if n_perm \
        else np.zeros(0, np.int64)
    gid = np.repeat(np.arange(all_sizes.size), all_sizes)
    offsets = np.arange(gid.size) - np.repeat(np.cumsum(all_sizes) - all_sizes, all_sizes)
    return gid, stream[np.repeat(starts, all_sizes) + offsets].astype(np.int64)


def _candidates(indptr: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
    n = indptr.size - 1
    if candidates is None:
        return np.flatnonzero(np.diff(indptr) > 0).astype(np.int64)
    c = np.unique(np.asarray(candidates).ravel())
    if c.size and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0 or c.max() >= n):
        raise UserError(f"candidate neurons must be integer indices in 0..{n - 1}")
    return c.astype(np.int64)


def _check_draws(draws: int) -> int:
    if not isinstance(draws, (int, np.integer)) or draws < 1:
        raise UserError(f"draws must be an integer >= 1, got {draws!r}")
    return int(draws)


def random_coherence(sizes: Sequence[int], indptr: np.ndarray, indices: np.ndarray,
                     values: np.ndarray | pd.Series, draws: int = 20, seed: int = 0,
                     candidates: np.ndarray | None = None) -> np.ndarray:
    """Per size, the mean coherence over ``draws`` random groups of that size, drawn without
    replacement from ``candidates`` (default: every neuron with a non-empty set); seeded."""
    return _nanmean_rows(random_coherence_draws(sizes, indptr, indices, values, draws, seed, candidates))


def random_coherence_draws(sizes: Sequence[int], indptr: np.ndarray, indices: np.ndarray,
                           values: np.ndarray | pd.Series, draws: int = 20, seed: int = 0,
                           candidates: np.ndarray | None = None) -> np.ndarray:
    """The coherence of every random group: a ``draws x len(sizes)`` array (NaN where a group
    has no known value), the null distribution a group of that size is tested against."""
    draws = _check_draws(draws)
    indptr, indices, n_inputs = validate_sets(indptr, indices)
    codes, n_values = _codes(values, n_inputs)
    sizes = np.asarray(sizes, dtype=np.int64).ravel()
    gid, members = random_groups(sizes, _candidates(indptr, candidates), draws,
                                 np.random.default_rng(seed))
    chosen = _membership(gid, members, draws * sizes.size, indptr.size - 1)
    return _mode_share(chosen, _value_counts(indptr, indices, codes, n_values)).reshape(draws, sizes.size)


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN, NaN where a column has no finite value (and no warning)."""
    ok = np.isfinite(x)
    count = ok.sum(axis=0)
    total = np.where(ok, x, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _weighted(x: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(x)
    return float((x[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() and w[ok].sum() > 0 else float("nan")


def coherence_report(groups: Sequence[np.ndarray], indptr: np.ndarray, indices: np.ndarray,
                     attributes: Mapping[str, np.ndarray] | pd.DataFrame, draws: int = 20,
                     seed: int = 0, min_size: int = 2,
                     candidates: np.ndarray | None = None) -> pd.DataFrame:
    """One row per attribute comparing the groups' coherence with random groups'.

    Only groups with at least ``min_size`` members count (a single neuron is trivially
    "coherent" with itself). Columns:

    - ``attribute``; ``n_groups``: groups counted (size >= min_size and some known value)
    - ``coherence``: mean group coherence weighted by group size (number of neurons)
    - ``random_coherence``: the same weighted mean for random groups of the same sizes
      (``draws`` per group, the same random groups for every attribute)
    - ``lift``: coherence / random_coherence; ``difference``: coherence - random_coherence
    - ``majority_share``: the most common value's share of all candidates' exemplars, the
      level random groups approach as they grow
    """
    draws = _check_draws(draws)
    indptr, indices, n_inputs = validate_sets(indptr, indices)
    n = indptr.size - 1
    table = attributes if isinstance(attributes, pd.DataFrame) else dict(attributes)
    names = list(table.columns if isinstance(table, pd.DataFrame) else table.keys())
    kept = [np.asarray(g).ravel() for g in groups if np.asarray(g).size >= min_size]
    sizes = np.array([g.size for g in kept], dtype=np.int64)
    gid, members = _as_groups(kept, n)
    own = _membership(gid, members, sizes.size, n)
    cand = _candidates(indptr, candidates)
    rgid, rmembers = random_groups(sizes, cand, draws, np.random.default_rng(seed))
    rand = _membership(rgid, rmembers, draws * sizes.size, n)
    everyone = _membership(np.zeros(cand.size, np.int64), cand, 1, n)
    rows = []
    for name in names:
        codes, n_values = _codes(table[name], n_inputs, name=repr(name))
        counts = _value_counts(indptr, indices, codes, n_values)
        mine = _mode_share(own, counts)
        chance = _nanmean_rows(_mode_share(rand, counts).reshape(draws, sizes.size))
        coh = _weighted(mine, sizes)
        base = _weighted(chance, np.where(np.isfinite(mine), sizes, 0))
        rows.append({
            "attribute": name,
            "n_groups": int(np.isfinite(mine).sum()),
            "coherence": coh,
            "random_coherence": base,
            "lift": coh / base if base > 0 else float("nan"),
            "difference": coh - base,
            "majority_share": float(_mode_share(everyone, counts)[0]),
        })
    columns = ["attribute", "n_groups", "coherence", "random_coherence", "lift", "difference",
               "majority_share"]
    return pd.DataFrame(rows, columns=columns)
