"""The input projection: every input (or token row) of a layer as a point in 2-D, by UMAP of
its activations, the way TensorBoard's projector and TopoAct show inputs.

One layer's activation rows (inputs, or tokens on a text layer) are reduced to at most
``PCA_DIMS`` principal components, their exact k nearest neighbours are found with one BLAS
pass (scikit-learn), and UMAP lays that neighbour graph out, seeded. The exact neighbours
replace umap-learn's approximate search (pynndescent), whose kernels compile for ~25 s in
every process while a brute-force search of 10k rows takes under a second; UMAP's own
kernels come from :func:`~neurocarta.methods.umap_kernels.umap_module` (numba-cached).

Above ``MAX_POINTS`` rows a seeded sample is projected. Summary atlases keep no full
activations: their stored row sample is what is projected. The result is stored in the atlas
under ``maps/inputs/<layer>`` (one table of points, ``row``, ``input_id``, ``x``, ``y`` in the
unit square), for the viewer's sixth view and for Python.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import UserError, check_number
from .umap_kernels import umap_module

if TYPE_CHECKING:
    from ..store import Atlas

#: the kind under ``maps/`` the projections are stored as
KIND = "inputs"
#: more rows than this are projected as a seeded sample (UMAP and the viewer stay interactive)
MAX_POINTS = 100_000
#: activations are reduced to this many principal components before the neighbour search
PCA_DIMS = 32
#: neighbours per point (UMAP's n_neighbors)
NEIGHBOURS = 15


@dataclass
class InputProjection:
    """Points of one layer's activation rows in 2-D.

    ``points``: one row per projected activation row, ``row`` (the layer's activation row:
    the input id, or the token row on a text layer), ``input_id``, ``x`` and ``y`` in [0, 1]
    (the longer side spans the unit interval, the aspect is kept).
    """

    layer: str
    snapshot: str
    points: pd.DataFrame
    n_rows: int  # the layer's activation rows in all (the points are all of them, or a sample)
    params: dict = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return len(self.points) < self.n_rows

    def summary(self) -> dict:
        return {"layer": self.layer, "snapshot": self.snapshot, "n_points": len(self.points), "n_rows": self.n_rows,
                "sampled": self.sampled, **self.params}

    def save(self, atlas: Atlas) -> str:
        meta = {"layer": self.layer, "snapshot": self.snapshot, "n_rows": self.n_rows, "params": self.params}
        return atlas.save_map(KIND, self.layer, {"points": self.points}, meta)

    @classmethod
    def load(cls, atlas: Atlas, layer: str) -> InputProjection:
        tables, meta = atlas.load_map(KIND, layer)
        return cls(meta["layer"], meta["snapshot"], tables["points"], int(meta["n_rows"]), meta.get("params", {}))

    def plot(self, colour: np.ndarray | None = None, ax=None):
        """A quick matplotlib scatter of the points (``colour``: one value per point)."""
        from matplotlib.figure import Figure

        if ax is None:
            ax = Figure(figsize=(5, 5)).add_subplot()
        ax.scatter(self.points["x"], self.points["y"], s=2, c=colour, cmap="tab10" if colour is not None else None)
        ax.set_title(f"inputs of {self.layer} ({len(self.points):,} points)")
        ax.set_aspect("equal")
        ax.set_axis_off()
        return ax.figure


def project_inputs(atlas: Atlas, layer: str, snapshot: str | None = None, max_points: int = MAX_POINTS,
                   neighbours: int = NEIGHBOURS, min_dist: float = 0.1, seed: int = 0, stat: str = "mean",
                   save: bool = True) -> InputProjection:
    """UMAP of ``layer``'s activation rows at ``snapshot`` (default: the last), stored in
    the atlas under ``maps/inputs/<layer>`` when ``save``.

    ``max_points``: above this many rows, a seeded sample of them. ``stat``: the spatial
    reduction of a conv layer (``mean`` or ``max``).
    """
    max_points, neighbours, min_dist = check_params(max_points, neighbours, min_dist)
    snap = atlas.snapshot_name(snapshot)
    info = atlas.manifest.layer(layer)
    rng = np.random.default_rng(seed)
    if atlas.mode == "summary":
        rows, values = atlas.sample(layer, snap, stat=stat)
        n_rows = int(info.n_rows or (rows.max() + 1 if len(rows) else 0))
        if len(rows) > max_points:
            keep = np.sort(rng.choice(len(rows), max_points, replace=False))
            rows, values = rows[keep], values[keep]
        x = np.asarray(values, dtype=np.float32)
    else:
        acts = atlas.activations(layer, snap, stat=stat)
        n_rows = len(acts)
        rows = np.arange(n_rows) if n_rows <= max_points else np.sort(rng.choice(n_rows, max_points, replace=False))
        x = np.asarray(acts[rows] if len(rows) < n_rows else acts.to_numpy(), dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 3:
        raise UserError(f"layer {layer!r} has {len(rows)} activation rows; the input projection needs 3 or more")
    if not np.isfinite(x).all():
        raise UserError(f"the activations of layer {layer!r} hold NaN or Inf; re-extract the layer")
    input_ids = rows if info.rows != "token" else atlas.tokens["input_id"].to_numpy(dtype=np.int64)[rows]
    k = min(neighbours, len(rows) - 1)
    xy = layout(x, k, min_dist, seed)
    points = pd.DataFrame({"row": rows, "input_id": input_ids,
                           "x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32)})
    params = {"method": "umap", "neighbours": int(k), "min_dist": float(min_dist), "seed": int(seed),
              "pca_dims": int(min(PCA_DIMS, x.shape[1])), "stat": stat if info.kind == "conv" else None,
              "max_points": int(max_points), "rows": info.rows}
    result = InputProjection(layer, snap, points, n_rows, params)
    if save:
        result.save(atlas)
    return result


def check_params(max_points: int = MAX_POINTS, neighbours: int = NEIGHBOURS,
                 min_dist: float = 0.1) -> tuple[int, int, float]:
    """The parameters checked (one :class:`~neurocarta.errors.ParameterError` line for a bad
    one), so a run over many layers can refuse before it starts."""
    return (check_number("max_points", max_points, low=10, integer=True),
            check_number("neighbours", neighbours, low=2, integer=True),
            check_number("min_dist", min_dist, low=0.0, high=1.0))


def layout(x: np.ndarray, neighbours: int, min_dist: float, seed: int) -> np.ndarray:
    """Seeded 2-D UMAP of the rows of ``x`` in the unit square: PCA to at most
    ``PCA_DIMS`` components, exact neighbours, then UMAP on that neighbour graph."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    centred = x - x.mean(axis=0, dtype=np.float64).astype(np.float32)
    scale = float(np.sqrt((centred.astype(np.float64) ** 2).sum() / max(n, 1)))
    if scale <= 1e-12:  # every row the same: nothing to lay out, one point for all
        return np.full((n, 2), 0.5)
    centred /= scale  # one global scale: distances keep their ratios, rounding stays tame
    dims = min(PCA_DIMS, x.shape[1], n)
    reduced = (PCA(dims, svd_solver="randomized", random_state=seed).fit_transform(centred)
               if x.shape[1] > dims else centred).astype(np.float32)
    # exact neighbours (self included, as UMAP expects it first)
    dist, index = NearestNeighbors(n_neighbors=neighbours + 1).fit(reduced).kneighbors(reduced)
    umap = umap_module()
    with warnings.catch_warnings():
        # a seed makes UMAP single-threaded, and it says so; small sets warn about the spectral init
        warnings.simplefilter("ignore")
        model = umap.UMAP(n_neighbors=neighbours + 1, min_dist=min_dist, random_state=seed, init="pca",
                          n_epochs=200 if n <= 5_000 else 100,
                          precomputed_knn=(index.astype(np.int32), dist.astype(np.float32), None))
        xy = model.fit_transform(reduced)
    return unit_square(np.asarray(xy, dtype=np.float64))


def unit_square(xy: np.ndarray) -> np.ndarray:
    """Points shifted and scaled so the longer side spans [0, 1], centred on the shorter one."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float((hi - lo).max())
    if span <= 0:
        return np.full_like(xy, 0.5)
    return (xy - lo) / span + (1 - (hi - lo) / span) / 2


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie inside ``polygon`` ((m, 2) vertices, closed implicitly): the
    even-odd rule, the same one the viewer's lasso draws with."""
    inside = np.zeros(len(x), dtype=bool)
    px, py = polygon[:, 0], polygon[:, 1]
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi, xj, yj = px[i], py[i], px[j], py[j]
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < at)
        j = i
    return inside
