"""Clustering inside one cover interval.

``dbscan`` is exact DBSCAN (the same labels as scikit-learn's, border points included) on
neighbourhoods found by batched BLAS products: squared distances for a block of rows
against every member as ``|a|^2 + |b|^2 - 2 a.b``, compared with ``eps^2``. Memory stays at
one block of distances plus the eps-neighbour pairs; no per-point Python lists.

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


def eps_pairs(x: np.ndarray, eps: float, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) pairs, i != j, with euclidean distance <= eps, by blocked matrix products."""
    sq = np.einsum("ij,ij->i", x, x)
    lim = np.float32(eps) ** 2
    rows, cols = [], []
    for s in range(0, x.shape[0], block):
        d2 = sq[s:s + block, None] + sq[None, :] - 2.0 * (x[s:s + block] @ x.T)
        r, c = np.nonzero(d2 <= lim)
        keep = r + s != c
        rows.append((r[keep] + s).astype(np.int64))
        cols.append(c[keep].astype(np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def dbscan(x: np.ndarray, eps: float, min_samples: int, block: int = 2048) -> np.ndarray:
    """DBSCAN labels (-1 for noise) of the rows of ``x`` (already in euclidean form)."""
    n = x.shape[0]
    rows, cols = eps_pairs(x, eps, block)
    counts = np.bincount(rows, minlength=n) + 1  # a point is its own neighbour, as in sklearn
    core = counts >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    if not core.any():
        return labels
    both = core[rows] & core[cols]
    graph = coo_matrix((np.ones(both.sum(), dtype=np.int8), (rows[both], cols[both])), shape=(n, n)).tocsr()
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
    border = (~core[rows]) & core[cols]
    if border.any():
        b_rows, b_lab = rows[border], labels[cols[border]]
        best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, b_rows, b_lab)
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
