"""``nc.attribute`` / ``neurocarta attribute``: attributions of stored inputs, saved in the atlas.

Everything the user typed (input ids, method, target) is checked against the atlas before the
model loads, and the results are written once, after all of them are computed: a bad
request or a failure midway leaves the atlas as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from ..capture.reload import ReloadedModel, reload_model
from ..errors import UserError
from ..store import Atlas, open_atlas
from ..store import attributions as stored
from ..store.attributions import AttributionItem
from .compute import attribute_images, attribute_texts
from .targets import Target, parse_method, parse_target

#: inputs per forward-backward pass (integrated gradients runs ``steps`` points of each)
BATCH = 16


def attribute(atlas: "Atlas | str | Path", inputs: "Iterable[int | str] | str", method: str = "saliency",
              target: str = "predicted", snapshot: str | None = None, model: Any = None, steps: int = 32,
              save: bool = True, device: str = "auto", trust: bool = False,
              progress: bool = True) -> list[AttributionItem]:
    """Attribute the target's value at each of ``inputs`` (atlas input ids) to the input's
    pixels (a per-pixel map) or tokens (signed per-token values), and store them in the atlas.

    ``method``: ``"saliency"`` (the fast default) or ``"ig"`` (integrated gradients, ``steps``
    path points). ``target``: ``"predicted"``, ``"class:N"``, ``"neuron:LAYER:N"`` or
    ``"concept:LAYER:GROUP"``. ``snapshot``: whose weights (default: the last). ``model``: the
    model again, when it was given to ``extract`` as a Python object.

    Returns the items, each with its ``values`` and, once saved, its ``index`` in the atlas.
    """
    atlas = atlas if isinstance(atlas, Atlas) else open_atlas(atlas)
    ids = parse_inputs(inputs, atlas.n_inputs)
    name = parse_method(method)
    if not (isinstance(steps, int) and steps >= 2):
        raise UserError(f"steps must be a whole number of at least 2, not {steps!r}")
    snap = atlas.snapshot_name(snapshot)
    goal = parse_target(target, atlas, snap)
    if atlas.manifest.data.get("modality") not in ("image", "text"):
        raise UserError("attributions are drawn on images and texts; this atlas's data is "
                        f"{atlas.manifest.data.get('modality')}")
    if not goal.on_layer:
        outputs = atlas.outputs(snap)
        if outputs is None or "pred" not in outputs.columns:
            raise UserError("the atlas's model has no class outputs to explain; attribute a neuron "
                            "(--target neuron:LAYER:N) or a concept group (--target concept:LAYER:GROUP)")
    loaded = reload_model(atlas, snap, model=model, trust=trust, device=device, progress=progress)
    items = compute(loaded, ids, goal, name, steps, _pooling(atlas, goal), progress)
    if save:
        stored.save(atlas, snap, items)
    return items


def compute(model: ReloadedModel, ids: list[int], target: Target, method: str, steps: int,
            pooling: str | None = None, progress: bool = True) -> list[AttributionItem]:
    """The attributions of inputs ``ids`` of ``model.source``, in batches, with a progress bar."""
    run = attribute_images if model.source.modality == "image" else attribute_texts
    out: list[AttributionItem] = []
    with tqdm(total=len(ids), desc=f"attribute ({method.replace('_', ' ')})", unit="input",
              disable=not progress) as bar:
        for start in range(0, len(ids), BATCH):
            batch = ids[start:start + BATCH]
            out.extend(run(model, model.source.get(np.asarray(batch)), batch, target, method, steps, pooling))
            bar.update(len(batch))
    return out


def parse_inputs(inputs: "Iterable[int | str] | str", n_inputs: int) -> list[int]:
    """Input ids from ``"3,17,40"`` or a list, each checked against the atlas (0 to n-1)."""
    parts = [p.strip() for p in inputs.split(",")] if isinstance(inputs, str) else list(inputs)
    ids: list[int] = []
    for p in parts:
        if p == "":
            continue
        try:
            value = int(p)
        except (TypeError, ValueError):
            raise UserError(f"input id {p!r} is not a whole number; pass ids like --inputs 3,17,40") from None
        if not 0 <= value < n_inputs:
            raise UserError(f"the atlas has no input {value}; its input ids run from 0 to {n_inputs - 1}")
        if value not in ids:
            ids.append(value)
    if not ids:
        raise UserError("no input ids given; pass ids like --inputs 3,17,40")
    return ids


def _pooling(atlas: Atlas, target: Target) -> str | None:
    """How extraction pooled a sequence layer (a layer target is attributed as it was stored)."""
    return atlas.manifest.layer(target.layer).pooling if target.layer else None
