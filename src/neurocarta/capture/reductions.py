"""Per-channel spatial max and argmax of conv maps, at the speed of a plain max.

``torch.max(x, dim)`` with indices runs a scalar loop: on the demo CNN's block outputs it
cost 10x a ``mean`` over the same values (0.72 vs 0.06 ms for a 64 x 16 x 32 x 32 batch,
one thread). ``amax`` without indices is vectorised and as fast as the mean; the index is
then found by a compiled scan that stops at the first value equal to the maximum, which is
also the index ``torch.max`` returns (the first of tied maxima, e.g. the zeros of a dead
ReLU channel). Measured 2.5x faster for the four demo-cnn blocks together.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit


@njit(nogil=True, cache=True)
def _first_index_of(x, targets, values, indices):
    """For each row r of ``x``: the first j with ``x[r, j] == targets[r]``, and that value
    (so a maximum of -0.0 and 0.0 is stored as the first one, as torch.max does). A row
    with no match (a NaN maximum) gets index 0 and the target; the finiteness check rejects it."""
    n, width = x.shape
    for r in range(n):
        t = targets[r]
        indices[r] = 0
        values[r] = t
        for j in range(width):
            if x[r, j] == t:
                indices[r] = j
                values[r] = x[r, j]
                break


def spatial_max(flat: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Max and argmax over the last dimension of a (B, C, HW) float32 tensor, as numpy
    (B, C) float32 and int64: the same values and indices as ``flat.max(dim=2)``."""
    if flat.device.type != "cpu" or flat.shape[2] == 0:
        mx, am = flat.max(dim=2)  # a GPU runs the fused kernel well; only the results move
        return mx.cpu().numpy(), am.cpu().numpy()
    rows = flat.contiguous().reshape(-1, flat.shape[2])
    targets = rows.amax(dim=1).numpy()
    values = np.empty(len(targets), dtype=np.float32)
    indices = np.empty(len(targets), dtype=np.int64)
    _first_index_of(rows.numpy(), targets, values, indices)
    b, c = flat.shape[:2]
    return values.reshape(b, c), indices.reshape(b, c)
