"""Covers of the lens space: overlapping intervals (hypercubes for multi-dimensional lenses).

``uniform`` follows the arithmetic of KeplerMapper's ``Cover`` exactly, so graphs can be
compared node for node: on each lens dimension with range [lo, hi] and n intervals, the
centres are ``linspace(lo + r0, hi - r0, n)`` with ``r0 = (hi - lo) / (2 n)``, every interval
has half-width ``(hi - lo) / (2 n (1 - overlap))``, and membership is closed on both ends.
Adjacent intervals then share ``overlap`` of their length.

``balanced`` puts the interval edges at quantiles of the lens instead, so every interval
holds about the same number of inputs (useful for skewed lenses such as the L2 norm); the
overlap is then a share of inputs: adjacent intervals have ``overlap`` of their inputs in
common.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from ...errors import UserError, check_choice, check_number
from ..defaults import MAPPER_COVER

KINDS = ("uniform", "balanced")


@dataclass
class Cover:
    """``intervals`` per lens dimension (one number, or one per dimension), the ``overlap``
    fraction of adjacent intervals and the ``kind`` of cover (see the module docstring)."""

    intervals: int | list[int]
    overlap: float
    kind: str = MAPPER_COVER

    def __post_init__(self):
        for n in np.atleast_1d(np.asarray(self.intervals, dtype=object)):
            check_number("intervals", n, 1, integer=True)
        check_number("overlap (a fraction such as 0.3)", self.overlap, 0.0, 1.0, low_open=True, high_open=True)
        check_choice("cover", self.kind, KINDS)

    def bounds(self, lens: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per dimension: (lower, upper) bounds of every interval."""
        lens = _as_2d(lens)
        counts = np.broadcast_to(np.atleast_1d(self.intervals), (lens.shape[1],)).astype(int)
        p = float(self.overlap)
        out = []
        for d in range(lens.shape[1]):
            v, n = lens[:, d], int(counts[d])
            if self.kind == "uniform":
                lo, hi = float(v.min()), float(v.max())
                span = hi - lo
                centres = np.linspace(lo + span / (2 * n), hi - span / (2 * n), n)
                radius = span / (2 * n * (1 - p))
                out.append((centres - radius, centres + radius))
            else:
                # Overlap is measured in ranks: each interval holds 1/n of the inputs plus a
                # margin on each side, so that neighbours share ``overlap`` of their inputs.
                grow = p / (2 * (1 - p)) / n
                q = np.linspace(0, 1, n + 1)
                lo_q, hi_q = np.clip(q[:-1] - grow, 0, 1), np.clip(q[1:] + grow, 0, 1)
                out.append((np.quantile(v, lo_q), np.quantile(v, hi_q)))
        return out

    def members(self, lens: np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """``(cube index per dimension, sorted member rows)`` for every non-empty hypercube."""
        lens = _as_2d(lens)
        per_dim = []
        for d, (lo, hi) in enumerate(self.bounds(lens)):
            v = lens[:, d]
            order = np.argsort(v, kind="stable")
            sv = v[order]
            starts = np.searchsorted(sv, lo, side="left")
            stops = np.searchsorted(sv, hi, side="right")
            per_dim.append([np.sort(order[a:b]) for a, b in zip(starts, stops)])
        cubes = []
        for key in product(*(range(len(m)) for m in per_dim)):
            rows = per_dim[0][key[0]]
            for d in range(1, len(key)):
                rows = np.intersect1d(rows, per_dim[d][key[d]], assume_unique=True)
            if rows.size:
                cubes.append((key, rows))
        return cubes


def _as_2d(lens: np.ndarray) -> np.ndarray:
    lens = np.asarray(lens, dtype=np.float64)
    lens = lens[:, None] if lens.ndim == 1 else lens
    if lens.ndim != 2 or lens.shape[0] == 0:
        raise UserError(f"the lens must be (inputs,) or (inputs, dims) with at least one input, got {lens.shape}")
    if not np.isfinite(lens).all():
        raise UserError("the lens holds NaN or Inf; check the activations or the lens column")
    return lens
