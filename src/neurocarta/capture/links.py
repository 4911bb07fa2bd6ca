"""Weight links between consecutive captured layers, for the concept graph's edges.

NeuroCartography weighs the edges between concept groups of adjacent layers by an influence
matrix it read from Summit's precomputed files, which its repository does not ship. We
compute the weight part ourselves: for each pair of consecutive captured layers (in the
order the forward pass produces them) we find the conv or linear module that carries the
earlier layer's output into the later one and keep ``|W|`` as an
``(n_neurons_later, n_neurons_earlier)`` float32 matrix. For a conv, ``|W[b, a]|`` is summed
over the kernel, since one channel reaches the next through every kernel position.

Discovery takes one forward pass with hooks. A conv/linear module links layer A to layer B
when it starts after A has produced its output, starts before B finishes, has as many
outputs as B has neurons, and

1. its input *is* A's output (the same tensor or the same storage: views, in-place ops), or
2. failing that, it is the first such module whose input width equals A's neuron count
   (e.g. ``flatten(avgpool(conv))`` into a ``Linear``, where the storage changed).

Element-wise modules in between (BatchNorm, ReLU, pooling, dropout) do not mix neurons, so
``|W|`` still says which earlier neuron feeds which later one; their per-channel scales are
not folded in. A pair with no such module gets no matrix, and the concept graph falls back
to co-activation for it. Grouped and depthwise convs become block-diagonal matrices.

The module chosen for a pair does not change between training snapshots, so discovery runs
once per extraction (:func:`find_link_modules`) and :func:`link_weights` reads the weights
after each snapshot is loaded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .hooks import LayerHooks
from .layers import LayerRef, output_kind, pick_element, resolve_layers

LINKABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
Pair = tuple[str, str]


@dataclass
class _LayerOut:
    tick: int
    tensor: torch.Tensor
    n_neurons: int


@dataclass
class _Call:
    tick: int
    name: str
    input: Any
    n_in: int
    n_out: int


@dataclass
class _Trace:
    """What one forward pass showed: each captured layer's first output and every
    conv/linear call, stamped with one shared counter so they can be ordered."""

    layers: dict[str, _LayerOut] = field(default_factory=dict)
    calls: list[_Call] = field(default_factory=list)
    clock: Any = field(default_factory=itertools.count)


def layer_links(model: nn.Module, example_input: Any, layer_names: list[str]) -> dict[Pair, np.ndarray]:
    """``|W|`` between each pair of consecutive captured layers that a conv/linear joins.

    Parameters
    ----------
    model : the network (its train/eval mode is restored afterwards).
    example_input : one batch as the model takes it: a tensor, a tuple of tensors, a dict of
        keyword tensors, or a :class:`~neurocarta.models.ModelInputs`.
    layer_names : captured layer names or patterns, as extraction takes them.

    Returns
    -------
    ``{(earlier, later): |W|}`` in forward order, each ``(n_later, n_earlier)`` float32.
    Pairs with no linking module are absent.
    """
    return link_weights(model, find_link_modules(model, example_input, layer_names))


def find_link_modules(model: nn.Module, example_input: Any, layer_names: list[str]) -> dict[Pair, str]:
    """The name of the module linking each consecutive layer pair (see the module docstring)."""
    refs = resolve_layers(model, list(layer_names))
    trace = _trace(model, example_input, refs)
    ordered = sorted(trace.layers, key=lambda name: trace.layers[name].tick)
    found: dict[Pair, str] = {}
    for a, b in zip(ordered, ordered[1:]):
        name = _match(trace, trace.layers[a], trace.layers[b])
        if name is not None:
            found[(a, b)] = name
    return found


def link_weights(model: nn.Module, modules: dict[Pair, str]) -> dict[Pair, np.ndarray]:
    """The current ``|W|`` matrices of already discovered link modules (one per snapshot)."""
    named = dict(model.named_modules())
    return {pair: abs_weight(named[name]) for pair, name in modules.items()}


def abs_weight(module: nn.Module) -> np.ndarray:
    """``|W|`` of a linear or conv module as (out, in) float32, kernels summed.

    A grouped conv's weight is (out, in / groups, *kernel): output channel ``o`` of group
    ``g`` only reads input channels ``g * in_per .. (g + 1) * in_per``, so its row is placed
    there and the rest stays zero.
    """
    w = module.weight.detach().abs().float().cpu()
    if isinstance(module, nn.Linear):
        return w.numpy().astype(np.float32, copy=True)
    per = w.flatten(2).sum(dim=2).numpy().astype(np.float32)  # (out, in / groups)
    groups = int(module.groups)
    if groups == 1:
        return per
    n_out, in_per = per.shape
    out_per = n_out // groups
    full = np.zeros((n_out, in_per * groups), dtype=np.float32)
    rows = np.arange(n_out)
    cols = (rows // out_per)[:, None] * in_per + np.arange(in_per)[None, :]
    full[rows[:, None], cols] = per
    return full


# ----------------------------------------------------------------------------- discovery

def _trace(model: nn.Module, example_input: Any, refs: list[LayerRef]) -> _Trace:
    trace = _Trace()
    handles = []
    named = dict(model.named_modules())
    try:
        for name, module in named.items():
            if isinstance(module, LINKABLE):
                handles.append(module.register_forward_pre_hook(_call_hook(trace, name, module)))
        with LayerHooks(model, refs, _output_recorder(trace)):
            _forward(model, example_input)
    finally:
        for h in handles:
            h.remove()
    return trace


def _call_hook(trace: _Trace, name: str, module: nn.Module):
    if isinstance(module, nn.Linear):
        n_in, n_out = module.in_features, module.out_features
    else:
        n_in, n_out = module.in_channels, module.out_channels

    def hook(mod: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        trace.calls.append(_Call(next(trace.clock), name, x, int(n_in), int(n_out)))
    return hook


def _output_recorder(trace: _Trace):
    def record(ref: LayerRef, output: Any) -> None:
        tick = next(trace.clock)
        if ref.name in trace.layers:  # a module run twice without a call index: its first output counts
            return
        tensor = pick_element(output, ref)
        if not isinstance(tensor, torch.Tensor):
            return
        kind = output_kind(tensor, ref)
        n = tensor.shape[1] if kind == "conv" else (tensor.shape[-1] if tensor.ndim > 1 else 1)
        trace.layers[ref.name] = _LayerOut(tick, tensor, int(n))
    return record


def _forward(model: nn.Module, example_input: Any) -> None:
    """One forward pass in eval mode (a batch of one breaks BatchNorm in train mode)."""
    args = getattr(example_input, "args", example_input)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(args, dict):
                model(**args)
            elif isinstance(args, (tuple, list)):
                model(*args)
            else:
                model(args)
    finally:
        model.train(was_training)


def _match(trace: _Trace, a: _LayerOut, b: _LayerOut) -> str | None:
    between = [c for c in trace.calls if a.tick < c.tick < b.tick and c.n_out == b.n_neurons]
    for call in between:
        if _same_storage(call.input, a.tensor):
            return call.name
    for call in between:
        if call.n_in == a.n_neurons:
            return call.name
    return None


def _same_storage(x: Any, y: torch.Tensor) -> bool:
    if not isinstance(x, torch.Tensor):
        return False
    if x is y:
        return True
    try:
        return x.untyped_storage().data_ptr() == y.untyped_storage().data_ptr() != 0
    except (RuntimeError, NotImplementedError):  # tensors without storage (meta, sparse)
        return False
