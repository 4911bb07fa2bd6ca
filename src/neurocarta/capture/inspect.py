"""``neurocarta layers``: every hookable module with its output, from one sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..data import DataSource, load_data
from ..models import ModelBundle, load_model
from .device import pick_device
from .hooks import LayerHooks
from .layers import LayerRef, describe_output, module_names


@dataclass
class LayerListing:
    name: str  # a module run more than once per forward pass has one row per call: "act#0", "act#1", ...
    type: str
    output: str  # e.g. "tensor (16, 32, 32)" or "tuple of 2: (...)"
    n_params: int


def list_layers(model: Any, data: Any = None, device: str = "cpu", progress: bool = False) -> list[LayerListing]:
    """Run one input through ``model`` and describe every module's output (batch axis dropped).

    A module that runs several times in the forward pass gets one row per call, named as
    extraction takes it (``act#0``, ``act#1``, ...): each call can have its own shape."""
    source: DataSource | None = load_data(data) if data is not None else None
    if model == "demo-cnn":
        # Listing needs the architecture only: skip training the demo model.
        from ..models.demo_cnn import untrained_bundle

        bundle: ModelBundle = untrained_bundle(source or load_data("shapes:n=16"))
    else:
        bundle = load_model(model, data=source, progress=progress)
    if source is None:
        source = _default_data(bundle)
    dev = pick_device(device)
    module = bundle.module.to(dev).eval()
    mods = dict(module.named_modules())
    scripted = "TorchScript: cannot be hooked (save with torch.save and pass --trust)"
    outputs: dict[str, list[str]] = {n: [scripted] for n in module_names(module)
                                     if isinstance(mods[n], torch.jit.ScriptModule)}
    refs = [LayerRef(n) for n in module_names(module) if n not in outputs]

    def record(ref: LayerRef, out: Any) -> None:
        outputs.setdefault(ref.module_name, []).append(describe_output(_strip_batch(out)))

    with torch.no_grad(), LayerHooks(module, refs, record):
        bundle.forward(bundle.preprocess(source.get([0])).to(dev))
    rows = []
    for n in module_names(module):
        calls = outputs.get(n, ["not run"])
        names = [n] if len(calls) == 1 else [LayerRef(n, call=i).name for i in range(len(calls))]
        n_params = sum(p.numel() for p in mods[n].parameters(recurse=False))
        rows += [LayerListing(name, type(mods[n]).__name__, out, n_params) for name, out in zip(names, calls)]
    return rows


def _strip_batch(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out[0] if out.ndim > 0 else out
    if isinstance(out, (tuple, list)):
        return type(out)(_strip_batch(o) for o in out) if isinstance(out, tuple) else [_strip_batch(o) for o in out]
    if isinstance(out, dict) or hasattr(out, "keys"):
        return {k: _strip_batch(v) for k, v in out.items()}
    return out


def _default_data(bundle: ModelBundle) -> DataSource:
    from ..data.files import TextListSource

    if bundle.modality == "text":
        return TextListSource(["The quick brown fox jumps over the lazy dog."])
    return load_data("shapes:n=16")
