"""Rules that read the maps: class separation, training, concept groups."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from ..methods.defaults import CONCEPTS_K
from .common import label_topomaps, make_finding, mapper_results, pct

if TYPE_CHECKING:
    from ..store import Atlas

#: concept: a cluster must reach this coherence above random groups of its size ...
CONCEPT_MIN_GAIN = 0.2
#: ... and this ratio to them, with at least this many neurons
CONCEPT_MIN_LIFT = 1.5
CONCEPT_MIN_SIZE = 3
#: concept: at most this many concept findings per layer (the strongest)
CONCEPT_PER_LAYER = 3
#: training: the smallest rise of class separation between the first and last snapshot
TRAINING_MIN_RISE = 0.1


# ============================================================================ separation
def separation_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Where each class becomes its own region: Mapper's :func:`separation_layers` (a
    component or flare at least 90% one class holding half of it); without Mapper results,
    the layer with the highest topomap class separation.

    A graph's node pies count the column it was coloured by (``colour_by``; the class by
    default), so graphs are compared only with graphs coloured the same way, and a graph of
    token rows coloured by a word category says "Category noun separates ...: its tokens
    form their own group", never "Class noun".
    """
    from ..methods.mapper.analysis import _class_regions, separation_layers

    results = [r for r in mapper_results(atlas) if "classes" in r.nodes and len(r.nodes)]
    out = []
    by_colour: dict[str, list] = {}
    for r in results:
        by_colour.setdefault(r.params.get("colour_by") or "label_name", []).append(r)
    for colour, same in by_colour.items():
        is_class = colour in ("label", "label_name")
        order = [r.layer for r in same]
        by_layer = {r.layer: r for r in same}
        for value, layer in separation_layers(same).items():
            if layer is None:
                continue
            r = by_layer[layer]
            nodes = _class_region(r, value, _class_regions)
            depth = order.index(layer) / max(1, len(order) - 1)
            where = "already at the first mapped layer" if depth == 0 else "from there on"
            rows = "tokens" if atlas.manifest.layer(layer).rows == "token" else "inputs"
            what = f"Class {value}" if is_class else f"{colour.replace('_', ' ').capitalize()} {value}"
            text = (f"{what} separates from the others at layer {layer}: its {rows} form their own "
                    f"group in the Mapper graph ({where}).")
            selection = ({"layer": layer, "class": value, "nodes": nodes} if is_class
                         else {"layer": layer, "group_by": colour, "group": value, "nodes": nodes})
            evidence = {"class" if is_class else colour: value, "layer": layer, "layer_index": order.index(layer),
                        "n_layers": len(order)}
            out.append(make_finding("separation", text, "mapper", selection, 1.0 - depth, evidence))
    if results:
        return out
    tm = label_topomaps(atlas)
    if tm:
        snap = atlas.snapshot_name(snapshot)
        sep = {layer: r.separation.get(snap) for layer, r in tm.items() if r.separation.get(snap) is not None}
        if sep:
            layer = max(sep, key=sep.get)
            text = (f"The classes are most clearly apart at layer {layer}: {pct(sep[layer])} of its neurons' "
                    f"variation lies between classes.")
            out.append(make_finding("separation", text, "topomap", {"layer": layer, "group_by": tm[layer].group_by},
                                sep[layer], {"layer": layer, "separation": sep}))
    return out


def _class_region(result, cls: str, regions_of) -> list[int]:
    """The nodes of the region (component or flare) that holds ``cls`` in ``result``."""
    classes = result.nodes["classes"]
    total = sum(h.get(cls, 0) for h in classes)
    best, best_nodes = -1.0, []
    for region in regions_of(result):
        hist: dict = {}
        for h in classes.iloc[region]:
            for k, v in h.items():
                hist[k] = hist.get(k, 0) + v
        size = sum(hist.values())
        if size and hist.get(cls, 0) / size >= 0.9 and total and hist.get(cls, 0) / total > best:
            best, best_nodes = hist.get(cls, 0) / total, sorted(int(n) for n in region)
    return best_nodes


# ============================================================================ training
def training_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Layers whose class separation (the topomap's share of neuron variance between classes)
    rose by ``TRAINING_MIN_RISE`` or more from the first to the last snapshot."""
    out = []
    for layer, r in label_topomaps(atlas).items():
        snaps = [s for s in r.snapshots if s in r.separation]
        if len(snaps) < 2:
            continue
        first, last = r.separation[snaps[0]], r.separation[snaps[-1]]
        if last - first < TRAINING_MIN_RISE:
            continue
        text = (f"Class separation in {layer} rose from {first:.2f} to {last:.2f} during training "
                f"({snaps[0]} to {snaps[-1]}): the layer learned to tell the classes apart.")
        out.append(make_finding("training", text, "topomap",
                            {"layer": layer, "group_by": r.group_by, "snapshots": snaps},
                            last - first, {"layer": layer, "separation": {s: r.separation[s] for s in snaps}}))
    return out


# ============================================================================ concepts
# a concept group's attribute name, "colour=red (0.91 vs 0.40 random)" (methods/concepts/labels.py)
_DESCRIBE = re.compile(r"^(?P<attr>.+?)=(?P<value>.*) \((?P<share>[0-9.]+) vs [0-9.]+ random\)$")


def concept_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Concept clusters clearly more coherent than random groups of the same size.

    A cluster's attribute is the one its description names (the value its pooled
    exemplars share most beyond the data's base rate). Its coherence on that attribute is
    set against ``draws`` random groups of the same size from the layer's live neurons
    (recomputed here from the stored top-k: a few milliseconds). Kept: at least
    ``CONCEPT_MIN_SIZE`` neurons, coherence - random >= ``CONCEPT_MIN_GAIN`` and
    coherence / random >= ``CONCEPT_MIN_LIFT``; the strongest ``CONCEPT_PER_LAYER`` per layer.
    """
    from ..methods.concepts import load_concepts
    from ..methods.concepts.coherence import group_coherence, random_coherence
    from ..methods.concepts.estimator import as_sets
    from ..methods.concepts.result import layer_sets

    stored = atlas.maps("concepts")
    if not stored:
        return []
    snap = atlas.snapshot_name(snapshot)
    c = load_concepts(atlas, snap if snap in stored else stored[-1])
    if "describe" not in c.clusters or not len(c.clusters):
        return []
    k = int(c.params.get("k") or CONCEPTS_K)
    out = []
    for layer in c.layers:
        cl = c.clusters[(c.clusters["layer"] == layer) & (c.clusters["size"] >= CONCEPT_MIN_SIZE)]
        if not len(cl):
            continue
        try:
            top = atlas.topk(layer, c.snapshot)
            sets, silent, _ = layer_sets(top, min(k, top.k))
        except Exception:  # no top-k for this layer any more: skip it, findings never fail
            continue
        table = atlas.row_table(layer, c.snapshot)
        indptr, indices = as_sets(sets)
        in_layer = np.flatnonzero(c.neurons["layer"].to_numpy() == layer)
        offset = in_layer[0]
        live = np.flatnonzero(~silent)
        found = []
        for r in cl.itertuples(index=False):
            m = _DESCRIBE.match(str(r.describe))
            if not m:
                continue
            attr = "label_name" if m["attr"] == "class" else m["attr"]
            if attr == "label_name" and attr not in table:
                attr = "label"
            if attr not in table:
                continue
            members = np.asarray(r.members, dtype=np.int64) - offset
            values = table[attr]
            coh = float(group_coherence([members], indptr, indices, values)[0])
            rnd = float(random_coherence([len(members)], indptr, indices, values, draws=50, seed=0,
                                         candidates=live)[0])
            if not (np.isfinite(coh) and np.isfinite(rnd)):
                continue
            if coh - rnd >= CONCEPT_MIN_GAIN and coh >= CONCEPT_MIN_LIFT * rnd:
                found.append((coh - rnd, r, m, coh, rnd, members))
        for gain, r, m, coh, rnd, members in sorted(found, key=lambda f: -f[0])[:CONCEPT_PER_LAYER]:
            what = f"class {m['value']}" if m["attr"] in ("class", "label") else f"{m['attr']} {m['value']}"
            text = (f"Cluster {int(r.cluster)} ({int(r.size)} neurons in {layer}) responds to {what}: "
                    f"coherence {coh:.2f} (random groups: {rnd:.2f}).")
            units = c.neurons["unit"].to_numpy()[members + offset]
            out.append(make_finding("concept", text, "projection",
                                {"layer": layer, "cluster": int(r.cluster), "neurons": np.sort(units)},
                                gain, {"layer": layer, "cluster": int(r.cluster), "size": int(r.size),
                                       "attribute": m["attr"], "value": m["value"], "coherence": coh,
                                       "random_coherence": rnd, "snapshot": c.snapshot}))
    return out
