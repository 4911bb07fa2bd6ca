"""Clustering inside one cover interval.

``dbscan`` (its own module) is exact DBSCAN with scikit-learn's labels, so node memberships
agree with KeplerMapper's; ``auto_eps`` is the documented rule that picks its eps.

``single`` is single linkage cut at the first gap of the Mapper paper's merge-distance
histogram (Singh, Memoli, Carlsson 2007). ``hdbscan`` is scikit-learn's HDBSCAN, and any
object with ``fit_predict`` (a scikit-learn clusterer) works too.
"""

from __future__ import annotations

import numpy as np

from ...errors import UserError
from .dbscan import dbscan

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

        return lambda rows: HDBSCAN(min_cluster_size=max(2, min_samples), copy=True).fit_predict(rows) \
            if len(rows) > 1 else np.zeros(len(rows), dtype=np.int64)
    raise UserError(f"clusterer must be dbscan, single, hdbscan or a scikit-learn clusterer, not {name!r}")
