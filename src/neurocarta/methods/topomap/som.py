"""A batch self-organising map, written for speed (the original used MiniSom's online SOM).

Batch SOM: every epoch finds each profile's best-matching unit with one BLAS distance
computation, then sets each unit's weight to the neighbourhood-weighted mean of the profiles.
The neighbourhood shrinks from ``sigma_start`` to ``sigma_end`` over the epochs. There is no
learning rate and no per-sample Python loop, which is where MiniSom spends its time
(``benchmarks/bench_topomap.py --som`` measures both at equal quantisation error).

As in the original: a grid of side floor(sqrt(n)) + 1, and neurons that share a unit are
spread on a small circle around it.
"""

from __future__ import annotations

import math

import numpy as np


def _bmu(x32: np.ndarray, w: np.ndarray, block: int = 1024) -> np.ndarray:
    """Best-matching unit per row: argmin of ||w||^2 - 2 x.w (||x||^2 does not change it),
    in float32 and row blocks so the (rows x units) scores stay in cache."""
    w32 = w.astype(np.float32)
    ww = (w32 * w32).sum(1)
    out = np.empty(x32.shape[0], dtype=np.int64)
    for s in range(0, x32.shape[0], block):
        scores = x32[s:s + block] @ w32.T
        scores *= -2.0
        scores += ww
        out[s:s + block] = scores.argmin(1)
    return out


class BatchSOM:
    """Batch SOM on a ``side x side`` grid.

    Parameters
    ----------
    side : grid side; default floor(sqrt(n)) + 1 (the original's rule).
    epochs : batch epochs.
    sigma_start, sigma_end : Gaussian neighbourhood width in grid units, shrinking
        geometrically; default start is side / 2.
    seed : initial weights are seeded samples of the data.

    Attributes
    ----------
    weights_ : (side * side, d) unit weights, row-major.
    bmu_ : best-matching unit of every training row.
    quantization_error_ : mean distance from each row to its unit's weight.
    """

    def __init__(self, side: int | None = None, epochs: int = 15, sigma_start: float | None = None,
                 sigma_end: float = 0.5, seed: int = 0):
        self.side, self.epochs, self.sigma_start, self.sigma_end, self.seed = side, epochs, sigma_start, sigma_end, seed

    def fit(self, x: np.ndarray) -> "BatchSOM":
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        side = self.side or int(math.floor(math.sqrt(n))) + 1
        units = side * side
        gy, gx = np.divmod(np.arange(units), side)
        grid = np.c_[gx, gy].astype(np.float64)
        axis = np.arange(side, dtype=np.float64)
        axis_d2 = (axis[:, None] - axis[None, :]) ** 2
        rng = np.random.default_rng(self.seed)
        w = x[rng.choice(n, size=units, replace=units > n)] + 1e-6 * rng.normal(size=(units, x.shape[1]))
        s0 = self.sigma_start or max(side / 2.0, self.sigma_end)
        sigmas = s0 * (self.sigma_end / s0) ** (np.arange(self.epochs) / max(self.epochs - 1, 1))
        x32 = x.astype(np.float32)
        for sigma in sigmas:
            bmu = _bmu(x32, w)
            # Per-unit sums, then the Gaussian neighbourhood, which is separable on a grid:
            # two (side x side) products instead of one (units x units) or (units x n).
            sums = np.zeros((units, x.shape[1]))
            np.add.at(sums, bmu, x)
            counts = np.bincount(bmu, minlength=units).astype(np.float64)
            g = np.exp(-axis_d2 / (2.0 * sigma * sigma))
            rows = np.tensordot(g, sums.reshape(side, side, -1), axes=(1, 0))  # smooth along grid y
            smooth_s = np.tensordot(rows, g, axes=(1, 1)).transpose(0, 2, 1).reshape(units, -1)  # along x
            smooth_c = (g @ counts.reshape(side, side) @ g.T).reshape(units, 1)
            w = np.where(smooth_c > 1e-12, smooth_s / np.maximum(smooth_c, 1e-12), w)
        self.bmu_ = _bmu(x32, w)
        self.quantization_error_ = float(np.linalg.norm(x - w[self.bmu_], axis=1).mean())
        self.weights_, self.side_ = w, side
        self.grid_ = grid
        return self

    def positions(self, radius: float = 0.3) -> np.ndarray:
        """(n, 2) grid positions; rows sharing a unit are spread evenly on a small circle."""
        pos = self.grid_[self.bmu_].copy()
        for unit in np.unique(self.bmu_):
            members = np.nonzero(self.bmu_ == unit)[0]
            if len(members) > 1:
                angle = 2 * np.pi * np.arange(len(members)) / len(members)
                pos[members] += radius * np.c_[np.cos(angle), np.sin(angle)]
        return pos
