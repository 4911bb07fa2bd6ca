"""From a batch's reduced tensors on the model's device to numpy on the host, in one step.

The hooks leave every layer's reduced values on the device the model runs on (reductions.py).
:func:`round_to_host` then, for the whole batch at once:

1. rounds the values to the storage dtype there (float16 halves the bytes to copy), once,
   so every statistic downstream sees exactly what is stored;
2. checks them for NaN and Inf with one sum per block (the sum is finite exactly when every
   value is: NaN and Inf propagate, and the wider accumulator cannot overflow on finite
   values). ``isfinite().all()`` writes a bool per value and cost 20x the rounding itself on
   float16 (2.8 vs 0.13 ms on a 560 x 1536 block of MiniLM tokens, one thread);
3. copies the rounded values, the exact ones (argmax, predictions) and the sums to the host.
   On CUDA the copies are non-blocking (into pinned memory) and one synchronisation waits
   for them all, the sums included: a batch costs one round trip, not one per layer.

Only what is passed here crosses to the host, so a caller that passes reduced tensors never
copies a full activation map.
"""

from __future__ import annotations

import math
from typing import Hashable, TypeVar

import numpy as np
import torch

K = TypeVar("K", bound=Hashable)


def round_to_host(rounded: dict[K, torch.Tensor], exact: dict[K, torch.Tensor], dtype: torch.dtype
                  ) -> tuple[dict[K, np.ndarray], K | None]:
    """``rounded`` cast to ``dtype`` and ``exact`` as they are, all as host numpy arrays, and
    the first key of ``rounded`` whose rounded values are not all finite (None when all are)."""
    cast = {k: t.to(dtype) for k, t in rounded.items()}
    acc = torch.float32 if dtype == torch.float16 else torch.float64
    sums = torch.stack([t.sum(dtype=acc) for t in cast.values()]) if cast else None
    host = copy_to_host({**cast, **exact, _SUMS: sums} if sums is not None else {**cast, **exact})
    bad = None
    if sums is not None:
        totals = host.pop(_SUMS)
        if not math.isfinite(float(totals.sum())):
            bad = next(k for k, s in zip(cast, totals) if not math.isfinite(float(s)))
    return host, bad


_SUMS = object()  # the key of the finiteness sums among the copies


def copy_to_host(tensors: dict) -> dict:
    """The tensors as host numpy arrays. CPU tensors are shared, not copied. Other devices'
    are copied without blocking and waited for once (on CUDA the copies go to pinned memory,
    which is what makes them asynchronous)."""
    devices = {t.device for t in tensors.values()}
    if all(d.type == "cpu" for d in devices):
        return {k: t.numpy() for k, t in tensors.items()}
    cuda = any(d.type == "cuda" for d in devices)
    moved = {k: t.to("cpu", non_blocking=cuda) for k, t in tensors.items()}
    for d in devices:
        if d.type == "cuda":
            torch.cuda.synchronize(d)
    return {k: t.numpy() for k, t in moved.items()}
