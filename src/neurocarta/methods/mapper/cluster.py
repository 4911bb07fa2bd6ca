"""Clustering inside one cover interval.

``dbscan`` (its own module) is exact DBSCAN with scikit-learn's labels, so node memberships
agree with KeplerMapper's; ``auto_eps`` is the documented rule that picks its eps.

``single`` is single linkage cut at the first gap of the Mapper paper's merge-distance
histogram (Singh, Memoli, Carlsson 2007). ``hdbscan`` is scikit-learn's HDBSCAN, and any
object with ``fit_predict`` (a scikit-learn clusterer) works too.
"""

from __future__ import annotations

import numpy as np

from ...errors import check_choice
from .dbscan import dbscan
from .metric import prepare


def auto_eps(x: np.ndarray, min_samples: int, sample: int = 2000, quantile: float = 0.9, seed: int = 0,
             metric: str = "euclidean", dtype=np.float64, block: int = 4096) -> float:
    """The eps rule: the ``quantile`` (0.9) of the distance to each point's ``min_samples``-th
    nearest neighbour (itself counted, as DBSCAN counts it), over a seeded sample of rows.

    In the k-distance plot this sits where the curve turns up into the sparse tail: 90% of
    points are then core points of the whole layer, and the sparsest 10% can be noise or
    borders. Intervals hold fewer points than the layer, so per interval more become noise.

    ``x`` is the raw rows (``metric`` scales them for cosine). Rows are centred on the sample's
    mean before the products, so that a constant added to every row cannot change the rule
    through rounding (|a|^2 + |b|^2 - 2 a.b loses digits on rows far from the origin).
    """
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(sample, n), replace=False)) if n > sample else np.arange(n)
    q64 = prepare(x[idx], metric, np.float64)
    centre = q64.mean(axis=0)
    q = (q64 - centre).astype(dtype)
    sq_q = np.einsum("ij,ij->i", q, q, dtype=np.float64)
    k = max(1, min(min_samples, n) - 1)  # neighbours besides the point itself
    best = np.full((len(q), k), np.inf)  # each query's k smallest squared distances so far
    for s in range(0, n, block):
        b = (prepare(x[s:s + block], metric, np.float64) - centre).astype(dtype)
        d2 = sq_q[:, None] + np.einsum("ij,ij->i", b, b, dtype=np.float64)[None, :] - 2.0 * (q @ b.T)
        mine = np.flatnonzero((idx >= s) & (idx < s + len(b)))
        d2[mine, idx[mine] - s] = np.inf  # a point is not its own neighbour here
        best = np.partition(np.hstack([best, d2]), k - 1, axis=1)[:, :k]
    kth = np.sqrt(np.maximum(best[:, k - 1], 0.0))
    eps = float(np.quantile(kth, quantile))
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


CLUSTERERS = ("dbscan", "single", "hdbscan")


def check_clusterer(name) -> None:
    """Raise a :class:`ParameterError` unless ``name`` is a clusterer name or a scikit-learn
    clusterer (an object with ``fit_predict``)."""
    if not hasattr(name, "fit_predict"):
        check_choice("clusterer", name, CLUSTERERS)  # or any object with fit_predict


def make_clusterer(name, eps: float | None, min_samples: int, metric: str, dtype=np.float64):
    """A function raw rows -> labels for a clusterer name or a scikit-learn-style object.

    Rows reach the clusterer as given; each one measures them by ``metric``. DBSCAN works in
    ``dtype`` (float32 halves big intervals) and stays exact (see dbscan.py); the others get
    the rows prepared in ``dtype``."""
    check_clusterer(name)
    if hasattr(name, "fit_predict"):
        from sklearn.base import clone

        return lambda rows: np.asarray(clone(name).fit_predict(prepare(rows, metric, dtype)))
    if name == "dbscan":
        return lambda rows: dbscan(rows, eps, min_samples, metric=metric, dtype=dtype)
    if name == "single":
        return lambda rows: single_linkage_gap(prepare(rows, metric, dtype))
    from sklearn.cluster import HDBSCAN

    return lambda rows: HDBSCAN(min_cluster_size=max(2, min_samples), copy=True).fit_predict(
        prepare(rows, metric, dtype)) if len(rows) > 1 else np.zeros(len(rows), dtype=np.int64)
