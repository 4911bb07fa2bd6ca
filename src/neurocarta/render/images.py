"""Map images: neuron values spread over the plane, as float arrays (no plotting here).

The original filled a 100 x 100 grid with ``griddata(linear)``, which leaves NaN holes
outside the neurons' convex hull. neurocarta follows the neuroscience reference (MNE's
``plot_topomap``): cubic Clough-Tocher interpolation by default, and extrapolation to a
border so the whole map is covered:

- ``extrapolate="box"``: border points on a square a margin outside the layout;
- ``extrapolate="disc"``: border points on a circle around the layout, and pixels outside
  the circle are NaN (a round map);
- ``extrapolate="none"``: the original's behaviour, NaN outside the convex hull.

A border point takes the mean of its nearest neurons' values (MNE's ``border="mean"``), or
a fixed number. Every group is interpolated in one call over one triangulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay, cKDTree

INTERPOLATIONS = ("cubic", "linear")
EXTRAPOLATIONS = ("box", "disc", "none")


@dataclass
class MapImages:
    """``images`` (groups x res x res, NaN where the map has no value) over ``extent``
    (xmin, xmax, ymin, ymax); row 0 is the bottom of the map (draw with origin="lower")."""

    images: np.ndarray
    extent: tuple[float, float, float, float]


def _border_points(layout: np.ndarray, shape: str, margin: float, n_border: int) -> tuple[np.ndarray, np.ndarray, float]:
    centre = (layout.min(axis=0) + layout.max(axis=0)) / 2
    if shape == "disc":
        radius = float(np.linalg.norm(layout - centre, axis=1).max()) * (1 + margin) or 1.0
        t = np.linspace(0, 2 * np.pi, n_border, endpoint=False)
        pts = centre + radius * np.c_[np.cos(t), np.sin(t)]
        return pts, centre, radius
    half = float((layout.max(axis=0) - layout.min(axis=0)).max()) / 2 * (1 + margin) or 0.5
    side = np.linspace(-half, half, n_border // 4, endpoint=False)
    ones = np.full_like(side, half)
    pts = np.concatenate([np.c_[side, -ones], np.c_[ones, side], np.c_[-side, ones], np.c_[-ones, -side]]) + centre
    return pts, centre, half


def map_images(layout: np.ndarray, values: np.ndarray, res: int = 64, interpolation: str = "cubic",
               extrapolate: str = "box", border: "str | float" = "mean", margin: float = 0.08,
               n_border_neighbours: int = 4) -> MapImages:
    """Interpolate ``values`` (neurons, or neurons x groups) at ``layout`` (neurons x 2) onto a
    ``res`` x ``res`` image per group."""
    y = np.asarray(layout, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    single = v.ndim == 1
    v = v[:, None] if single else v
    if y.ndim != 2 or y.shape[1] != 2 or v.shape[0] != y.shape[0]:
        raise ValueError(f"need an (n, 2) layout and n values per group, got {y.shape} and {v.shape}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    if extrapolate not in EXTRAPOLATIONS:
        raise ValueError(f"extrapolate must be one of {', '.join(EXTRAPOLATIONS)}, not {extrapolate!r}")
    if not np.isfinite(v).all():
        raise ValueError("map values must be finite; NaN or Inf found")
    # Neurons laid out on the same spot would make a degenerate triangulation: average them.
    pts, inverse = np.unique(np.round(y, 9), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    vals = np.zeros((len(pts), v.shape[1]))
    np.add.at(vals, inverse, v)
    vals /= np.bincount(inverse, minlength=len(pts))[:, None]
    if extrapolate == "none":
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 or 0.5
        all_pts, all_vals = pts, vals
    else:
        border_pts, centre, half = _border_points(pts, extrapolate, margin, max(32, 4 * int(np.sqrt(len(pts)))))
        if border == "mean":
            k = min(n_border_neighbours, len(pts))
            _, near = cKDTree(pts).query(border_pts, k=k)
            border_vals = vals[np.atleast_2d(near.T).T].mean(axis=1) if k > 1 else vals[near]
        else:
            border_vals = np.full((len(border_pts), vals.shape[1]), float(border))
        all_pts, all_vals = np.concatenate([pts, border_pts]), np.concatenate([vals, border_vals])
    xs = np.linspace(centre[0] - half, centre[0] + half, res)
    ys = np.linspace(centre[1] - half, centre[1] + half, res)
    gx, gy = np.meshgrid(xs, ys)
    query = np.c_[gx.ravel(), gy.ravel()]
    if len(all_pts) >= 3 and not _collinear(all_pts):
        tri = Delaunay(all_pts)
        if interpolation == "cubic":
            from scipy.interpolate import CloughTocher2DInterpolator as Interp
        else:
            from scipy.interpolate import LinearNDInterpolator as Interp
        out = Interp(tri, all_vals)(query)
    else:  # collinear neurons: nearest value
        out = all_vals[cKDTree(all_pts).query(query)[1]]
    images = out.reshape(res, res, -1).transpose(2, 0, 1)
    if extrapolate == "disc":
        outside = (gx - centre[0]) ** 2 + (gy - centre[1]) ** 2 > half ** 2
        images[:, outside] = np.nan
    extent = (xs[0], xs[-1], ys[0], ys[-1])
    return MapImages(images[0:1] if single else images, tuple(float(e) for e in extent))


def _collinear(pts: np.ndarray) -> bool:
    c = pts - pts.mean(axis=0)
    sxx, syy, sxy = (c[:, 0] ** 2).sum(), (c[:, 1] ** 2).sum(), (c[:, 0] * c[:, 1]).sum()
    return bool(sxx * syy - sxy ** 2 <= 1e-12 * max(sxx + syy, 1e-300) ** 2)


def grid_images(cells: np.ndarray, shape: tuple[int, int], values: np.ndarray) -> np.ndarray:
    """Grid maps: each neuron's value in its own cell (groups x rows x cols, NaN if empty)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    rows, cols = shape
    out = np.full((v.shape[1], rows * cols), np.nan)
    out[:, np.asarray(cells)] = v.T
    return out.reshape(v.shape[1], rows, cols)
