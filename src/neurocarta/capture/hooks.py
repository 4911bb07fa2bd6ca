"""Forward hooks that record layer outputs safely.

Each hook reduces or copies its layer's output *inside* the hook, before any later module
can touch the tensor, so an in-place op downstream (``ReLU(inplace=True)``) cannot corrupt
what is recorded. Conv maps are reduced right there to per-channel spatial mean, max and
argmax, which also keeps memory at (batch x channels) instead of (batch x C x H x W);
sequences are pooled there or cut to their kept token rows. The results stay on the model's
device (reductions.py): with a GPU, only they are copied to the host, later, in one step
per batch (host.py).

A module can run several times in one forward pass. :class:`LayerHooks` numbers its calls
per pass, so ``act#1`` records the second call and a bare ``act`` the last one (with one
warning saying so); every hook in ``capture/`` goes through it and agrees on the numbering.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import LayerError, NonFiniteError
from .layers import LayerRef, output_kind, pick_element
from .reductions import conv_summary, pool_sequence


@dataclass
class Captured:
    """One layer's output for one batch, reduced, as new float32 tensors on the model's device."""

    kind: str
    value: torch.Tensor | None = None  # dense (B,C); sequence (B,T,C), its (rows, C) when ``selected``,
    # or its (B,C) pooled rows when ``pooled``
    mean: torch.Tensor | None = None  # conv (B,C)
    max: torch.Tensor | None = None  # conv (B,C)
    argmax: torch.Tensor | None = None  # conv (B,C) flat h*W+w, int64
    shape: tuple[int, ...] = ()  # per-input output shape
    selected: bool = False  # sequence rows already picked by the recorder's row mask
    pooled: bool = False  # sequence already pooled to one row per input


class LayerHooks:
    """Forward hooks on the modules behind ``refs`` that number each module's calls per forward pass.

    ``on_output(ref, output)`` runs for the call a ref names (``act#1``: the second), or for
    every call of a ref without an index (the caller decides which one counts). Hooks on the
    root module reset the counts when a forward pass starts and, when it ends, fail with a
    :class:`LayerError` if a named call never ran, then pass the counts to ``on_forward_end``.
    """

    def __init__(self, model: torch.nn.Module, refs: list[LayerRef],
                 on_output: Callable[[LayerRef, Any], None],
                 on_forward_end: Callable[[dict[str, int]], None] | None = None):
        self.model = model
        self.refs = refs
        self.on_output = on_output
        self.on_forward_end = on_forward_end
        self.calls: dict[str, int] = {}  # module name -> calls so far in this forward pass
        self._handles: list[Any] = []

    def __enter__(self) -> "LayerHooks":
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
            self._handles.append(module.register_forward_hook(self._hook(name, refs)))
        if not isinstance(self.model, torch.jit.ScriptModule):
            self._handles.append(self.model.register_forward_pre_hook(lambda _m, _a: self.reset()))
            self._handles.append(self.model.register_forward_hook(lambda _m, _a, _o: self._forward_end()))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        self.calls = {}

    def _hook(self, name: str, refs: list[LayerRef]):
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            call = self.calls.get(name, 0)
            self.calls[name] = call + 1
            for ref in refs:
                if ref.call is None or ref.call == call:
                    self.on_output(ref, output)
        return hook

    def _forward_end(self) -> None:
        for ref in self.refs:
            n = self.calls.get(ref.module_name, 0)
            if ref.call is not None and ref.call >= n:
                ran = ("did not run in the forward pass" if n == 0 else "runs once per forward pass (call #0)"
                       if n == 1 else f"runs {n} times per forward pass (calls #0 to #{n - 1})")
                raise LayerError(f"layer {ref.name!r} names call #{ref.call}, but module {ref.module_name!r} "
                                 f"{ran}; run `neurocarta layers --model ...` to list every call")
        if self.on_forward_end is not None:
            self.on_forward_end(dict(self.calls))


class LayerRecorder:
    """Registers hooks on the chosen layers; ``captured`` holds the latest batch.

    ``row_mask`` (a (B, T) bool tensor on the model's device, set per batch) makes sequence
    hooks keep only those token rows, in row-major order, so padding is never copied out of
    the model's tensors; ``pooling`` (layer name -> ``mean``/``max``/``cls``) pools those
    layers over the mask instead.
    A layer without a call index whose module runs more than once keeps its last call, and
    the first forward pass that shows this warns once, naming the call recorded.
    """

    def __init__(self, model: torch.nn.Module, refs: list[LayerRef], pooling: dict[str, str | None] | None = None):
        self.refs = refs
        self.pooling = pooling or {}
        self.captured: dict[str, Captured] = {}
        self.row_mask: torch.Tensor | None = None
        self._hooks = LayerHooks(model, refs, self._record, self._warn_reused)

    def __enter__(self) -> "LayerRecorder":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)

    def clear(self) -> None:
        self.captured = {}

    def _record(self, ref: LayerRef, output: Any) -> None:
        self.captured[ref.name] = capture_output(pick_element(output, ref), ref, self.row_mask,
                                                 self.pooling.get(ref.name))

    def _warn_reused(self, calls: dict[str, int]) -> None:
        self._hooks.on_forward_end = None  # the first forward pass tells; later batches skip the check
        message = _reused_layers_message(self.refs, calls)
        if message:
            warnings.warn(message)


def _reused_layers_message(refs: list[LayerRef], calls: dict[str, int]) -> str | None:
    """One line naming the layers without a call index whose module ran more than once,
    which call of each is recorded (the last), and how to pick another; None if there are none."""
    reused = [(ref, calls[ref.module_name]) for ref in refs
              if ref.call is None and calls.get(ref.module_name, 0) > 1]
    if not reused:
        return None
    parts = ", ".join(f"{ref.name!r} runs {n} times and records its last call "
                      f"{LayerRef(ref.module_name, ref.element, n - 1).name!r}" for ref, n in reused)
    first = reused[0][0]
    example = LayerRef(first.module_name, first.element, 0).name
    return (f"a module runs more than once per forward pass: {parts}; to capture another call, name it "
            f"with its index from 0, e.g. --layers {example!r} (`neurocarta layers` lists every call)")


def capture_output(tensor: Any, ref: LayerRef, row_mask: torch.Tensor | None = None,
                   pool: str | None = None) -> Captured:
    """Reduce or copy one layer output into new float32 tensors on its own device (see the
    module docstring): conv maps to per-channel mean, max and argmax; a sequence to its
    ``pool`` over ``row_mask``, or to the rows ``row_mask`` keeps when it matches; the rest copied."""
    kind = output_kind(tensor, ref)
    t = tensor.detach()
    if kind == "conv":
        return Captured(kind, **conv_summary(t), shape=tuple(t.shape[1:]))
    if t.ndim == 1:
        t = t[:, None]
    mask = row_mask if (kind == "sequence" and row_mask is not None
                        and tuple(row_mask.shape) == tuple(t.shape[:2])) else None
    if kind == "sequence" and pool is not None:
        return Captured(kind, value=pool_sequence(t, mask, pool), shape=tuple(t.shape[1:]), pooled=True)
    if mask is not None:
        rows = t[mask.to(t.device)]  # boolean indexing copies: later in-place ops cannot reach it
        return Captured(kind, value=rows.float(), shape=tuple(t.shape[1:]), selected=True)
    # copy=True always copies, even when the tensor is already float32
    return Captured(kind, value=t.to(dtype=torch.float32, copy=True), shape=tuple(t.shape[1:]))


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
