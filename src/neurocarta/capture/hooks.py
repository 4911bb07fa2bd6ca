"""Forward hooks that record layer outputs safely.

Each hook reduces or copies its layer's output *inside* the hook, before any later module
can touch the tensor, so an in-place op downstream (``ReLU(inplace=True)``) cannot corrupt
what is recorded. Conv maps are reduced right there to per-channel spatial mean, max and
argmax, which also keeps memory at (batch x channels) instead of (batch x C x H x W).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import LayerError, NonFiniteError
from .layers import LayerRef, output_kind, pick_element


@dataclass
class Captured:
    """One layer's output for one batch, already on the CPU as float32 numpy."""

    kind: str
    value: np.ndarray | None = None  # dense (B,C) or sequence (B,T,C), or (rows, C) when ``selected``
    mean: np.ndarray | None = None  # conv (B,C)
    max: np.ndarray | None = None  # conv (B,C)
    argmax: np.ndarray | None = None  # conv (B,C) flat h*W+w
    shape: tuple[int, ...] = ()  # per-input output shape
    selected: bool = False  # sequence rows already picked by the recorder's row mask


class LayerRecorder:
    """Registers hooks on the chosen layers; ``captured`` holds the latest batch.

    ``row_mask`` (a (B, T) bool tensor, set per batch) makes sequence hooks keep only those
    token rows, in row-major order, so padding is never copied out of the model's tensors.
    """

    def __init__(self, model: torch.nn.Module, refs: list[LayerRef]):
        self.model = model
        self.refs = refs
        self.captured: dict[str, Captured] = {}
        self.row_mask: torch.Tensor | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> "LayerRecorder":
        modules = dict(self.model.named_modules())
        by_module: dict[str, list[LayerRef]] = {}
        for ref in self.refs:
            by_module.setdefault(ref.module_name, []).append(ref)
        for name, refs in by_module.items():
            module = modules[name]
            if isinstance(module, torch.jit.ScriptModule):
                raise LayerError(
                    f"layer {name!r} belongs to a TorchScript model, and PyTorch cannot hook "
                    "TorchScript modules; save the model with torch.save(model) and pass --trust, "
                    "or load it with a py:module:callable spec"
                )
            self._handles.append(module.register_forward_hook(self._hook(refs)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def clear(self) -> None:
        self.captured = {}

    def _hook(self, refs: list[LayerRef]):
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            for ref in refs:
                self.captured[ref.name] = capture_output(pick_element(output, ref), ref, self.row_mask)
        return hook


def capture_output(tensor: Any, ref: LayerRef, row_mask: torch.Tensor | None = None) -> Captured:
    """Copy or reduce one layer output to CPU float32 numpy (see module docstring); a
    sequence output with a matching ``row_mask`` is copied as its selected rows only."""
    kind = output_kind(tensor, ref)
    t = tensor.detach()
    if kind == "conv":
        flat = t.flatten(2).float()
        mx, am = flat.max(dim=2)
        mean = flat.mean(dim=2)
        return Captured(kind, mean=mean.cpu().numpy(), max=mx.cpu().numpy(),
                        argmax=am.cpu().numpy(), shape=tuple(t.shape[1:]))
    if t.ndim == 1:
        t = t[:, None]
    if kind == "sequence" and row_mask is not None and tuple(row_mask.shape) == tuple(t.shape[:2]):
        rows = t[row_mask.to(t.device)]  # boolean indexing copies: later in-place ops cannot reach it
        return Captured(kind, value=rows.to(device="cpu", dtype=torch.float32).numpy(), shape=tuple(t.shape[1:]),
                        selected=True)
    # .to(copy=True) always copies, even when the tensor is already CPU float32
    value = t.to(device="cpu", dtype=torch.float32, copy=True).numpy()
    return Captured(kind, value=value, shape=tuple(t.shape[1:]))


def find_logits(output: Any) -> torch.Tensor | None:
    """The model's class scores, when its output has them: a 2-D tensor or ``.logits``."""
    if isinstance(output, torch.Tensor):
        return output if output.ndim == 2 else None
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor) and logits.ndim == 2:
        return logits
    return None


def check_finite(name: str, values: np.ndarray, input_ids: np.ndarray) -> None:
    """neurocarta's rule for NaN/Inf activations: fail, naming the layer and the inputs."""
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.nonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0]
        ids = ", ".join(str(int(input_ids[min(r, len(input_ids) - 1)])) for r in rows[:5])
        raise NonFiniteError(
            f"layer {name!r} produced NaN or infinite activations for input(s) {ids}; "
            "check the model weights and the preprocessing (neurocarta never stores non-finite values)"
        )
