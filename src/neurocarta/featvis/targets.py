"""The targets of an atlas's layer, each a direction over the layer's neurons (objectives.py),
and the dataset inputs that excite each one most (its exemplars).

Neurons come from the layer, concept groups from the stored concept result of the
snapshot, Mapper nodes from the layer's stored Mapper graph (the direction is the mean of its
members' stored activation rows, the spatial mean for conv layers, as the graph was built
from), classes from the model's output.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import UserError
from ..methods.concepts.result import ConceptResult
from ..methods.mapper.result import MapperResult
from ..store import schema
from ..store.atlas import Atlas
from ..store.featvis import OUTPUT
from .objectives import Target


def _usable(atlas: Atlas, layer: str):
    info = atlas.manifest.layer(layer)
    if info.kind not in ("conv", "dense") or info.rows != "input":
        raise UserError(f"layer {layer!r} is a {info.kind} layer with one row per {info.rows}; feature "
                        "visualization takes conv and dense layers of image models")
    return info


def neuron_targets(atlas: Atlas, layer: str, neurons: Sequence[int] | None = None,
                   centre: bool = False) -> list[Target]:
    """One target per neuron (default: every neuron of the layer). ``centre``: a conv
    channel's centre position instead of its spatial mean."""
    info = _usable(atlas, layer)
    chosen = range(info.n_neurons) if neurons is None else [int(n) for n in neurons]
    bad = [n for n in chosen if not 0 <= n < info.n_neurons]
    if bad:
        raise UserError(f"--neurons {bad[0]} is not a neuron of {layer!r}, which has 0..{info.n_neurons - 1}")
    centre = centre and info.kind == "conv"
    what = "channel centre" if centre else ("channel mean" if info.kind == "conv" else "unit")
    return [Target("neuron", str(n), layer, _one_hot(info.n_neurons, [n]), what, centre=centre) for n in chosen]


def concept_targets(atlas: Atlas, layer: str, snapshot: str) -> list[Target]:
    """One target per concept group of ``layer``: the sum over its members."""
    info = _usable(atlas, layer)
    if snapshot not in atlas.maps("concepts"):
        raise UserError(f"the atlas has no concept groups for snapshot {snapshot!r}; run `neurocarta concepts` "
                        "(or `neurocarta map`) first")
    result = ConceptResult.load(atlas, snapshot)
    units = result.neurons["unit"].to_numpy(dtype=np.int64)
    out = []
    for row in result.clusters[result.clusters["layer"] == layer].itertuples():
        members = units[np.asarray(row.members, dtype=np.int64)]
        out.append(Target("concept", str(int(row.cluster)), layer, _one_hot(info.n_neurons, members),
                          f"sum of {len(members)} neurons"))
    return out


def mapper_targets(atlas: Atlas, layer: str, cosine_power: float = 1.0) -> list[Target]:
    """One target per node of ``layer``'s Mapper graph: the dot product with the node's mean
    activation vector (TopoAct), times ``cos ** cosine_power`` (Activation Atlas; 0: none)."""
    info = _usable(atlas, layer)
    if layer not in atlas.maps("mapper"):
        raise UserError(f"the atlas has no Mapper graph of {layer!r}; run `neurocarta mapper` (or `neurocarta map`) "
                        "first")
    result = MapperResult.load(atlas, layer)
    rows = atlas.activations(layer, result.snapshot, stat="mean")[:]
    power = f" x cos^{cosine_power:g}" if cosine_power > 0 else ""
    out = []
    for node, members in enumerate(result.graph.nodes):
        if len(members):
            direction = rows[np.asarray(members, dtype=np.int64)].mean(axis=0)
            out.append(Target("mapper_node", str(node), layer, direction.astype(np.float32),
                              f"dot with node mean{power}", cosine_power=cosine_power))
    if not out:
        raise UserError(f"the Mapper graph of {info.name!r} has no nodes")
    return out


def class_targets(atlas: Atlas, classes: Sequence[int] | None = None) -> list[Target]:
    """One target per class logit of the model's output (default: every class)."""
    names = atlas.class_names
    if not names:
        raise UserError("class targets need a classifier with class names; the atlas has none")
    chosen = range(len(names)) if classes is None else [int(c) for c in classes]
    bad = [c for c in chosen if not 0 <= c < len(names)]
    if bad:
        raise UserError(f"class {bad[0]} is not one of the model's classes 0..{len(names) - 1}")
    return [Target("class", str(c), OUTPUT, _one_hot(len(names), [c]), f"logit of {names[c]}") for c in chosen]


def exemplar_candidates(atlas: Atlas, target: Target, snapshot: str, k: int = 8) -> np.ndarray:
    """Input ids of the ``k`` dataset inputs that the stored activations say excite
    ``target`` most, best first (their exact objective is measured with the model); empty
    when the atlas cannot say (a summary-mode atlas for anything but a neuron)."""
    if target.kind == "class":
        out = atlas.outputs(snapshot)
        if out is None or schema.PRED not in out.columns:
            return np.zeros(0, np.int64)
        mine = out[out[schema.PRED] == int(target.target)]
        col = "confidence" if "confidence" in mine.columns else schema.PRED
        return mine.sort_values(col, ascending=False)[schema.INPUT_ID].to_numpy(np.int64)[:k]
    if atlas.mode == "summary":
        if target.kind != "neuron":
            return np.zeros(0, np.int64)
        return np.asarray(atlas.topk(target.layer, snapshot).input_ids[int(target.target)][:k], dtype=np.int64)
    rows = atlas.activations(target.layer, snapshot, stat="max" if target.centre else "mean")[:]
    score = rows @ target.weights
    if target.cosine_power > 0:
        cos = score / (np.linalg.norm(rows, axis=1) * np.linalg.norm(target.weights) + 1e-8)
        score = score * np.clip(cos, 1e-4, None) ** target.cosine_power
    return np.argsort(-score, kind="stable")[:k].astype(np.int64)


def _one_hot(n: int, units) -> np.ndarray:
    w = np.zeros(n, np.float32)
    w[np.asarray(list(units), dtype=np.int64)] = 1.0
    return w
