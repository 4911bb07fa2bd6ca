"""``Mapper``: the estimator that builds a Mapper graph from rows of activations."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ... import compute
from ...errors import UserError
from .cluster import auto_eps, make_clusterer, prepare
from .cover import Cover
from .graph import MapperGraph, build_edges
from .lens import compute_lens


class Mapper:
    """Mapper graph of activation rows (Singh, Memoli, Carlsson 2007; TopoAct's use).

    Parameters
    ----------
    lens : ``"l2"`` (default), ``"pca"``, ``"pca2"``, ``"umap"``, an input-table column
        (give ``table=`` to ``fit``), an array or a callable.
    intervals, overlap, cover : the cover: intervals per lens dimension, the overlap
        fraction of adjacent intervals (0..1), ``"uniform"`` (KeplerMapper's arithmetic) or
        ``"balanced"`` (quantile edges).
    clusterer : ``"dbscan"`` (exact, BLAS neighbourhoods), ``"single"`` (single linkage with
        the histogram-gap cut), ``"hdbscan"`` or any scikit-learn clusterer object.
    eps : DBSCAN radius; ``None`` picks it by the documented k-distance rule (see cluster.py).
    min_samples : DBSCAN's core-point count (itself included); intervals with fewer members
        are skipped, as in KeplerMapper.
    metric : ``"euclidean"`` or ``"cosine"``.
    min_jaccard : drop edges whose Jaccard index is below this.
    n_jobs : threads over intervals (BLAS releases the GIL); default 2.

    Attributes: ``graph_`` (MapperGraph), ``lens_``, ``eps_``.
    """

    def __init__(self, lens="l2", intervals=10, overlap: float = 0.3, cover: str = "uniform", clusterer="dbscan",
                 eps: float | None = None, min_samples: int = 5, metric: str = "euclidean", min_jaccard: float = 0.0,
                 n_jobs: int = 2, seed: int = 0):
        self.cover = Cover(intervals, overlap, cover)
        if int(min_samples) < 1:
            raise UserError(f"min_samples must be at least 1, got {min_samples}")
        if eps is not None and not float(eps) > 0:
            raise UserError(f"eps must be positive, got {eps}")
        self.lens, self.clusterer, self.eps, self.min_samples = lens, clusterer, eps, int(min_samples)
        self.metric, self.min_jaccard, self.n_jobs, self.seed = metric, float(min_jaccard), max(1, int(n_jobs)), seed

    @property
    def params(self) -> dict:
        return {"lens": self.lens if isinstance(self.lens, str) else "custom", "intervals": self.cover.intervals,
                "overlap": self.cover.overlap, "cover": self.cover.kind,
                "clusterer": self.clusterer if isinstance(self.clusterer, str) else repr(self.clusterer),
                "eps": getattr(self, "eps_", self.eps), "min_samples": self.min_samples, "metric": self.metric,
                "min_jaccard": self.min_jaccard}

    def fit(self, x: np.ndarray, table=None, lens_values: np.ndarray | None = None) -> "Mapper":
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise UserError(f"Mapper needs a non-empty (inputs x neurons) array, got shape {x.shape}")
        if not all(np.isfinite(x[s:s + 65536]).all() for s in range(0, x.shape[0], 65536)):
            raise UserError("the activations hold NaN or Inf; re-extract the layer")
        self.lens_ = lens_values if lens_values is not None else compute_lens(x, self.lens, table, self.seed)
        # float64 keeps small problems bit-comparable with scikit-learn; float32 halves big ones
        xs = prepare(x, self.metric, np.float64 if x.shape[0] <= 20000 else np.float32)
        self.eps_ = float(self.eps) if self.eps is not None else (
            auto_eps(xs, self.min_samples, seed=self.seed) if self.clusterer == "dbscan" else None)
        cluster = make_clusterer(self.clusterer, self.eps_, self.min_samples, self.metric)
        cubes = self.cover.members(self.lens_)
        need = self.min_samples if self.clusterer in ("dbscan", "hdbscan") else 2

        def run(item):
            key, rows = item
            if len(rows) < need:
                return key, rows, None
            return key, rows, cluster(xs[rows])

        nodes, keys = [], []
        from threadpoolctl import threadpool_limits

        # One BLAS thread per interval worker: n_jobs workers x 1 thread fill the cores without
        # oversubscribing them. Biggest intervals first, so the workers finish together.
        order = sorted(cubes, key=lambda c: -len(c[1]))
        if compute.active_client() is not None:  # a Dask cluster: one task per interval, xs sent once
            big = [(key, rows) for key, rows in order if len(rows) >= need]
            labels = compute.map_items(_cluster_rows, [rows for _, rows in big], broadcast={"xs": xs},
                                       cluster=cluster)
            results = {key: (key, rows, None) for key, rows in order}
            results.update({key: (key, rows, lab) for (key, rows), lab in zip(big, labels)})
        else:
            with threadpool_limits(limits=1 if self.n_jobs > 1 else None, user_api="blas"), \
                    ThreadPoolExecutor(self.n_jobs) as pool:
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
        self.graph_ = graph.filter_edges(self.min_jaccard) if self.min_jaccard > 0 else graph
        return self


def _cluster_rows(rows: np.ndarray, xs: np.ndarray, cluster) -> np.ndarray:
    """Cluster labels of one cover interval (a task on a Dask worker)."""
    return cluster(xs[rows])
