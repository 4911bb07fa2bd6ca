"""Findings in plain language, generated from the maps stored in an atlas.

The topographic-maps paper promised maps that people who are not ML experts can read. This
module turns what the maps already measured into short sentences, each with the view and
the selection that shows it, so the viewer's findings panel can link to the evidence:

- ``separation``: "Class ring separates from the others at layer features.block4"
  (Mapper's :func:`separation_layers`; without Mapper results, the topomap's class
  separation names the layer where the classes are most apart).
- ``concept``: "Cluster 4 (12 neurons in features.block4) responds to colour red: coherence
  0.91 (random groups: 0.35)": concept clusters whose exemplars share one attribute value
  far more than random groups of the same size do.
- ``shortcut``: "Inputs with noise background push the model toward class circle": an
  attribute value that raises the predictions of one class among inputs of the same true
  label (a within-label contrast, so class balance alone cannot fire it).
- ``mislabels``: "These 37 inputs labelled star look like class cross": inputs whose Mapper nodes
  are pure in another label (the evidence of Mapper's anomaly ranking, read as a cut).
- ``training``: "Class separation in head.relu rose from 0.22 to 0.80 during training"
  (several snapshots).

Every rule reads results already in the atlas (``neurocarta map`` or the demo stores them)
and the model outputs of the input table; a rule whose inputs are missing is skipped, so
an atlas with no maps still gets the rules that need only the outputs.

Each finding is a plain dict, JSON-ready::

    {"kind": "shortcut", "text": "...", "view": "topomap",
     "selection": {"layer": ..., "group_by": "background", "group": "noise", "class": "circle"},
     "score": 0.93, "evidence": {...the numbers behind the sentence...}}

``score`` orders the panel (highest first). It lies in [0, 1]: a base per kind (problems the
reader should act on first: shortcut 0.8, mislabels 0.7; then separation 0.5, training 0.45,
concept 0.3) plus up to 0.2 for the strength of that finding.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from .methods.defaults import CONCEPTS_K
from .store.schema import ATTRIBUTE, categorical_columns

if TYPE_CHECKING:
    from pathlib import Path

    from .store import Atlas

KINDS = ("shortcut", "mislabels", "separation", "training", "concept")
_BASE = {"shortcut": 0.8, "mislabels": 0.7, "separation": 0.5, "training": 0.45, "concept": 0.3}

# --- thresholds (documented in README and docs/architecture.md) ---------------------------
#: shortcut: the smallest difference in the share of predictions of the class, with the value
#: against without it, inside the same true label (and split)
SHORTCUT_MIN_DIFFERENCE = 0.3
#: shortcut: the stratified two-proportion z statistic must pass this (a strict guard: many
#: values x classes are tested, and 4 sigma keeps chance out even across hundreds of tests)
SHORTCUT_MIN_Z = 4.0
#: shortcut: inputs needed on each side of a contrast (with the value, without it)
SHORTCUT_MIN_COUNT = 10
#: mislabels: an input is a candidate when its Mapper node is this pure in another label ...
MISLABEL_MIN_MAJORITY = 0.8
#: ... and that node has at least this many members (tiny nodes are noise, not evidence)
MISLABEL_MIN_NODE = 5
#: ... and (token layers: several rows per input) at least this share of the input's rows look
#: like that same label (with one row per input, its row is all of it)
MISLABEL_MIN_ROW_SHARE = 0.5
#: mislabels: a (label, looks-like class) pair needs at least this many candidates ...
MISLABEL_MIN_INPUTS = 5
#: ... and at most this many pairs are reported (the largest)
MISLABEL_MAX_PAIRS = 5
#: concept: a cluster must reach this coherence above random groups of its size ...
CONCEPT_MIN_GAIN = 0.2
#: ... and this ratio to them, with at least this many neurons
CONCEPT_MIN_LIFT = 1.5
CONCEPT_MIN_SIZE = 3
#: concept: at most this many concept findings per layer (the strongest)
CONCEPT_PER_LAYER = 3
#: training: the smallest rise of class separation between the first and last snapshot
TRAINING_MIN_RISE = 0.1
#: at most this many input ids in a finding's selection
MAX_SELECTED_INPUTS = 500


def findings(atlas: Atlas | str | Path, snapshot: str | None = None) -> list[dict[str, Any]]:
    """Plain-language findings from the maps stored in ``atlas``, highest score first.

    Parameters
    ----------
    atlas : an open :class:`~neurocarta.store.Atlas` (or its path).
    snapshot : the snapshot whose outputs and concept atlas are read (default: the last).

    Returns
    -------
    A list of dicts with ``kind``, ``text`` (one plain sentence), ``view`` (``topomap``,
    ``projection``, ``graph``, ``mapper`` or ``inspector``), ``selection`` (what the viewer
    should select), ``score`` (for ordering) and ``evidence`` (the numbers behind the text).
    An empty list when nothing passes the rules (see :func:`has_maps` to tell why).
    """
    if not hasattr(atlas, "layer_names"):
        from .store import open_atlas

        atlas = open_atlas(atlas)
    snap = atlas.snapshot_name(snapshot)
    out: list[dict] = []
    for rule in (shortcut_findings, mislabel_findings, separation_findings, training_findings, concept_findings):
        out += rule(atlas, snap)
    return sorted(out, key=lambda f: (-f["score"], KINDS.index(f["kind"]), f["text"]))


def has_maps(atlas: Atlas) -> bool:
    """Whether the atlas holds any stored map (topomap, Mapper or concepts)."""
    return any(atlas.maps(kind) for kind in ("topomap", "mapper", "concepts"))


def has_labels(atlas: Atlas) -> bool:
    """Whether any input is labelled; without labels the rules about classes (shortcut,
    mislabels, class separation, training) have nothing to judge."""
    table = atlas.input_table
    return "label" in table.columns and bool((table["label"] >= 0).any())


def _finding(kind: str, text: str, view: str, selection: dict, strength: float, evidence: dict) -> dict:
    strength = float(np.clip(strength, 0.0, 1.0))
    return {"kind": kind, "text": text, "view": view, "selection": _plain(selection),
            "score": round(_BASE[kind] + 0.2 * strength, 4), "evidence": _plain(evidence)}


def _plain(value):
    """numpy scalars and arrays to Python types, so a finding is JSON as it stands."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _class_names(atlas: Atlas) -> list[str]:
    try:
        return list(atlas.class_names or [])
    except Exception:  # an atlas without class names: labels stay numbers
        return []


# ============================================================================ shortcut
def _mh_difference(n1: np.ndarray, y1: np.ndarray, n0: np.ndarray, y0: np.ndarray) -> tuple[float, float, int, int]:
    """Stratified (Mantel-Haenszel) difference of two proportions and its z statistic.

    Per stratum s: p1 = y1/n1 (with the value), p0 = y0/n0 (without). The strata weights
    n1 n0 / (n1 + n0) give the classic MH risk difference; its variance under "no
    difference" uses each stratum's pooled proportion. Strata with an empty side drop out.
    Returns (difference, z, inputs with the value, inputs without) over the used strata.
    """
    ok = (n1 > 0) & (n0 > 0)
    if not ok.any():
        return 0.0, 0.0, 0, 0
    n1, y1, n0, y0 = (a[ok].astype(np.float64) for a in (n1, y1, n0, y0))
    w = n1 * n0 / (n1 + n0)
    diff = float((w * (y1 / n1 - y0 / n0)).sum() / w.sum())
    p = (y1 + y0) / (n1 + n0)
    var = float((w ** 2 * p * (1 - p) * (1 / n1 + 1 / n0)).sum() / w.sum() ** 2)
    z = diff / np.sqrt(var) if var > 0 else (np.inf if diff > 0 else 0.0)
    return diff, float(z), int(n1.sum()), int(n0.sum())


def shortcut_candidates(table: pd.DataFrame, class_names: list[str] | None = None,
                        roles: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Every (attribute, value, class) contrast the shortcut rule tests, strongest first.

    For each value v of a categorical attribute (the schema's rule and roles, store/schema.py:
    never the label, a label-like column, an output or bookkeeping; ``roles`` as
    :attr:`Atlas.column_roles`, inferred from ``table`` when missing) and each class Y, two
    within-label contrasts, stratified by true label and by ``split`` when the table has one:

    - ``recognition``: among inputs labelled Y, the share predicted Y with v against
      without it (the class is recognised mostly when v is present);
    - ``attraction``: among inputs of every other label, the share predicted Y with v
      against without it, pooled over the labels (v pulls other classes to Y).

    v is compared with *each* other value of its attribute, and the weakest of those
    comparisons is the one reported: v must push toward Y against every alternative, so a
    value that is only "not the harmful one" (plain and gradient backgrounds next to noise)
    does not fire beside it.

    Columns: attribute, value, class, class_name, contrast, share_with (share predicted Y
    with v), share_without (with the compared value), versus (that value), difference, z,
    n_with, n_without.
    """
    columns = ["attribute", "value", "class", "class_name", "contrast", "share_with", "share_without", "versus",
               "difference", "z", "n_with", "n_without"]
    if "label" not in table or "pred" not in table:
        return pd.DataFrame(columns=columns)
    t = table[(table["label"] >= 0) & table["pred"].notna()]
    if not len(t):
        return pd.DataFrame(columns=columns)
    label = t["label"].astype(np.int64)
    pred = t["pred"].astype(np.int64).to_numpy()
    cols = categorical_columns(t, include=(ATTRIBUTE,), roles=roles)
    split = t["split"].astype(str).to_numpy() if "split" in t else np.zeros(len(t), dtype=object)
    strata, _ = pd.factorize(pd.Series(list(zip(label.to_numpy(), split))))  # (true label, split)
    n_strata = int(strata.max()) + 1
    stratum_label = np.zeros(n_strata, dtype=np.int64)
    stratum_label[strata] = label.to_numpy()
    classes = np.unique(np.concatenate([label.to_numpy(), pred]))
    names = class_names or []
    rows = []
    for col in cols:
        values = t[col].astype(str).to_numpy()
        uniq = list(pd.unique(values))
        # counts per value x stratum, and per value x stratum x predicted class
        code = pd.Index(uniq).get_indexer(values)
        n = np.bincount(code * n_strata + strata, minlength=len(uniq) * n_strata).reshape(len(uniq), n_strata)
        for y in classes:
            hit = pred == y
            k = np.bincount(code[hit] * n_strata + strata[hit],
                            minlength=len(uniq) * n_strata).reshape(len(uniq), n_strata)
            own = stratum_label == y
            for contrast, sel in (("recognition", own), ("attraction", ~own)):
                if not sel.any():
                    continue
                for i, v in enumerate(uniq):
                    weakest = None
                    for j, w in enumerate(uniq):
                        if i == j:
                            continue
                        n1, y1, n0, y0 = n[i, sel], k[i, sel], n[j, sel], k[j, sel]
                        d, z, a, b = _mh_difference(n1, y1, n0, y0)
                        if a == 0 or b == 0:
                            continue
                        both = (n1 > 0) & (n0 > 0)
                        row = {"attribute": col, "value": v, "class": int(y),
                               "class_name": names[y] if 0 <= y < len(names) else str(int(y)),
                               "contrast": contrast, "share_with": float(y1[both].sum() / n1[both].sum()),
                               "share_without": float(y0[both].sum() / n0[both].sum()), "versus": w,
                               "difference": d, "z": z, "n_with": a, "n_without": b}
                        if weakest is None or (z, d) < (weakest["z"], weakest["difference"]):
                            weakest = row
                    if weakest is not None:
                        rows.append(weakest)
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["z", "difference"], ascending=False, kind="stable").reset_index(drop=True)


def shortcut_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Attribute values that push the model toward one class, beyond what the label says.

    Fires for a contrast of :func:`shortcut_candidates` with a difference of at least
    ``SHORTCUT_MIN_DIFFERENCE`` (0.3), z above ``SHORTCUT_MIN_Z`` (4) and at least
    ``SHORTCUT_MIN_COUNT`` (10) inputs on each side; one finding per (attribute, value,
    class), the stronger contrast. Where the outputs come from a model that only saw the
    training split, the test split's contrast is what matters, and stratifying by split
    keeps a train/test difference from passing as a shortcut.
    """
    table = atlas.inputs_with_outputs(snapshot)
    names = _class_names(atlas)
    cand = shortcut_candidates(table, names, atlas.column_roles)
    if not len(cand):
        return []
    ok = cand[(cand["difference"] >= SHORTCUT_MIN_DIFFERENCE) & (cand["z"] > SHORTCUT_MIN_Z)
              & (cand["n_with"] >= SHORTCUT_MIN_COUNT) & (cand["n_without"] >= SHORTCUT_MIN_COUNT)]
    ok = ok.drop_duplicates(["attribute", "value", "class"])
    layer = atlas.layer_names[-1] if atlas.layer_names else None
    out = []
    t = table[(table["label"] >= 0)] if "label" in table else table
    for r in ok.to_dict("records"):
        col, v, cls = r["attribute"], r["value"], r["class_name"]
        noun = f"{v} {col}" if col in ("colour", "color", "texture", "background") else f"{col} {v}"
        if r["contrast"] == "recognition":
            how = f"{cls} inputs are recognised {_pct(r['share_with'])} of the time with {noun}"
        else:
            how = f"inputs of other classes are called {cls} {_pct(r['share_with'])} of the time with {noun}"
        text = (f"Inputs with {noun} push the model toward class {cls}, a possible shortcut: "
                f"{how}, at most {_pct(r['share_without'])} with any other {col}.")
        chosen = t[(t[col].astype(str) == v) & (t["pred"] == r["class"])]["input_id"].to_numpy()
        selection = {"layer": layer, "group_by": col, "group": v, "class": cls,
                     "inputs": np.sort(chosen)[:MAX_SELECTED_INPUTS]}
        evidence = {key: r[key] for key in ("attribute", "value", "contrast", "share_with", "share_without",
                                            "versus", "difference", "z", "n_with", "n_without")}
        evidence["class"] = cls
        out.append(_finding("shortcut", text, "topomap", selection, r["difference"], evidence))
    return out


# ============================================================================ mislabels
def _mapper_results(atlas: Atlas) -> list:
    from .methods.mapper import load_mapper

    stored = set(atlas.maps("mapper"))
    return [load_mapper(atlas, name) for name in atlas.layer_names if name in stored]


def mislabel_candidates(result, table: pd.DataFrame) -> pd.DataFrame:
    """Inputs of one Mapper graph whose nodes are pure in another label.

    For each (row, node) of the graph: the node's majority label and its share of the
    members. A row is a hit when, in some node of at least ``MISLABEL_MIN_NODE`` members,
    another label holds at least ``MISLABEL_MIN_MAJORITY`` of the members. This is the same
    evidence as :func:`neurocarta.methods.mapper.analysis.anomalies`, read as a cut rather
    than a ranking: the anomaly score also favours small nodes, which is right for ordering
    and wrong for a threshold.

    Token layers have many rows per input, and the finding is about inputs, so the evidence
    is counted in inputs: a node's size and majority count each input once (ten tokens of
    one sentence are one witness, not ten), and an input is a candidate when at least
    ``MISLABEL_MIN_ROW_SHARE`` of its rows in the graph look like the same other label (one
    stray token in a pure node does not make a sentence look mislabelled). With one row per
    input this is exactly the row rule.

    ``table``: one row per input (``input_id``, ``label``). Columns: input_id, label,
    node_majority, majority_share (mean over the input's hit rows), node_size (the largest
    of their nodes, in inputs), score (the input's highest stored anomaly score, when there
    is one).
    """
    columns = ["input_id", "label", "node_majority", "majority_share", "node_size"]
    node, rows = result.graph.membership()
    ids = result.input_ids[rows]
    lab = table.set_index("input_id")["label"].reindex(ids).to_numpy()
    f = pd.DataFrame({"node": node, "row": rows, "input_id": ids, "own": lab})
    f = f[pd.notna(f["own"]) & (f["own"] >= 0)]
    witnesses = f.drop_duplicates(["node", "input_id"])  # each input once per node
    size = witnesses.groupby("node").size()
    counts = witnesses.groupby(["node", "own"]).size().rename("n").reset_index()
    top = counts.sort_values(["node", "n"], ascending=[True, False], kind="stable").drop_duplicates("node")
    top = top.set_index("node")
    f = f.assign(node_majority=f["node"].map(top["own"]), node_size=f["node"].map(size))
    f["majority_share"] = f["node"].map(top["n"]) / f["node_size"]
    f["hit"] = ((f["node_majority"] != f["own"]) & (f["majority_share"] >= MISLABEL_MIN_MAJORITY)
                & (f["node_size"] >= MISLABEL_MIN_NODE))
    # every row once, by its strongest node: hits first, then the purest, then the largest
    by_row = f.sort_values(["hit", "majority_share", "node_size"], ascending=False, kind="stable")
    by_row = by_row.drop_duplicates("row")
    rows_per_input = by_row.groupby("input_id").size()
    hits = by_row[by_row["hit"]]
    looks = (hits.groupby(["input_id", "node_majority"], sort=False)
             .agg(label=("own", "first"), n_rows=("row", "size"), majority_share=("majority_share", "mean"),
                  node_size=("node_size", "max"))
             .reset_index())
    # the label most of the input's hit rows look like (ties: the purer nodes)
    looks = looks.sort_values(["n_rows", "majority_share", "node_size"], ascending=False, kind="stable")
    looks = looks.drop_duplicates("input_id")
    enough = looks["n_rows"].to_numpy() >= MISLABEL_MIN_ROW_SHARE * looks["input_id"].map(rows_per_input).to_numpy()
    out = looks[enough][columns]
    if result.anomalies is not None and len(result.anomalies):
        score = result.anomalies.groupby("input_id")["score"].max()  # token layers: one score per row
        out = out.assign(score=out["input_id"].map(score).fillna(0.0).to_numpy())
        out = out.sort_values(["score", "input_id"], ascending=[False, True], kind="stable")
    else:
        out = out.sort_values(["majority_share", "node_size", "input_id"], ascending=[False, False, True],
                              kind="stable")
    return out.reset_index(drop=True)


def mislabel_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Inputs that look mislabelled, one finding per (label, class they look like) pair.

    The judge is the deepest stored Mapper graph that is not the model's output (a last
    layer with one neuron per class), or the output when nothing else is mapped. Where a
    layer sorts inputs by class, an input sitting in a node full of another label most
    likely carries the wrong label, or is one the model confuses. Not the output: logits
    are fitted to the labels themselves, so a memorised wrong label pulls its input toward
    its label's class there; and not an early layer, which sorts by appearance. (On the
    planted relabelling of the test data, ``head.relu`` finds 38 relabelled stars-that-are-
    crosses at precision 1.0, ``head.fc2`` 18, ``features.block4`` none, though block4's
    graph has the highest class purity.) Candidates: :func:`mislabel_candidates`. A pair
    needs ``MISLABEL_MIN_INPUTS`` candidates; the ``MISLABEL_MAX_PAIRS`` largest pairs are
    reported. Splitting by pair
    keeps a planted relabelling (stars that look like crosses) apart from a class the model
    confuses for another reason (circles off their shortcut background called hexagons).
    """
    table = atlas.input_table
    if "label" not in table:
        return []
    results = [r for r in _mapper_results(atlas) if "purity" in r.nodes and len(r.nodes)]
    if not results:
        return []
    names = _class_names(atlas)
    judge = results[-1]
    last = atlas.manifest.layer(judge.layer)
    if len(results) > 1 and names and last.n_neurons == len(names) and judge.layer == atlas.layer_names[-1]:
        judge = results[-2]
    cand = mislabel_candidates(judge, table)
    name = (lambda c: names[int(c)] if 0 <= int(c) < len(names) else str(int(c)))
    out = []
    n_inputs = max(1, len(np.unique(judge.input_ids)))  # token layers: many rows per input
    pairs = cand.groupby(["label", "node_majority"], sort=False).size().sort_values(ascending=False, kind="stable")
    for (own, other), n in pairs.head(MISLABEL_MAX_PAIRS).items():
        if n < MISLABEL_MIN_INPUTS:
            break
        part = cand[(cand["label"] == own) & (cand["node_majority"] == other)]
        ids = part["input_id"].to_numpy()
        text = (f"These {n} inputs labelled {name(own)} look like class {name(other)}: in layer {judge.layer} they sit "
                f"among {name(other)} inputs (at least {_pct(MISLABEL_MIN_MAJORITY)} of their group): they may be "
                f"mislabelled, or the model confuses the two classes.")
        evidence = {"layer": judge.layer, "label": name(own), "looks_like": name(other), "n_inputs": int(n),
                    "share_of_inputs": n / n_inputs, "mean_majority_share": float(part["majority_share"].mean()),
                    "graph_purity": judge.mean_purity, "n_candidates": int(len(cand))}
        selection = {"layer": judge.layer, "inputs": ids[:MAX_SELECTED_INPUTS]}
        # strength: how pure the surrounding nodes are, and how large the pair is
        strength = 0.5 * float(part["majority_share"].mean()) + 0.5 * min(1.0, n / 50)
        out.append(_finding("mislabels", text, "inspector", selection, strength, evidence))
    return out


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
    from .methods.mapper.analysis import _class_regions, separation_layers

    results = [r for r in _mapper_results(atlas) if "classes" in r.nodes and len(r.nodes)]
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
            out.append(_finding("separation", text, "mapper", selection, 1.0 - depth, evidence))
    if results:
        return out
    tm = _label_topomaps(atlas)
    if tm:
        snap = atlas.snapshot_name(snapshot)
        sep = {layer: r.separation.get(snap) for layer, r in tm.items() if r.separation.get(snap) is not None}
        if sep:
            layer = max(sep, key=sep.get)
            text = (f"The classes are most clearly apart at layer {layer}: {_pct(sep[layer])} of its neurons' "
                    f"variation lies between classes.")
            out.append(_finding("separation", text, "topomap", {"layer": layer, "group_by": tm[layer].group_by},
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
def _label_topomaps(atlas: Atlas) -> dict:
    """Stored topomaps grouped by class (``label`` or ``label_name``), per layer."""
    from .methods.topomap import load_topomap

    out = {}
    names = set(atlas.maps("topomap"))
    for layer in atlas.layer_names:
        for by in ("label", "label_name"):
            if f"{layer}@{by}" in names:
                out[layer] = load_topomap(atlas, layer, by)
                break
    return out


def training_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Layers whose class separation (the topomap's share of neuron variance between classes)
    rose by ``TRAINING_MIN_RISE`` or more from the first to the last snapshot."""
    out = []
    for layer, r in _label_topomaps(atlas).items():
        snaps = [s for s in r.snapshots if s in r.separation]
        if len(snaps) < 2:
            continue
        first, last = r.separation[snaps[0]], r.separation[snaps[-1]]
        if last - first < TRAINING_MIN_RISE:
            continue
        text = (f"Class separation in {layer} rose from {first:.2f} to {last:.2f} during training "
                f"({snaps[0]} to {snaps[-1]}): the layer learned to tell the classes apart.")
        out.append(_finding("training", text, "topomap",
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
    from .methods.concepts import load_concepts
    from .methods.concepts.coherence import group_coherence, random_coherence
    from .methods.concepts.estimator import as_sets
    from .methods.concepts.result import layer_sets

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
            out.append(_finding("concept", text, "projection",
                                {"layer": layer, "cluster": int(r.cluster), "neurons": np.sort(units)},
                                gain, {"layer": layer, "cluster": int(r.cluster), "size": int(r.size),
                                       "attribute": m["attr"], "value": m["value"], "coherence": coh,
                                       "random_coherence": rnd, "snapshot": c.snapshot}))
    return out
