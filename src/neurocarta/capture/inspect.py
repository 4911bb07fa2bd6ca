"""``neurocarta layers``: every hookable module with its output, from one sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..data import DataSource, load_data
from ..models import ModelBundle, load_model
from .device import pick_device
from .layers import describe_output, module_names


@dataclass
class LayerListing:
    name: str
    type: str
    output: str  # e.g. "tensor (16, 32, 32)" or "tuple of 2: (...)"
    n_params: int


def list_layers(model: Any, data: Any = None, device: str = "cpu", progress: bool = False) -> list[LayerListing]:
    """Run one input through ``model`` and describe every module's output (batch axis dropped)."""
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
    outputs: dict[str, Any] = {}
    handles = []
    mods = dict(module.named_modules())
    for name in module_names(module):
        if isinstance(mods[name], torch.jit.ScriptModule):
            outputs[name] = "TorchScript: cannot be hooked (save with torch.save and pass --trust)"
            continue

        def hook(_m, _a, out, name=name):
            outputs.setdefault(name, describe_output(_strip_batch(out)))
        handles.append(mods[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            bundle.forward(bundle.preprocess(source.get([0])).to(dev))
    finally:
        for h in handles:
            h.remove()
    return [LayerListing(n, type(mods[n]).__name__, outputs.get(n, "not run"),
                         sum(p.numel() for p in mods[n].parameters(recurse=False)))
            for n in module_names(module)]


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
