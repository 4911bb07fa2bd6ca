"""Grid mode: one neuron per cell of a near-square grid, as close as possible to its layout spot.

The cost of putting neuron i in cell c is the squared distance from i's layout position to
c's centre; the best assignment minimises the sum.

- Up to ``exact_limit`` neurons (2,048 by default): the exact optimum, with SciPy's
  ``linear_sum_assignment``.
- Beyond: written by hand, because an exact assignment is cubic (scipy takes about 25 s at
  4,096 neurons on 2 cores). Band-sort the neurons into rows and columns, then improve the
  assignment with exact assignments inside windows of cells (two passes, the second with
  windows shifted by half a window). Each window is solved optimally given the rest, so the
  total cost never rises. ``benchmarks/bench_topomap.py`` measures the time and the gap to the
  exact optimum.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols): cols = ceil(sqrt(n)), rows = ceil(n / cols), so rows x cols >= n."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def cell_centres(rows: int, cols: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Centres of a rows x cols grid spanning the box [lo, hi], row-major order."""
    ys = lo[1] + (np.arange(rows) + 0.5) / rows * (hi[1] - lo[1])
    xs = lo[0] + (np.arange(cols) + 0.5) / cols * (hi[0] - lo[0])
    gx, gy = np.meshgrid(xs, ys)
    return np.c_[gx.ravel(), gy.ravel()]


def assignment_cost(layout: np.ndarray, centres: np.ndarray, cells: np.ndarray) -> float:
    """Total squared distance of each neuron to its assigned cell's centre."""
    return float(((layout - centres[cells]) ** 2).sum())


def grid_assign(layout: np.ndarray, exact_limit: int = 2048, window: int = 32) -> tuple[np.ndarray, tuple[int, int]]:
    """Assign each neuron a distinct grid cell.

    Returns ``(cells, (rows, cols))``: ``cells[i]`` is neuron i's row-major cell index.
    """
    y = np.asarray(layout, dtype=np.float64)
    n = y.shape[0]
    rows, cols = grid_shape(n)
    lo, hi = y.min(axis=0), y.max(axis=0)
    hi = np.where(hi > lo, hi, lo + 1.0)
    centres = cell_centres(rows, cols, lo, hi)
    if n <= exact_limit:
        cost = ((y[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        neuron, cell = linear_sum_assignment(cost)
        cells = np.empty(n, dtype=np.int64)
        cells[neuron] = cell
        return cells, (rows, cols)
    cells = _band_sort(y, rows, cols)
    for offset in (0, window // 2):
        cells = _refine_windows(y, centres, cells, rows, cols, window, offset)
    return cells, (rows, cols)


def _band_sort(y: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Start: sort by y into bands of ``cols`` neurons, then each band by x."""
    n = y.shape[0]
    by_y = np.argsort(y[:, 1], kind="stable")
    cells = np.empty(n, dtype=np.int64)
    for r in range(rows):
        band = by_y[r * cols:(r + 1) * cols]
        if not len(band):
            break
        cells[band[np.argsort(y[band, 0], kind="stable")]] = r * cols + np.arange(len(band))
    return cells


def _refine_windows(y: np.ndarray, centres: np.ndarray, cells: np.ndarray, rows: int, cols: int,
                    window: int, offset: int) -> np.ndarray:
    """Exact assignment inside each window of cells (neurons in it plus its empty cells)."""
    owner = np.full(rows * cols, -1, dtype=np.int64)
    owner[cells] = np.arange(len(cells))
    starts_r = range(-offset, rows, window) if offset else range(0, rows, window)
    starts_c = range(-offset, cols, window) if offset else range(0, cols, window)
    for r0 in starts_r:
        for c0 in starts_c:
            rr = np.arange(max(r0, 0), min(r0 + window, rows))
            cc = np.arange(max(c0, 0), min(c0 + window, cols))
            if len(rr) == 0 or len(cc) == 0:
                continue
            win = (rr[:, None] * cols + cc[None, :]).ravel()
            members = owner[win]
            members = members[members >= 0]
            if len(members) < 2:
                continue
            cost = ((y[members][:, None, :] - centres[win][None, :, :]) ** 2).sum(-1)
            i, j = linear_sum_assignment(cost)
            owner[win] = -1
            cells[members[i]] = win[j]
            owner[win[j]] = members[i]
    return cells
