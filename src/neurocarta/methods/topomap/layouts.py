"""Neuron layouts: 2-D coordinates for the rows of a profile matrix, seeded and deterministic.

Methods (the original's, minus its O(n^2) PSO refinement, which a later change replaces
with a neighbour-list refinement):

- ``umap``: umap-learn on the profiles with the chosen metric (the original's default start)
- ``tsne``: scikit-learn t-SNE on the precomputed distance matrix
- ``pca``: the first two principal components of the profiles (unit rows for cosine,
  centred unit rows for correlation, so the chosen distance holds)
- ``graph``: link each neuron to its nearest neighbours, join components to the largest
  through their closest pair, and lay the graph out with igraph's Fruchterman-Reingold
- ``som``: neurocarta's batch SOM (see som.py), the original's grid rule
- ``random``: the baseline every faithfulness metric is compared with

Every layout is scaled into the unit square, so layouts can be compared and aligned.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist, squareform

from ...errors import UserError
from ..umap_kernels import umap_module

METHODS = ("umap", "tsne", "pca", "graph", "som", "random")


def distances(profiles: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Square neuron-by-neuron distances; constant profiles are at distance 1 from all others."""
    d = squareform(pdist(profiles, metric=metric))
    return np.nan_to_num(d, nan=1.0)


def layout(profiles: np.ndarray, method: str = "umap", metric: str = "cosine", seed: int = 0,
           n_neighbors: int = 15) -> np.ndarray:
    """(n, 2) coordinates in [0, 1] for the n rows of ``profiles``."""
    x = np.asarray(profiles, dtype=np.float64)
    n = x.shape[0]
    if method not in METHODS:
        raise UserError(f"unknown layout method {method!r}; use one of {', '.join(METHODS)}")
    if n < 3:
        raise UserError(f"a layout needs at least 3 neurons, this layer has {n}")
    if not np.isfinite(x).all():
        raise UserError("the profiles hold NaN or Inf; check the layer's activations")
    rng = np.random.default_rng(seed)
    if method == "random":
        y = rng.uniform(size=(n, 2))
    elif method == "pca":
        from sklearn.decomposition import PCA

        xs = _metric_space(x, metric)  # unit rows for cosine, so PCA sees the chosen distance
        y = PCA(n_components=2, random_state=seed).fit_transform(xs) if x.shape[1] >= 2 else np.c_[xs, np.zeros(n)]
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        y = TSNE(n_components=2, metric="precomputed", init="random", perplexity=perplexity,
                 random_state=seed).fit_transform(distances(x, metric))
    elif method == "umap":
        # umap_module: umap with its numba kernels cached on disk, so only the first process compiles them
        y = umap_module().UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), metric=metric,
                               random_state=seed, init="random" if n < 10 else "spectral", n_jobs=1).fit_transform(x)
    elif method == "som":
        from .som import BatchSOM

        y = BatchSOM(seed=seed).fit(_metric_space(x, metric)).positions()
    else:
        y = _graph_layout(distances(x, metric), n_neighbors=min(n_neighbors, n - 1), seed=seed)
    return unit_square(y)


def _metric_space(x: np.ndarray, metric: str) -> np.ndarray:
    """Rows where euclidean distance follows ``metric``: unit rows for cosine, centred unit
    rows for correlation."""
    if metric == "euclidean":
        return x
    if metric == "correlation":
        x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _graph_layout(d: np.ndarray, n_neighbors: int, seed: int) -> np.ndarray:
    import igraph as ig

    n = d.shape[0]
    near = np.argsort(d + np.diag(np.full(n, np.inf)), axis=1)[:, :n_neighbors]
    edges = {(min(i, j), max(i, j)) for i in range(n) for j in near[i]}
    g = ig.Graph(n=n, edges=sorted(edges))
    # Join every smaller component to the largest through the closest pair of neurons.
    comps = sorted(g.connected_components(), key=len, reverse=True)
    main = np.array(comps[0])
    extra = []
    for comp in comps[1:]:
        comp = np.array(comp)
        sub = d[np.ix_(comp, main)]
        a, b = np.unravel_index(np.argmin(sub), sub.shape)
        extra.append((int(comp[a]), int(main[b])))
    g.add_edges(extra)
    weights = [1.0 / max(d[e.source, e.target], 1e-6) for e in g.es]
    start = np.random.default_rng(seed).uniform(size=(n, 2)).tolist()
    import random

    # igraph draws from Python's random module; give it a seeded generator for this call only.
    ig.set_random_number_generator(random.Random(seed))
    try:
        coords = g.layout_fruchterman_reingold(weights=weights, seed=start, niter=500)
    finally:
        ig.set_random_number_generator(random)
    return np.asarray(coords.coords, dtype=np.float64)


def unit_square(y: np.ndarray) -> np.ndarray:
    """Centre and scale uniformly (aspect kept) into [0, 1] x [0, 1]."""
    y = np.asarray(y, dtype=np.float64)
    lo, hi = y.min(axis=0), y.max(axis=0)
    span = float((hi - lo).max()) or 1.0
    return (y - (lo + hi) / 2) / span + 0.5


def align(layout_: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Procrustes alignment of ``layout_`` onto ``reference``: rotation *and* reflection,
    plus uniform scale and shift (the original tried rotations only)."""
    a = np.asarray(layout_, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    a0, b0 = a - ca, b - cb
    u, s, vt = np.linalg.svd(a0.T @ b0)
    r = u @ vt  # orthogonal: reflection allowed
    scale = s.sum() / max((a0 ** 2).sum(), 1e-12)
    return a0 @ r * scale + cb
