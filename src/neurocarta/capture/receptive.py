"""Receptive fields of conv layers, measured from gradients (no architecture parsing).

The methods never see the model, so extraction measures each captured conv layer's
receptive field once and records it in the manifest (``LayerInfo.receptive_field``); the
concept atlas then crops exemplar patches of that size around each neuron's argmax
(``methods/concepts/patches.py``).

How: the input pixels that can influence the centre unit ``(H // 2, W // 2)`` of a layer's
feature map are those where the gradient of that unit (summed over channels) with respect
to the input is non-zero. Reading the structure off the graph this way works for any
module (padding, dilation, pooling, depthwise and strided convs, blocks with skips) where a
formula would need every layer type spelled out.

- **Random inputs, several of them.** A ReLU that is off, or a max-pool window whose
  maximum sits elsewhere, passes no gradient, so one input can hide part of the field (a
  zero input is worse: every max-pool then picks its first cell). The gradient magnitudes
  of ``n_samples`` seeded Gaussian inputs are summed, which covers every path in practice.
- **Extent, not mass.** The field is the bounding box of the non-zero gradient: the
  theoretical receptive field. The "effective" field of Luo et al. (2016), the share of the
  gradient mass near the centre, is smaller and depends on the weights; the extent is
  exact, the same in every snapshot and matches the textbook recurrence
  ``r += (k - 1) * jump`` (see the tests).
- **Not cut by the image.** Where the extent reaches the input's border the image hides part
  of the field; the side is then estimated from the far end (see :func:`field_side`),
  which is exact while one end lies inside the image (measuring again on a larger input
  would cost a deep model's backward passes at 4x or 16x the pixels).
- **One number per layer.** ``max(height, width)`` of the box, in input pixels: crops are
  square, and the patch geometry clips them to the image.

Cost: one forward and one backward per layer on ``n_samples`` inputs, at extraction start
(about 0.1 s for demo-cnn's four blocks on a CPU).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .hooks import LayerHooks
from .layers import LayerRef, pick_element


class _Stop(Exception):
    """Raised by a hook once every wanted layer has run: the rest of the model is not needed."""


def receptive_fields(module: torch.nn.Module, refs: list[LayerRef], example: torch.Tensor,
                     forward: Callable[[torch.Tensor], Any] | None = None, n_samples: int = 2,
                     seed: int = 0) -> dict[str, int | None]:
    """The receptive field (input pixels) of the centre unit of each conv layer in ``refs``.

    Parameters
    ----------
    module : the model (in eval mode; its parameters and ``.grad`` are left untouched).
    refs : the layers to measure; those whose output is not ``(N, C, H, W)`` are skipped.
    example : one preprocessed input batch ``(n, C, H, W)``: only its shape, dtype and
        device are used.
    forward : runs the model on a tensor (default: ``module(x)``); use it for models that
        take their input in another form.
    n_samples, seed : how many seeded Gaussian inputs are summed (see the module docstring).

    Returns
    -------
    ``{layer name: side in pixels}`` (it may exceed the input, see :func:`field_side`),
    ``None`` for a layer the input does not reach.
    """
    if not isinstance(example, torch.Tensor) or example.ndim != 4:
        raise ValueError(f"receptive fields need an (N, C, H, W) image input, got {type(example).__name__}"
                         + (f" {tuple(example.shape)}" if isinstance(example, torch.Tensor) else ""))
    forward = forward or module
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n_samples, *example.shape[1:]), generator=gen).to(device=example.device, dtype=example.dtype)
    x.requires_grad_(True)
    targets: dict[str, tuple[torch.Tensor, tuple[int, int]] | None] = {}
    wanted = {r.name for r in refs}
    # A bare name of a module run several times means its last call (as extraction records
    # it), so the forward pass can stop early only when every layer names its call.
    stop_early = all(r.call is not None for r in refs)

    def record(ref: LayerRef, output: Any) -> None:
        out = pick_element(output, ref)
        if isinstance(out, torch.Tensor) and out.ndim == 4 and out.requires_grad:
            # The scalar is built now, so a later in-place op (ReLU(inplace=True))
            # cannot reroute its gradient.
            h, w = out.shape[2:]
            targets[ref.name] = (out[:, :, h // 2, w // 2].sum(), (int(h), int(w)))
        else:
            targets[ref.name] = None
        if stop_early and wanted <= set(targets):
            raise _Stop

    fields: dict[str, int | None] = {}
    with LayerHooks(module, refs, record), torch.enable_grad():
        try:
            forward(x)
        except _Stop:
            pass
        for ref in refs:
            target = targets.get(ref.name)
            if target is None:
                continue
            (grad,) = torch.autograd.grad(target[0], x, retain_graph=True, allow_unused=True)
            fields[ref.name] = None if grad is None else field_side(
                grad.detach().abs().sum(dim=(0, 1)).float().cpu().numpy(), target[1])
    return fields


def field_side(grad: np.ndarray, feature_shape: tuple[int, int]) -> int | None:
    """The receptive field's side from the input-gradient map of a centre unit.

    Per axis: the extent of the non-zero cells. Where that extent reaches the input's
    border the image cut the field off, so the side is twice the larger distance from the
    unit's centre, ``(H // 2 + 0.5) * input / H``, to the extent's ends: exact when the far
    end is inside the image, and at least the input's side when both ends are cut (a field
    that covers the whole image, whatever its true size). The result is the larger axis.
    """
    sides = []
    for axis in (0, 1):
        nz = np.flatnonzero(grad.any(axis=1 - axis))
        if nz.size == 0:
            return None
        n_in, n_f = grad.shape[axis], feature_shape[axis]
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        if lo > 0 and hi < n_in:
            sides.append(hi - lo)
        else:
            centre = (n_f // 2 + 0.5) * n_in / n_f
            sides.append(int(np.floor(2 * max(centre - lo, hi - centre) + 0.5)))
    return max(sides)
