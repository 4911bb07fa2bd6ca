"""``Mapper``: the estimator that builds a Mapper graph from rows of activations."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from ... import compute
from ...errors import UserError, check_number
from ...threads import worker_pool
from ..defaults import MAPPER_CLUSTERER, MAPPER_COVER, MAPPER_MIN_SAMPLES
from .cluster import auto_eps, check_clusterer, make_clusterer
from .cover import Cover
from .graph import MapperGraph, build_edges
from .lens import compute_lens
from .metric import check_metric

#: Above this many rows the products run in float32 (half the memory and time of float64);
#: DBSCAN's float64 recheck keeps the labels exact either way.
FLOAT64_ROWS = 20000


class Mapper(BaseEstimator):
    """Mapper graph of activation rows (Singh, Memoli, Carlsson 2007; TopoAct's use).

    Parameters (keyword only; checked by ``fit``)
    ----------
    lens : ``"l2"`` (default), ``"pca"``, ``"pca2"``, ``"umap"``, an input-table column
        (give ``table=`` to ``fit``), an array or a callable.
    intervals, overlap, cover : the cover: intervals per lens dimension, the overlap
        fraction of adjacent intervals (0..1), ``"uniform"`` (KeplerMapper's arithmetic) or
        ``"balanced"`` (quantile edges).
    clusterer : ``"dbscan"`` (exact, BLAS neighbourhoods), ``"single"`` (single linkage with
        the histogram-gap cut), ``"hdbscan"`` or any scikit-learn clusterer object.
    eps : DBSCAN radius; ``None`` picks it by the documented k-distance rule (see cluster.py).
        Under ``metric="cosine"`` it is the chord distance between unit rows,
        ``sqrt(2 (1 - cos))``.
    min_samples : DBSCAN's core-point count (itself included); intervals with fewer members
        are skipped, as in KeplerMapper.
    metric : ``"euclidean"`` or ``"cosine"``.
    min_jaccard : drop edges whose Jaccard index is below this.
    n_jobs : threads in all (-1: every core), default 2. They are shared out between
        intervals clustered at once and BLAS threads per interval (``threads.split_threads``):
        ``n_jobs=1`` runs one interval at a time with BLAS pinned to one thread.
    seed : the seed of every random choice (lens, eps sample, DBSCAN's grouping).

    Attributes: ``graph_`` (MapperGraph), ``lens_``, ``eps_``.
    """

    def __init__(self, *, lens="l2", intervals=10, overlap: float = 0.3, cover: str = MAPPER_COVER,
                 clusterer=MAPPER_CLUSTERER, eps: float | None = None, min_samples: int = MAPPER_MIN_SAMPLES,
                 metric: str = "euclidean", min_jaccard: float = 0.0, n_jobs: int = 2, seed: int = 0):
        self.lens = lens
        self.intervals = intervals
        self.overlap = overlap
        self.cover = cover
        self.clusterer = clusterer
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.min_jaccard = min_jaccard
        self.n_jobs = n_jobs
        self.seed = seed

    @property
    def params(self) -> dict:
        """The parameters as the atlas records them (after ``fit``, the eps it used)."""
        return {"lens": self.lens if isinstance(self.lens, str) else "custom",
                "intervals": np.asarray(self.intervals).tolist(), "overlap": float(self.overlap),
                "cover": self.cover,
                "clusterer": self.clusterer if isinstance(self.clusterer, str) else repr(self.clusterer),
                "eps": getattr(self, "eps_", self.eps), "min_samples": int(self.min_samples),
                "metric": self.metric, "min_jaccard": float(self.min_jaccard)}

    def fit(self, x: np.ndarray, table=None, lens_values: np.ndarray | None = None) -> "Mapper":
        cover = Cover(self.intervals, self.overlap, self.cover)
        min_samples = check_number("min_samples", self.min_samples, 1, integer=True)
        eps = None if self.eps is None else check_number("eps", self.eps, 0.0, low_open=True)
        check_metric(self.metric)
        check_clusterer(self.clusterer)
        min_jaccard = check_number("min_jaccard", self.min_jaccard, 0.0, 1.0)
        n_jobs = -1 if self.n_jobs == -1 else check_number("n_jobs (or -1 for every core)", self.n_jobs, 1,
                                                           integer=True)
        check_number("seed", self.seed, 0, integer=True)
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise UserError(f"Mapper needs a non-empty (inputs x neurons) array, got shape {x.shape}")
        if not all(np.isfinite(x[s:s + 65536]).all() for s in range(0, x.shape[0], 65536)):
            raise UserError("the activations hold NaN or Inf; re-extract the layer")
        self.lens_ = lens_values if lens_values is not None else compute_lens(x, self.lens, table, self.seed)
        work = np.float64 if x.shape[0] <= FLOAT64_ROWS else np.float32
        self.eps_ = eps if eps is not None else (
            auto_eps(x, min_samples, seed=self.seed, metric=self.metric, dtype=work)
            if self.clusterer == "dbscan" else None)
        cluster = make_clusterer(self.clusterer, self.eps_, min_samples, self.metric, work)
        cubes = cover.members(self.lens_)
        need = min_samples if self.clusterer in ("dbscan", "hdbscan") else 2

        def run(item):
            key, rows = item
            if len(rows) < need:
                return key, rows, None
            return key, rows, cluster(x[rows])

        nodes, keys = [], []
        # Biggest intervals first, so the workers finish together.
        order = sorted(cubes, key=lambda c: -len(c[1]))
        if compute.active_client() is not None:  # a Dask cluster: one task per interval, x sent once
            big = [(key, rows) for key, rows in order if len(rows) >= need]
            labels = compute.map_items(_cluster_rows, [rows for _, rows in big], broadcast={"x": x},
                                       cluster=cluster)
            results = {key: (key, rows, None) for key, rows in order}
            results.update({key: (key, rows, lab) for (key, rows), lab in zip(big, labels)})
        else:
            # n_jobs threads in all: workers x BLAS threads each, never more than the cores.
            with worker_pool(n_jobs, sum(len(rows) >= need for _, rows in order)) as pool:
                results = {r[0]: r for r in pool.map(run, order)}
        for key, _ in cubes:  # nodes in cover order, clusters in label order
            _, rows, labels = results[key]
            if labels is None:
                continue
            for lab in np.unique(labels):
                if lab < 0:
                    continue
                nodes.append(np.sort(rows[labels == lab]).astype(np.int64))
                keys.append(key)
        edges, shared, jac = build_edges(nodes, x.shape[0])
        graph = MapperGraph(nodes, keys, edges, shared, jac, x.shape[0])
        self.graph_ = graph.filter_edges(min_jaccard) if min_jaccard > 0 else graph
        return self


def _cluster_rows(rows: np.ndarray, x: np.ndarray, cluster) -> np.ndarray:
    """Cluster labels of one cover interval (a task on a Dask worker: Dask starts workers
    with BLAS pinned to one thread, see threads.py)."""
    return cluster(x[rows])
