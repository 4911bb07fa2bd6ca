"""``TopoMap``: the estimator that lays out a layer's neurons and measures the layout."""

from __future__ import annotations

import numpy as np

from .grid import cell_centres, grid_assign
from .layouts import METHODS, align, layout
from .metrics import METRICS, layout_quality
from .profiles import Profiles


class TopoMap:
    """Lay neurons out in 2-D so that neurons with similar profiles sit close together.

    Parameters
    ----------
    method : ``"umap"`` (default), ``"tsne"``, ``"pca"``, ``"graph"`` or ``"random"``.
    distance : neuron distance on profiles: ``"cosine"`` (default), ``"correlation"``, ``"euclidean"``.
    k : neighbourhood size of the quality metrics.
    seed : every layout is seeded and deterministic.
    n_neighbors : neighbourhood size for ``umap`` and ``graph``.
    refine : follow the layout with the O(n k) force-directed refinement that keeps the
        distance forces (see refine.py).
    grid : also give each neuron its own cell of a near-square grid (exact assignment up to
        2,048 neurons, a windowed approximation beyond); the metrics then measure the grid.

    Attributes
    ----------
    layout_ : (n_neurons, 2) coordinates in the unit square.
    grid_cells_ : (grid only) each neuron's row-major cell index.
    grid_shape_ : (grid only) (rows, cols).
    metrics_ : trustworthiness, continuity, neighbourhood preservation and distance Spearman.
    """

    def __init__(self, method: str = "umap", distance: str = "cosine", k: int = 5, seed: int = 0,
                 n_neighbors: int = 15, refine: bool = False, grid: bool = False):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        if distance not in METRICS:
            raise ValueError(f"distance must be one of {', '.join(METRICS)}, not {distance!r}")
        self.method, self.distance, self.k, self.seed, self.n_neighbors = method, distance, k, seed, n_neighbors
        self.grid, self.refine = grid, refine

    def fit(self, profiles: Profiles | np.ndarray, reference: np.ndarray | None = None) -> "TopoMap":
        """Lay out the rows of ``profiles``; with ``reference``, align onto that layout."""
        x = profiles.values if isinstance(profiles, Profiles) else np.asarray(profiles, dtype=np.float64)
        y = layout(x, self.method, self.distance, self.seed, self.n_neighbors)
        if self.refine:
            from .layouts import unit_square
            from .refine import refine

            y = unit_square(refine(y, x, metric=self.distance, n_neighbors=self.n_neighbors, seed=self.seed))
        if reference is not None:
            y = align(y, reference)
        self.layout_ = y
        shown = y
        if self.grid:
            self.grid_cells_, self.grid_shape_ = grid_assign(y)
            shown = cell_centres(*self.grid_shape_, np.zeros(2), np.ones(2))[self.grid_cells_]
        k = min(self.k, max(1, (x.shape[0] - 1) // 2))
        self.metrics_ = layout_quality(x, shown, k=k, metric=self.distance)
        return self

    def __repr__(self) -> str:
        return (f"TopoMap(method={self.method!r}, distance={self.distance!r}, k={self.k}, seed={self.seed}, "
                f"n_neighbors={self.n_neighbors}, refine={self.refine}, grid={self.grid})")
