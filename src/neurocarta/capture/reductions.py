"""The reductions a hook applies to a layer's output, on the device the model runs on.

Everything here takes and returns torch tensors on the output's own device, so with a GPU
(``--device cuda``) the reductions run there and only their results, a few values per
channel or the kept token rows, are copied to the host (see host.py). Nothing converts to
numpy before a reduction.

Conv max and argmax have one CPU-only shortcut. ``torch.max(x, dim)`` with indices runs a
scalar loop on the CPU: on the demo CNN's block outputs it cost 10x a ``mean`` over the
same values (0.72 vs 0.06 ms for a 64 x 16 x 32 x 32 batch, one thread). ``amax`` without
indices is vectorised and as fast as the mean; the index is then found by a compiled scan
that stops at the first value equal to the maximum, which is also the index ``torch.max``
returns (the first of tied maxima, e.g. the zeros of a dead ReLU channel). Measured 2.5x
faster for the four demo-cnn blocks together. A fused one-pass kernel (sum, max and argmax
per row in numba) was measured slower (2.1 vs 1.2 ms per batch of 64): without fast-math it
does not vectorise. On other devices ``torch.max`` is the fused kernel itself.
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


def spatial_max(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and argmax over the last dimension of a (B, C, HW) float32 tensor, as (B, C)
    float32 and int64 tensors on its device: the same values and indices as ``flat.max(dim=2)``."""
    if flat.device.type != "cpu" or flat.shape[2] == 0:
        mx, am = flat.max(dim=2)  # a GPU runs the fused kernel well
        return mx, am
    rows = flat.contiguous().reshape(-1, flat.shape[2])
    targets = rows.amax(dim=1).numpy()
    values = np.empty(len(targets), dtype=np.float32)
    indices = np.empty(len(targets), dtype=np.int64)
    _first_index_of(rows.numpy(), targets, values, indices)
    b, c = flat.shape[:2]
    return torch.from_numpy(values).reshape(b, c), torch.from_numpy(indices).reshape(b, c)


def conv_summary(output: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-channel spatial mean, max and argmax (flat ``h * W + w``) of a (B, C, H, W) map,
    each (B, C), new tensors on the map's device (float32, argmax int64)."""
    flat = output.flatten(2).float()
    mx, am = spatial_max(flat)
    return {"mean": flat.mean(dim=2), "max": mx, "argmax": am}


def pool_sequence(value: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """One float32 (B, C) row per input from a (B, T, C) sequence over its ``mask``ed (B, T)
    positions (None: all): ``cls`` (position 0), ``mean`` or ``max``. An input without a
    kept position pools to 0 (max) or 0 (mean: the sum over no positions)."""
    v = value.float()
    if how == "cls":
        return v[:, 0].clone()
    if mask is None:
        mask = torch.ones(v.shape[:2], dtype=torch.bool, device=v.device)
    if how == "mean":
        w = mask[:, :, None].to(v.dtype)
        return (v * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
    if how == "max":
        pooled = v.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)
        return pooled.masked_fill(~mask.any(dim=1)[:, None], 0.0)
    raise ValueError(f"unknown pooling {how!r}")
