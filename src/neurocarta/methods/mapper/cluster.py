"""Clustering inside one cover interval.

``dbscan`` is exact DBSCAN (the same labels as scikit-learn's, border points included) on
neighbourhoods found by batched BLAS products: squared distances for a block of rows
against the rows before it as ``|a|^2 + |b|^2 - 2 a.b``, compared with ``eps^2``. Memory
stays at one block of distances plus a spanning forest of the core points; neighbour pairs
are never stored and no per-point Python lists exist.

Cluster labels follow scikit-learn's order, so node memberships agree with KeplerMapper's:
clusters are numbered by their lowest-index core point, and a border point near cores of
several clusters joins the one numbered first.

``single`` is single linkage cut at the first gap of the Mapper paper's merge-distance
histogram (Singh, Memoli, Carlsson 2007). ``hdbscan`` is scikit-learn's HDBSCAN, and any
object with ``fit_predict`` (a scikit-learn clusterer) works too.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ...errors import UserError

METRICS = ("euclidean", "cosine")


def prepare(x: np.ndarray, metric: str, dtype=np.float32) -> np.ndarray:
    """Rows in which euclidean distance gives ``metric`` (unit rows for cosine: d^2 = 2 - 2 cos)."""
    x = np.asarray(x, dtype=dtype)
    if metric == "cosine":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norm > 0, norm, 1.0)
    elif metric != "euclidean":
        raise UserError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    return x


def _blocks(n: int, budget_bytes: float = 64e6, most: int = 4096) -> int:
    """Rows per block so that one block of float32 distances stays within ``budget_bytes``."""
    return int(max(32, min(most, budget_bytes // (4 * max(n, 1)))))


def _within(x: np.ndarray, sq: np.ndarray, lo: int, hi: int, c0: int, lim) -> np.ndarray:
    """Boolean mask of squared distances <= lim between rows lo:hi and rows c0:hi, computed
    in place, with only the strict lower triangle kept inside the diagonal block."""
    d2 = x[lo:hi] @ x[c0:hi].T
    d2 *= -2.0
    d2 += sq[None, c0:hi]
    d2 += sq[lo:hi, None]
    m = d2 <= lim
    m[:, lo - c0:] &= np.tri(hi - lo, dtype=bool, k=-1)
    return m


def dbscan(x: np.ndarray, eps: float, min_samples: int, block: int | None = None,
           keep_bytes: float = 128e6) -> np.ndarray:
    """DBSCAN labels (-1 for noise) of the rows of ``x`` (already in euclidean form).

    Rows are first ordered by their distance to a pivot (the row farthest from the mean).
    By the triangle inequality two rows whose pivot distances differ by more than eps cannot
    be neighbours, so each block of rows is compared only with the window of earlier rows
    that can be. It is exact, and it saves the most when clusters spread out along the
    pivot distance.

    Then two passes over that banded lower triangle, one block of rows at a time, so memory
    is one block of distances plus a spanning forest, never the neighbour pairs:

    1. count every point's eps-neighbours (each pair counted for both ends) -> core points;
    2. keep the core-core pairs of the block and reduce them at once to a spanning forest
       (connectivity is all DBSCAN needs); keep border-core pairs. The pass-one masks are
       kept bit-packed when that is cheap, so pass two reads them back.

    Labels then follow scikit-learn: clusters numbered by their lowest-index core point, and
    a border point joins the first-numbered cluster among its core neighbours.
    """
    n = x.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return labels
    centre = x.mean(axis=0)
    pivot = x[int(np.argmax(np.einsum("ij,ij->i", x - centre, x - centre)))]
    dp = np.sqrt(np.maximum(np.einsum("ij,ij->i", x - pivot, x - pivot), 0.0)).astype(np.float64)
    perm = np.argsort(dp, kind="stable")
    xp, dps = x[perm], dp[perm]
    sq = np.einsum("ij,ij->i", xp, xp)
    lim = np.asarray(eps, dtype=x.dtype) ** 2
    margin = float(eps) * (1 + 1e-4) + 1e-6  # generous: the mask, not the window, decides
    step = block or _blocks(n)
    starts = list(range(0, n, step))
    window = [int(np.searchsorted(dps, dps[lo] - margin, side="left")) for lo in starts]
    counts = np.ones(n, dtype=np.int64)  # a point is its own neighbour, as in sklearn
    keep = sum((min(n, lo + step) - lo) * (min(n, lo + step) - c0) for lo, c0 in zip(starts, window)) / 8 <= keep_bytes
    packed = []
    for lo, c0 in zip(starts, window):
        hi = min(n, lo + step)
        m = _within(xp, sq, lo, hi, c0, lim)
        counts[lo:hi] += np.count_nonzero(m, axis=1)
        counts[c0:hi] += np.count_nonzero(m, axis=0)
        if keep:
            packed.append(np.packbits(m, axis=1))
    core = counts >= min_samples
    if not core.any():
        return labels
    forest_a, forest_b, border_r, border_c = [], [], [], []
    for i, (lo, c0) in enumerate(zip(starts, window)):
        hi = min(n, lo + step)
        if keep:
            m = np.unpackbits(packed[i], axis=1, count=hi - c0).view(bool)
            packed[i] = None
        else:
            m = _within(xp, sq, lo, hi, c0, lim)
        r, c = np.nonzero(m)
        r = r + lo
        c = c + c0
        cr, cc = core[r], core[c]
        both = cr & cc
        if both.any():
            # The block's core-core graph over rows c0:hi, reduced to a star per component.
            a, b = r[both] - c0, c[both] - c0
            k = hi - c0
            g = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(k, k))
            _, comp = connected_components(g, directed=False)
            involved = np.zeros(k, dtype=bool)
            involved[a] = True
            involved[b] = True
            nodes = np.flatnonzero(involved)
            root = np.full(comp.max() + 1, k, dtype=np.int64)
            np.minimum.at(root, comp[nodes], nodes)
            forest_a.append(nodes + c0)
            forest_b.append(root[comp[nodes]] + c0)
        one = cr ^ cc  # a core point and a non-core one: a border candidate
        if one.any():
            border_r.append(np.where(cr[one], c[one], r[one]))
            border_c.append(np.where(cr[one], r[one], c[one]))
    a = np.concatenate(forest_a) if forest_a else np.zeros(0, dtype=np.int64)
    b = np.concatenate(forest_b) if forest_b else np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, comp_p = connected_components(graph, directed=False)
    # Back to the caller's row order.
    comp = np.empty(n, dtype=np.int64)
    comp[perm] = comp_p
    core_orig = np.empty(n, dtype=bool)
    core_orig[perm] = core
    core_idx = np.flatnonzero(core_orig)
    # Number clusters by their lowest-index core point (scikit-learn's discovery order).
    first = np.full(comp.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, comp[core_idx], core_idx)
    used = np.unique(comp[core_idx])
    order = np.argsort(first[used], kind="stable")
    rank = np.full(comp.max() + 1, -1, dtype=np.int64)
    rank[used[order]] = np.arange(len(used))
    labels[core_idx] = rank[comp[core_idx]]
    # Border points: the first-numbered cluster among their core neighbours.
    if border_r:
        br, bc = perm[np.concatenate(border_r)], perm[np.concatenate(border_c)]
        best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, br, labels[bc])
        hit = best < np.iinfo(np.int64).max
        labels[hit] = best[hit]
    return labels


def auto_eps(x: np.ndarray, min_samples: int, sample: int = 2000, quantile: float = 0.9, seed: int = 0) -> float:
    """The eps rule: the ``quantile`` (0.9) of the distance to each point's ``min_samples``-th
    nearest neighbour (itself counted, as DBSCAN counts it), over a seeded sample of rows.

    In the k-distance plot this sits where the curve turns up into the sparse tail: 90% of
    points are then core points of the whole layer, and the sparsest 10% can be noise or
    borders. Intervals hold fewer points than the layer, so per interval more become noise.
    """
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=min(sample, n), replace=False) if n > sample else np.arange(n)
    q = x[idx]
    sq_all = np.einsum("ij,ij->i", x, x)
    k = max(1, min(min_samples, n) - 1)  # neighbours besides the point itself
    kth = []
    for s in range(0, len(q), 512):
        d2 = np.einsum("ij,ij->i", q[s:s + 512], q[s:s + 512])[:, None] + sq_all[None, :] - 2.0 * (q[s:s + 512] @ x.T)
        d2[np.arange(d2.shape[0]), idx[s:s + 512]] = np.inf
        kth.append(np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0.0)))
    eps = float(np.quantile(np.concatenate(kth), quantile))
    return eps if eps > 0 else 1e-6


def single_linkage_gap(x: np.ndarray, bins: int = 10) -> np.ndarray:
    """Single linkage cut at the first empty bin of the merge-distance histogram (Mapper
    paper); one cluster when the histogram has no gap."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = x.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    z = linkage(x, method="single")
    heights = z[:, 2]
    hist, edges = np.histogram(heights, bins=bins)
    empty = np.flatnonzero(hist == 0)
    if not empty.size:
        return np.zeros(n, dtype=np.int64)
    cut = edges[empty[0]]
    return fcluster(z, t=cut, criterion="distance").astype(np.int64) - 1


def make_clusterer(name, eps: float | None, min_samples: int, metric: str):
    """A function rows -> labels for a clusterer name or a scikit-learn-style object."""
    if hasattr(name, "fit_predict"):
        from sklearn.base import clone

        return lambda rows: np.asarray(clone(name).fit_predict(rows))
    if name == "dbscan":
        return lambda rows: dbscan(rows, eps, min_samples)
    if name == "single":
        return single_linkage_gap
    if name == "hdbscan":
        from sklearn.cluster import HDBSCAN

        return lambda rows: HDBSCAN(min_cluster_size=max(2, min_samples)).fit_predict(rows) \
            if len(rows) > 1 else np.zeros(len(rows), dtype=np.int64)
    raise UserError(f"clusterer must be dbscan, single, hdbscan or a scikit-learn clusterer, not {name!r}")
