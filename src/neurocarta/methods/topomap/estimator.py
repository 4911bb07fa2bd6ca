"""``TopoMap``: the estimator that lays out a layer's neurons and measures the layout."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from ...errors import UserError, check_choice, check_number
from ..defaults import TOPOMAP_DISTANCE, TOPOMAP_K, TOPOMAP_METHOD
from .grid import cell_centres, grid_assign
from .layouts import METHODS, align, layout, unit_square
from .metrics import METRICS, layout_quality
from .profiles import Profiles
from .refine import refine


def silent_rows(x: np.ndarray, distance: str) -> np.ndarray:
    """Rows with no defined cosine/correlation distance: all zero, or constant."""
    if distance == "euclidean":
        return np.zeros(x.shape[0], dtype=bool)
    centred = x - x.mean(axis=1, keepdims=True) if distance == "correlation" else x
    scale = np.abs(centred).max(axis=1)
    return scale <= 1e-9 * max(float(np.abs(x).max()), 1e-300)


class TopoMap(BaseEstimator):
    """Lay neurons out in 2-D so that neurons with similar profiles sit close together.

    Parameters (keyword only; checked by ``fit``)
    ----------
    method : ``"umap"`` (default), ``"tsne"``, ``"pca"``, ``"graph"``, ``"som"`` or ``"random"``.
    distance : neuron distance on profiles: ``"cosine"`` (default), ``"correlation"``, ``"euclidean"``.
    k : neighbourhood size of the quality metrics.
    seed : every layout is seeded and deterministic.
    n_neighbors : neighbourhood size for ``umap`` and ``graph``.
    refine : follow the layout with the O(n k) force-directed refinement that keeps the
        distance forces (see refine.py).
    grid : also give each neuron its own cell of a near-square grid (exact assignment up to
        2,048 neurons, a windowed approximation beyond), measured in ``grid_metrics_``.
    measure : compute the metrics (O(n^2 / block) distance rows; about 15 s per layout at
        16k neurons). ``False`` skips them.

    Attributes
    ----------
    layout_ : (n_neurons, 2) coordinates in the unit square.
    grid_cells_ : (grid only) each neuron's row-major cell index.
    grid_shape_ : (grid only) (rows, cols).
    silent_ : neurons with a constant profile, parked on a ring outside the map.
    metrics_ : trustworthiness, continuity, neighbourhood preservation and distance Spearman
        of the layout.
    grid_metrics_ : (grid only) the same metrics of the grid cells.
    """

    def __init__(self, *, method: str = TOPOMAP_METHOD, distance: str = TOPOMAP_DISTANCE, k: int = TOPOMAP_K,
                 seed: int = 0, n_neighbors: int = 15, refine: bool = False, grid: bool = False,
                 measure: bool = True):
        self.method = method
        self.distance = distance
        self.k = k
        self.seed = seed
        self.n_neighbors = n_neighbors
        self.refine = refine
        self.grid = grid
        self.measure = measure

    def fit(self, profiles: Profiles | np.ndarray, reference: np.ndarray | None = None) -> "TopoMap":
        """Lay out the rows of ``profiles``; with ``reference``, align onto that layout.

        Under cosine or correlation distance a silent neuron (a constant profile: the same
        response to every group, e.g. a dead ReLU) is at no defined distance from anything.
        Such neurons are left out of the layout and the metrics, and parked evenly on a ring
        around the map (``silent_`` marks them); they paint 0 on every map.
        """
        check_choice("method", self.method, METHODS)
        check_choice("distance", self.distance, METRICS)
        k_max = check_number("k", self.k, 1, integer=True)
        check_number("n_neighbors", self.n_neighbors, 2, integer=True)
        check_number("seed", self.seed, 0, integer=True)
        x = profiles.values if isinstance(profiles, Profiles) else np.asarray(profiles, dtype=np.float64)
        self.silent_ = silent_rows(x, self.distance)
        live = ~self.silent_
        if live.sum() < 3:
            raise UserError(f"only {int(live.sum())} of {x.shape[0]} neurons respond differently to the groups; "
                            "a topographic map needs at least 3 (try another layer or grouping)")
        xl = x[live]
        y = layout(xl, self.method, self.distance, self.seed, self.n_neighbors)
        if self.refine:
            y = unit_square(refine(y, xl, metric=self.distance, n_neighbors=self.n_neighbors, seed=self.seed))
        if reference is not None:
            y = align(y, reference[live] if len(reference) == len(x) else reference)
        full = np.empty((x.shape[0], 2))
        full[live] = y
        n_silent = int(self.silent_.sum())
        if n_silent:
            t = np.linspace(0, 2 * np.pi, n_silent, endpoint=False) + np.pi / 4
            full[self.silent_] = 0.5 + 0.75 * np.c_[np.cos(t), np.sin(t)]
        self.layout_ = full
        k = min(k_max, max(1, (xl.shape[0] - 1) // 2))
        self.metrics_ = layout_quality(xl, y, k=k, metric=self.distance) if self.measure else {}
        self.metrics_["n_silent"] = n_silent
        if self.grid:
            self.grid_cells_, self.grid_shape_ = grid_assign(full)
            cells = cell_centres(*self.grid_shape_, np.zeros(2), np.ones(2))[self.grid_cells_][live]
            self.grid_metrics_ = layout_quality(xl, cells, k=k, metric=self.distance) if self.measure else {}
        return self
