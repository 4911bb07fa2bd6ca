"""Rules that read the maps: class separation, training, concept groups.

Each describes what a stored map shows, so each is merged per layer: one finding says which
classes separate at a layer (a 21-class folder gave 21 near-identical lines before), and one
which neuron clusters of a layer respond to one attribute value. Every sentence carries the
numbers it rests on; ``check`` says where the viewer shows them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from ..methods.defaults import CONCEPTS_K
from .common import NAMED_IN_TEXT, label_topomaps, make_finding, mapper_results, name_list, pct

if TYPE_CHECKING:
    from ..store import Atlas

#: concept: a cluster must reach this coherence above random groups of its size ...
CONCEPT_MIN_GAIN = 0.2
#: ... and this ratio to them, with at least this many neurons
CONCEPT_MIN_LIFT = 1.5
CONCEPT_MIN_SIZE = 3
#: concept: random groups per cluster size for the baseline and the permutation p-value (the
#: concept labels' own minimum, methods/concepts/labels.py: the smallest p is 1/200)
CONCEPT_DRAWS = 199
#: training: the smallest rise of class separation between the first and last snapshot
TRAINING_MIN_RISE = 0.1
#: separation: Mapper's region rule (methods/mapper/analysis.py separation_layers defaults)
SEPARATION_PURITY = 0.9
SEPARATION_MIN_SHARE = 0.5


# ============================================================================ separation
def separation_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Where classes become their own region: one finding per layer, naming every class that
    first separates there (Mapper's :func:`separation_layers`: a component or flare at least
    90% one class holding at least half of it). Without Mapper results, the layer with the
    highest topomap class separation.

    A graph's node pies count the column it was coloured by (``colour_by``; the class by
    default), so graphs are compared only with graphs coloured the same way, and a graph of
    token rows coloured by a word category speaks of categories of tokens, never of classes.
    """
    from ..methods.mapper.analysis import separation_layers

    results = [r for r in mapper_results(atlas) if "classes" in r.nodes and len(r.nodes)]
    out = []
    by_colour: dict[str, list] = {}
    for r in results:
        by_colour.setdefault(r.params.get("colour_by") or "label_name", []).append(r)
    for colour, same in by_colour.items():
        by_layer = {r.layer: r for r in same}
        first: dict[str, list[str]] = {}  # layer -> the values that first separate there
        for value, layer in separation_layers(same, SEPARATION_PURITY, SEPARATION_MIN_SHARE).items():
            if layer is not None:
                first.setdefault(layer, []).append(value)
        n_values = len({c for r in same for h in r.nodes["classes"] for c in h})
        for layer, values in first.items():
            regions = {v: _class_region(by_layer[layer], v) for v in values}
            out.append(_separation_finding(atlas, colour, layer, [r.layer for r in same], regions, n_values))
    if results:
        return out
    return _topomap_separation(atlas, snapshot)


def _separation_finding(atlas: Atlas, colour: str, layer: str, order: list[str], regions: dict,
                        n_values: int) -> dict:
    """One layer's separation finding; ``regions``: value -> (nodes, purity, share)."""
    is_class = colour in ("label", "label_name")
    # the best separated first: the largest share of the value's members in its region
    values = sorted(regions, key=lambda v: (-regions[v][2], -regions[v][1], str(v)))
    nodes = sorted({n for v in values for n in regions[v][0]})
    purity = min(regions[v][1] for v in values)
    share = min(regions[v][2] for v in values)
    rows = "tokens" if atlas.manifest.layer(layer).rows == "token" else "inputs"
    column = colour.replace("_", " ")
    i = order.index(layer)
    if len(order) == 1:
        where = ""
    elif i == 0:
        where = f", already at the first of the {len(order)} mapped layers"
    else:
        where = (f", at mapped layer {i + 1} of {len(order)}: no earlier mapped layer separates "
                 f"{'it' if len(values) == 1 else 'them'}")
    if len(values) == 1:
        v = values[0]
        what = f"Class {v}" if is_class else f"{column.capitalize()} {v}"
        pure = "entirely" if purity == 1.0 else pct(purity)
        text = (f"{what} separates from the others at layer {layer}: its {rows} form their own group in the "
                f"Mapper graph, a region that holds {'all' if share == 1.0 else pct(share)} of them and is {pure} "
                f"{v}{where}.")
    else:
        what = "classes" if is_class else f"values of {column}"
        pure = "entirely" if purity == 1.0 else f"at least {pct(purity)}"
        held = "all" if share == 1.0 else f"at least {pct(share)}"
        text = (f"{len(values)} {what} separate from the others at layer {layer} ({name_list(values)}): each "
                f"one's {rows} form their own group in the Mapper graph, a region holding {held} of them and "
                f"{pure} {'that class' if is_class else 'that value'}{where}.")
    selection = {"layer": layer, "nodes": nodes, "classes" if is_class else "groups": values}
    if not is_class:
        selection["group_by"] = colour
    if len(values) == 1:  # one value: the viewer selects it (its class, or its group on the map)
        selection["class" if is_class else "group"] = values[0]
    evidence = {"classes" if is_class else "values": values, "layer": layer, "layer_index": i,
                "n_layers": len(order), "colour_by": colour, "n_values": n_values,
                "regions": {str(v): {"purity": regions[v][1], "share": regions[v][2], "nodes": regions[v][0]}
                            for v in values}}
    if len(values) == 1:
        evidence["class" if is_class else colour] = values[0]
    things = ("each class's" if len(values) > 1 else "the class's") if is_class else \
        ("each value's" if len(values) > 1 else "the value's")
    check = (f"Open the Mapper view of {layer} with pies coloured by {'class' if is_class else column}: "
             f"{things} region is a group of nodes in its own colour.")
    # strength: the share of all values that separate at this layer
    return make_finding("separation", text, "mapper", selection, len(values) / max(1, n_values), evidence,
                        confidence={}, check=check)


def _class_region(result, cls: str) -> tuple[list[int], float, float]:
    """The region (component or flare) of ``result`` that holds the most of ``cls`` among
    those at least ``SEPARATION_PURITY`` ``cls``: its nodes, its purity in ``cls`` and the
    share of the graph's ``cls`` members it holds. ([], 0, 0) when none is that pure."""
    from ..methods.mapper.analysis import _class_regions

    classes = result.nodes["classes"]
    total = sum(h.get(cls, 0) for h in classes)
    best: tuple[list[int], float, float] = ([], 0.0, 0.0)
    for region in _class_regions(result):
        hist: dict = {}
        for h in classes.iloc[region]:
            for k, v in h.items():
                hist[k] = hist.get(k, 0) + v
        size = sum(hist.values())
        if not size or not total:
            continue
        purity, share = hist.get(cls, 0) / size, hist.get(cls, 0) / total
        if purity >= SEPARATION_PURITY and share > best[2]:
            best = (sorted(int(n) for n in region), float(purity), float(share))
    return best


def _topomap_separation(atlas: Atlas, snapshot: str | None) -> list[dict]:
    """Without Mapper graphs: the layer whose class topomap has the highest class separation
    (the share of its neurons' variation that lies between classes)."""
    tm = label_topomaps(atlas)
    snap = atlas.snapshot_name(snapshot)
    sep = {layer: r.separation.get(snap) for layer, r in tm.items() if r.separation.get(snap) is not None}
    if not sep:
        return []
    layer = max(sep, key=sep.get)
    among = f"of the {len(sep)} layers with a class topomap" if len(sep) > 1 else "the one layer with a class topomap"
    text = (f"The classes are most apart at layer {layer}, {among}: {pct(sep[layer])} of its neurons' "
            f"variation lies between classes.")
    check = (f"Open the topomap of {layer} grouped by {tm[layer].group_by} and pick one class after another: "
             f"the map of mean activations changes with the class.")
    return [make_finding("separation", text, "topomap", {"layer": layer, "group_by": tm[layer].group_by},
                         sep[layer], {"layer": layer, "separation": sep, "snapshot": snap},
                         confidence={}, check=check)]


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
        text = (f"Class separation in {layer} rose from {first:.2f} to {last:.2f} between snapshots {snaps[0]} and "
                f"{snaps[-1]}: the share of its neurons' variation that lies between classes.")
        check = (f"Open the topomap of {layer} grouped by {r.group_by} and step from snapshot {snaps[0]} to "
                 f"{snaps[-1]} (the arrow keys): the class maps differ more at the end.")
        out.append(make_finding("training", text, "topomap",
                                {"layer": layer, "group_by": r.group_by, "snapshots": snaps},
                                last - first, {"layer": layer, "separation": {s: r.separation[s] for s in snaps}},
                                confidence={}, check=check))
    return out


# ============================================================================ concepts
# a concept group's attribute name, "colour=red (0.91 vs 0.40 random)" (methods/concepts/labels.py)
_DESCRIBE = re.compile(r"^(?P<attr>.+?)=(?P<value>.*) \((?P<share>[0-9.]+) vs [0-9.]+ random\)$")


def concept_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Concept clusters clearly more coherent than random groups of the same size, one
    finding per layer naming each such cluster.

    A cluster is considered only when its label names an attribute value: the concept labels
    (methods/concepts/labels.py) name one only when the cluster beats same-size random groups
    on it, so a finding never names what the viewer's label does not. Its coherence on that
    attribute (the share of its neurons' pooled top-k rows holding the value) is set against
    ``CONCEPT_DRAWS`` random groups of the same size from the layer's live neurons, recomputed
    here from the stored top-k (milliseconds): their mean, and the permutation p-value (the
    share of random groups at least as coherent, counting the cluster itself). Kept: at least
    ``CONCEPT_MIN_SIZE`` neurons, coherence - random >= ``CONCEPT_MIN_GAIN`` and coherence /
    random >= ``CONCEPT_MIN_LIFT``.
    """
    from ..methods.concepts import load_concepts

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
        found = _coherent_clusters(atlas, c, layer, k)
        if found:
            out.append(_concept_finding(atlas, c, layer, found))
    return out


def _coherent_clusters(atlas: Atlas, c, layer: str, k: int) -> list[dict]:
    """The clusters of ``layer`` that pass the concept rule, the strongest first."""
    from ..methods.concepts.coherence import group_coherence, random_coherence_draws
    from ..methods.concepts.estimator import as_sets
    from ..methods.concepts.result import layer_sets

    cl = c.clusters[(c.clusters["layer"] == layer) & (c.clusters["size"] >= CONCEPT_MIN_SIZE)]
    named = [(r, m) for r in cl.itertuples(index=False) if (m := _DESCRIBE.match(str(r.describe)))]
    if not named:
        return []
    try:
        top = atlas.topk(layer, c.snapshot)
        sets, silent, _ = layer_sets(top, min(k, top.k))
    except Exception:  # no top-k for this layer any more: skip it, findings never fail
        return []
    table = atlas.row_table(layer, c.snapshot)
    indptr, indices = as_sets(sets)
    offset = np.flatnonzero(c.neurons["layer"].to_numpy() == layer)[0]
    live = np.flatnonzero(~silent)
    found = []
    for r, m in named:
        attr = "label_name" if m["attr"] == "class" else m["attr"]
        if attr == "label_name" and attr not in table:
            attr = "label"
        if attr not in table:
            continue
        members = np.asarray(r.members, dtype=np.int64) - offset
        values = table[attr]
        coh = float(group_coherence([members], indptr, indices, values)[0])
        null = random_coherence_draws([min(len(members), len(live))], indptr, indices, values,
                                      draws=CONCEPT_DRAWS, seed=0, candidates=live)[:, 0]
        null = null[np.isfinite(null)]
        if not (np.isfinite(coh) and len(null)):
            continue
        rnd = float(null.mean())
        if coh - rnd >= CONCEPT_MIN_GAIN and coh >= CONCEPT_MIN_LIFT * rnd:
            p = (1 + int((null >= coh).sum())) / (1 + len(null))
            units = np.sort(c.neurons["unit"].to_numpy()[members + offset])
            found.append({"cluster": int(r.cluster), "size": int(r.size), "attribute": m["attr"],
                          "value": m["value"], "coherence": coh, "random_coherence": rnd, "p": p,
                          "draws": int(len(null)), "neurons": units, "describe": str(r.describe)})
    return sorted(found, key=lambda f: (-(f["coherence"] - f["random_coherence"]), f["cluster"]))


def _concept_finding(atlas: Atlas, c, layer: str, found: list[dict]) -> dict:
    """One layer's concept finding from its passing clusters (``found``, strongest first)."""
    def what(f: dict) -> str:
        return f"class {f['value']}" if f["attribute"] in ("class", "label") else f"{f['attribute']} {f['value']}"

    rows = "tokens" if atlas.manifest.layer(layer).rows == "token" else "inputs"
    best = found[0]
    if len(found) == 1:
        text = (f"Cluster {best['cluster']} ({best['size']} neurons in {layer}) responds to {what(best)}: "
                f"{pct(best['coherence'])} of its neurons' top {rows} have that value (coherence "
                f"{best['coherence']:.2f}; random groups of its size: {best['random_coherence']:.2f}).")
    else:
        # clusters that respond to the same value are one clause, in the order of their strongest
        same: dict[str, list[dict]] = {}
        for f in found:
            same.setdefault(what(f), []).append(f)
        items = [_value_clause(value, group) for value, group in same.items()]
        values = "one value" if len(same) == 1 else f"{len(same)} values"
        text = f"{len(found)} neuron clusters in {layer} respond to {values}: {_clauses(items)}."
    selection = {"layer": layer, "cluster": best["cluster"], "clusters": [f["cluster"] for f in found],
                 "neurons": np.sort(np.concatenate([f["neurons"] for f in found]))}
    evidence = {"layer": layer, "snapshot": c.snapshot, "clusters": [{x: f[x] for x in f if x != "neurons"}
                                                                     for f in found]}
    if len(found) == 1:  # one cluster: its numbers at the top level, as before the merge
        evidence.update({x: best[x] for x in ("cluster", "size", "attribute", "value", "coherence",
                                              "random_coherence")})
    confidence = {"test": f"permutation: coherence against {best['draws']} random groups of the same size "
                          f"from the layer's live neurons" + ("" if len(found) == 1 else "; p: the largest over "
                                                                                         "the clusters"),
                  "p": max(f["p"] for f in found), "draws": best["draws"]}
    check = (f"Open the projection of {layer} and select cluster {best['cluster']}: the inspector names it "
             f"{best['describe']} and lists its neurons.")
    gain = best["coherence"] - best["random_coherence"]
    return make_finding("concept", text, "projection", selection, gain, evidence, confidence=confidence,
                        check=check)


def _value_clause(value: str, group: list[dict]) -> str:
    """"cluster 3 (26 neurons) to class ring (coherence 0.92, random groups of its size 0.39)";
    several clusters of one value: "clusters 6 and 7 (6 neurons) to ... (coherence 0.87 to 0.97,
    random groups of their sizes 0.44)"."""
    if len(group) == 1:
        f = group[0]
        return (f"cluster {f['cluster']} ({f['size']} neurons) to {value} (coherence {f['coherence']:.2f}, "
                f"random groups of its size {f['random_coherence']:.2f})")

    def span(key: str) -> str:
        lo, hi = min(f[key] for f in group), max(f[key] for f in group)
        return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f} to {hi:.2f}"

    return (f"clusters {name_list([str(f['cluster']) for f in group], most=len(group))} "
            f"({sum(f['size'] for f in group)} neurons) to {value} (coherence {span('coherence')}, random groups "
            f"of their sizes {span('random_coherence')})")


def _clauses(items: list[str]) -> str:
    """Clauses with commas inside, joined by semicolons: "a; b; c; and 4 more"."""
    more = len(items) - NAMED_IN_TEXT
    return "; ".join(items[:NAMED_IN_TEXT]) + (f"; and {more} more" if more > 0 else "")
