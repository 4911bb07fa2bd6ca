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


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """Rows in which euclidean distance gives ``metric`` (unit rows for cosine: d^2 = 2 - 2 cos)."""
    x = np.asarray(x, dtype=np.float32)
    if metric == "cosine":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norm > 0, norm, 1.0)
    elif metric != "euclidean":
        raise UserError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    return x


def _blocks(n: int, budget_bytes: float = 64e6, most: int = 4096) -> int:
    """Rows per block so that one block of float32 distances stays within ``budget_bytes``."""
    return int(max(32, min(most, budget_bytes // (4 * max(n, 1)))))


def _within(x: np.ndarray, sq: np.ndarray, lo: int, hi: int, lim) -> np.ndarray:
    """Boolean (hi - lo) x hi mask of squared distances <= lim between rows lo:hi and rows
    0:hi (the lower triangle of the distance matrix, block by block), computed in place."""
    d2 = x[lo:hi] @ x[:hi].T
    d2 *= -2.0
    d2 += sq[None, :hi]
    d2 += sq[lo:hi, None]
    return d2 <= lim


def dbscan(x: np.ndarray, eps: float, min_samples: int, block: int | None = None,
           keep_bytes: float = 128e6) -> np.ndarray:
    """DBSCAN labels (-1 for noise) of the rows of ``x`` (already in euclidean form).

    Two passes over the lower triangle of the distance matrix, one block of rows at a time,
    so memory is one block of distances plus a spanning forest, never the neighbour pairs:

    1. count every point's eps-neighbours (each pair counted for both ends) -> core points;
    2. again, keep the core-core pairs of the block and reduce them at once to a spanning
       forest of the block (connectivity is all DBSCAN needs); keep border-core pairs.

    Labels then follow scikit-learn: clusters numbered by their lowest-index core point, and
    a border point joins the first-numbered cluster among its core neighbours.
    """
    n = x.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return labels
    sq = np.einsum("ij,ij->i", x, x)
    lim = np.asarray(eps, dtype=x.dtype) ** 2
    step = block or _blocks(n)
    counts = np.ones(n, dtype=np.int64)  # a point is its own neighbour, as in sklearn
    # The masks are kept bit-packed (n^2 / 16 bytes in all) when that is cheap, so the second
    # pass reads them back instead of repeating the matrix products.
    keep = n * n / 16 <= keep_bytes
    packed = []
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        m = _within(x, sq, lo, hi, lim)
        m[:, lo:hi] &= np.tri(hi - lo, dtype=bool, k=-1)  # strict lower triangle of the diagonal block
        counts[lo:hi] += np.count_nonzero(m, axis=1)
        counts[:hi] += np.count_nonzero(m, axis=0)
        if keep:
            packed.append(np.packbits(m, axis=1))
    core = counts >= min_samples
    if not core.any():
        return labels
    forest_a, forest_b, border_r, border_c = [], [], [], []
    for i, lo in enumerate(range(0, n, step)):
        hi = min(n, lo + step)
        if keep:
            m = np.unpackbits(packed[i], axis=1, count=hi).view(bool)
            packed[i] = None
        else:
            m = _within(x, sq, lo, hi, lim)
            m[:, lo:hi] &= np.tri(hi - lo, dtype=bool, k=-1)
        r, c = np.nonzero(m)
        r = r + lo
        cr, cc = core[r], core[c]
        both = cr & cc
        if both.any():
            # The block's core-core graph over rows 0:hi, reduced to a star per component.
            a, b = r[both], c[both]
            g = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(hi, hi))
            _, comp = connected_components(g, directed=False)
            involved = np.zeros(hi, dtype=bool)
            involved[a] = True
            involved[b] = True
            nodes = np.flatnonzero(involved)
            root = np.full(comp.max() + 1, hi, dtype=np.int64)
            np.minimum.at(root, comp[nodes], nodes)
            forest_a.append(nodes)
            forest_b.append(root[comp[nodes]])
        one = cr ^ cc  # a core point and a non-core one: a border candidate
        if one.any():
            border_r.append(np.where(cr[one], c[one], r[one]))
            border_c.append(np.where(cr[one], r[one], c[one]))
    a = np.concatenate(forest_a) if forest_a else np.zeros(0, dtype=np.int64)
    b = np.concatenate(forest_b) if forest_b else np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, comp = connected_components(graph, directed=False)
    core_idx = np.flatnonzero(core)
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
        br, bc = np.concatenate(border_r), np.concatenate(border_c)
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
