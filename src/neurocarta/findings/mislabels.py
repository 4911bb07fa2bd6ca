"""The label-issue rules: what cleanlab's Datalab says about the labelled inputs.

One pass of :func:`~neurocarta.findings.labels.find_label_issues` feeds five kinds:

- ``mislabels``: inputs whose neighbours in the representation *and* the model both call them
  another class, and that cleanlab's confident learning flags: one finding for the layer,
  the (label -> looks like) pairs counted in its evidence.
- ``confusion``: "the model confuses A and B": many A inputs predicted B while their
  neighbours agree with their label A (the labels look right), far more than the model's
  errors spread evenly over the classes would give (binomial test, BH across the pairs).
  Kept apart from mislabels by construction: an input is one or the other.
- ``underperforming``: a dense region of the representation where the model's own
  probability of the given label is far below its average (Datalab's underperforming group).
- ``outlier``: inputs far from all others (Tukey's far-out fence on the neighbour distance).
- ``duplicate``: inputs with a near-identical twin in the representation (Datalab's near
  duplicates: closer than 13% of the median nearest-neighbour distance).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ..methods.topomap.stats import bh_adjust
from .common import MAX_SELECTED_INPUTS, class_names, make_finding, pct
from .labels import NEIGHBOURS, OUTLIER_THRESHOLD, LabelIssues, find_label_issues

if TYPE_CHECKING:
    from ..store import Atlas

#: confusion: a (label A, predicted B) pair needs at least this many inputs whose labels look
#: right, ...
CONFUSION_MIN_INPUTS = 10
#: ... at least this share of A's inputs, ...
CONFUSION_MIN_SHARE = 0.05
#: ... and a BH-adjusted binomial q below this against the model's error rate spread evenly
CONFUSION_FDR = 0.01
#: outliers: beyond Datalab's fence and at least this many times the median mean distance to
#: the neighbours ("far from all others"). Measured against null data (benchmarks/
#: bench_findings.py: clean atlases with nothing planted), the farthest inputs of a ReLU layer
#: already sit 4.0-5.2 times the typical distance away: the heavy tail of strong activations,
#: not inputs apart from the rest. At 4 the rule fired on 2 of 3 null scenarios; twice the
#: largest null ratio keeps a margin, so an input it names is far beyond that tail.
OUTLIER_MIN_RATIO = 10.0
#: at most this many pairs are named in a sentence (all are in the evidence)
PAIRS_IN_TEXT = 3
#: at most this many Mapper nodes in a selection (the ones holding most of its inputs)
MAX_NODES = 10


def mislabel_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Every label-issue finding of ``atlas`` (mislabels, confusion, underperforming, outlier,
    duplicate) from one cleanlab pass; [] when the atlas has no labels or no activations."""
    found = find_label_issues(atlas, snapshot)
    if found is None:
        return []
    names = class_names(atlas)
    mapper = _mapper_nodes(atlas, found.layer)
    out = []
    for rule in (_mislabels, _confusion, _underperforming, _outliers, _duplicates):
        f = rule(found, names, mapper)
        if f is not None:
            out.append(f)
    return out


# ---------------------------------------------------------------- helpers
def _namer(names: list[str]):
    return lambda c: names[int(c)] if 0 <= int(c) < len(names) else str(int(c))


def _mapper_nodes(atlas: Atlas, layer: str) -> pd.DataFrame | None:
    """(node, input_id) memberships of the stored Mapper graph of ``layer``, if there is one."""
    if layer not in set(atlas.maps("mapper")):
        return None
    from ..methods.mapper import load_mapper

    result = load_mapper(atlas, layer)
    node, rows = result.graph.membership()
    return pd.DataFrame({"node": node, "input_id": result.input_ids[rows]}).drop_duplicates()


def _where(layer: str, ids: np.ndarray, mapper: pd.DataFrame | None, view: str = "mapper") -> tuple[str, dict]:
    """The view and selection that show ``ids``: the Mapper nodes that hold most of them, when
    the layer has a Mapper graph and ``view`` is mapper; else the inspector on the inputs."""
    selection = {"layer": layer, "inputs": ids[:MAX_SELECTED_INPUTS]}
    if view == "mapper" and mapper is not None:
        hits = mapper[mapper["input_id"].isin(ids)]["node"].value_counts()
        if len(hits):
            return "mapper", {**selection, "nodes": hits.index[:MAX_NODES].to_numpy()}
    return "inspector", selection


def _pairs_text(pairs: pd.DataFrame, name) -> str:
    parts = [f"{int(r.n)} labelled {name(r.label)} look{'s' if r.n == 1 else ''} like {name(r.other)}"
             for r in pairs.head(PAIRS_IN_TEXT).itertuples()]
    more = len(pairs) - PAIRS_IN_TEXT
    return ", ".join(parts) + (f" and {more} more pair{'s' if more > 1 else ''}" if more > 0 else "")


# ---------------------------------------------------------------- rules
def _mislabels(found: LabelIssues, names: list[str], mapper) -> dict | None:
    flagged = found.mislabelled
    if not flagged.any():
        return None
    name = _namer(names)
    score = 1.0 - found.label_score
    order = np.flatnonzero(flagged)[np.argsort(-score[flagged], kind="stable")]
    ids = found.input_ids[order]
    labels, other = found.labels[order], found.pred[order]
    pairs = (pd.DataFrame({"label": labels, "other": other}).value_counts().rename("n").reset_index()
             .sort_values(["n", "label", "other"], ascending=[False, True, True], kind="stable"))
    n = len(ids)
    agreement = found.neighbour_share[order, other]
    many = n > 1
    text = (f"{n} input{'s look' if many else ' looks'} mislabelled: in layer {found.layer}, most of "
            f"{'their' if many else 'its'} {NEIGHBOURS} nearest neighbours and the model both put "
            f"{'them' if many else 'it'} in another class ({_pairs_text(pairs, name)}).")
    evidence = {"layer": found.layer, "n_inputs": n, "share_of_inputs": n / len(found.labels),
                "pairs": [{"label": name(r.label), "looks_like": name(r.other), "n": int(r.n)}
                          for r in pairs.itertuples()],
                "mean_knn_agreement": float(agreement.mean()),
                "mean_model_confidence": float(found.model_probs[order, other].mean()),
                "model_probabilities": found.model_source}
    confidence = {"method": "cleanlab Datalab label issues (confident learning) on the mean of leave-one-out "
                            "kNN and model class probabilities",
                  "mean_label_quality": float(found.label_score[order].mean()),
                  "estimated_noise_rate": found.estimated_noise_rate(),
                  "label_quality": found.label_score[order][:MAX_SELECTED_INPUTS].round(4)}
    view, selection = _where(found.layer, ids, mapper)
    check = (f"Open the Mapper graph of {found.layer}: the selected nodes hold them among inputs of the class they look "
             "like; click one to see its image and label in the inspector." if view == "mapper" else
             "Open the inspector on the selected inputs: each shows its given label and the model's prediction.")
    strength = 0.5 * float(score[order].mean()) + 0.5 * min(1.0, n / 50)
    return make_finding("mislabels", text, view, selection, strength, evidence, confidence, check)


def _confusion(found: LabelIssues, names: list[str], mapper) -> dict | None:
    """Pairs (A, B) where the model predicts B for many A inputs whose neighbours agree with A."""
    if found.pred is None:
        return None
    labels, pred = found.labels, found.pred
    c = found.n_classes
    n_per_class = np.bincount(labels, minlength=c)
    error_rate = float((pred != labels).mean())
    if error_rate == 0 or c < 2:
        return None
    # labels that look right: the neighbours share them, or the disagreement is the model's
    # (systematic: an attribute or the split explains it, systematic.py; or a held-out input
    # the model is not confident about, one of its test errors), not noise in the labels
    fine = ((pred != labels) & ((found.knn_pred == labels) | found.systematic | found.held_out | found.shortcut_victims)
            & ~found.mislabelled)
    counts = np.zeros((c, c), dtype=np.int64)
    np.add.at(counts, (labels[fine], pred[fine]), 1)
    a, b = np.nonzero(~np.eye(c, dtype=bool) & (n_per_class[:, None] > 0))
    # null: the model's errors spread evenly over the other classes
    p0 = error_rate / (c - 1)
    p = np.array([stats.binomtest(int(counts[i, j]), int(n_per_class[i]), p0, alternative="greater").pvalue
                  if counts[i, j] else 1.0 for i, j in zip(a, b)])
    q = bh_adjust(p)
    share = counts[a, b] / n_per_class[a]
    keep = (q < CONFUSION_FDR) & (counts[a, b] >= CONFUSION_MIN_INPUTS) & (share >= CONFUSION_MIN_SHARE)
    if not keep.any():
        return None
    pairs = pd.DataFrame({"label": a[keep], "other": b[keep], "n": counts[a, b][keep], "of": n_per_class[a][keep],
                          "share": share[keep], "p": p[keep], "q": q[keep]})
    pairs = pairs.sort_values(["n", "label", "other"], ascending=[False, True, True], kind="stable")
    name = _namer(names)
    said = ", ".join(f"{name(r.other)} for {r.n} of {r.of} inputs labelled {name(r.label)} ({pct(r.share)})"
                     for r in pairs.head(PAIRS_IN_TEXT).itertuples())
    more = len(pairs) - PAIRS_IN_TEXT
    text = (f"The model confuses {len(pairs)} pair{'s' if len(pairs) > 1 else ''} of classes on inputs whose labels "
            f"look right: it predicts {said}"
            + (f", and {more} more pair{'s' if more > 1 else ''}" if more > 0 else "") + ".")
    in_pairs = fine & np.isin(labels * c + pred, (pairs["label"] * c + pairs["other"]).to_numpy())
    ids = found.input_ids[in_pairs]
    why = {(e["label"], e["looks_like"]): e for e in found.explanations}
    evidence = {"layer": found.layer, "error_rate": error_rate,
                "pairs": [{"label": name(r.label), "predicted": name(r.other), "n": int(r.n), "of": int(r.of),
                           "share": float(r.share), "explained_by": why.get((r.label, r.other))}
                          for r in pairs.itertuples()],
                "systematic": [{**e, "label": name(e["label"]) if e["label"] >= 0 else "any",
                                "looks_like": name(e["looks_like"]) if e["looks_like"] >= 0 else "any"}
                               for e in found.explanations]}
    confidence = {"test": f"one-sided binomial against the model's error rate spread evenly ({p0:.4f} per pair), "
                          f"BH over {len(p)} pairs", "p": float(pairs["p"].max()), "q": float(pairs["q"].max())}
    view, selection = _where(found.layer, ids, mapper)
    first = pairs.iloc[0]
    check = (f"Group a topomap by confusion and open the cell {name(first.label)}->{name(first.other)}; "
             "the inspector shows each input with its label and prediction.")
    strength = float(min(1.0, pairs["share"].max() * 2))
    return make_finding("confusion", text, view, selection, strength, evidence, confidence, check)


def _flags(found: LabelIssues, issue: str) -> np.ndarray | None:
    """Datalab's flags for ``issue`` (None when it did not run or flagged nothing)."""
    column = f"is_{issue}_issue"
    if column not in found.issues:
        return None
    flagged = found.issues[column].to_numpy(dtype=bool)
    return flagged if flagged.any() else None


def _underperforming(found: LabelIssues, names: list[str], mapper) -> dict | None:
    issues = found.issues
    flagged = _flags(found, "underperforming_group")
    if flagged is None:
        return None
    name = _namer(names)
    ids = found.input_ids[flagged]
    ratio = float(issues["underperforming_group_score"].to_numpy()[flagged].mean())
    quality = found.model_probs[np.arange(len(found.labels)), found.labels]
    inside, overall = float(quality[flagged].mean()), float(quality.mean())
    classes = pd.Series(found.labels[flagged]).value_counts()
    top = ", ".join(f"{v} labelled {name(k)}" for k, v in classes.head(PAIRS_IN_TEXT).items())
    text = (f"The model does badly on a group of {len(ids)} inputs that sit together in layer {found.layer} "
            f"({top}): its mean probability for their labels is {inside:.2f}, against {overall:.2f} overall.")
    evidence = {"layer": found.layer, "n_inputs": len(ids), "mean_label_probability": inside,
                "overall_label_probability": overall, "labels": {name(k): int(v) for k, v in classes.items()},
                "accuracy": float((found.pred[flagged] == found.labels[flagged]).mean()),
                "overall_accuracy": float((found.pred == found.labels).mean())}
    confidence = {"method": "cleanlab Datalab underperforming group (DBSCAN on the kNN graph)", "quality_ratio": ratio,
                  "threshold": found.info.get("underperforming_group", {}).get("threshold", 0.1)}
    view, selection = _where(found.layer, ids, mapper)
    check = f"Open the Mapper graph of {found.layer} on the selected nodes and colour it by correct."
    return make_finding("underperforming", text, view, selection, 1.0 - ratio, evidence, confidence, check)


def _outliers(found: LabelIssues, names: list[str], mapper) -> dict | None:
    issues = found.issues
    fenced = _flags(found, "outlier")
    if fenced is None:
        return None
    dist = np.asarray(found.graph.sum(axis=1)).ravel() / found.graph.getnnz(axis=1).clip(1)
    typical = max(float(np.median(dist)), 1e-12)
    # the fence alone is relative to the spread, which is narrow in many dimensions: on clean
    # atlases inputs 2 to 3 times as far from their neighbours as usual pass it (measured: 53
    # in the demo's head.relu), the tail of a continuum rather than inputs apart from the rest
    flagged = fenced & (dist >= OUTLIER_MIN_RATIO * typical)
    if not flagged.any():
        return None
    q1, q3 = np.percentile(dist, [25, 75])
    score = issues["outlier_score"].to_numpy()
    order = np.flatnonzero(flagged)[np.argsort(score[flagged], kind="stable")]
    ids = found.input_ids[order]
    ratio = float(np.median(dist[order]) / typical)
    n = len(ids)
    text = (f"{n} input{'s lie' if n > 1 else ' lies'} far from all others in layer {found.layer}: the mean distance to "
            f"{'their' if n > 1 else 'its'} {NEIGHBOURS} nearest neighbours is {ratio:.1f} times the typical one, "
            "beyond the far-out fence (Q3 + 3 IQR).")
    evidence = {"layer": found.layer, "n_inputs": n, "distance_ratio": ratio, "fence": float(q3 + 3 * (q3 - q1)),
                "median_distance": typical}
    confidence = {"method": "cleanlab Datalab outliers on the kNN graph", "threshold": OUTLIER_THRESHOLD,
                  "outlier_score": score[order][:MAX_SELECTED_INPUTS].round(4)}
    view, selection = _where(found.layer, ids, mapper, view="inspector")
    check = "Open the inspector on the selected inputs: look for corrupt, blank or out-of-domain inputs."
    return make_finding("outlier", text, view, selection, min(1.0, ratio / 10), evidence, confidence, check)


def _duplicates(found: LabelIssues, names: list[str], mapper) -> dict | None:
    issues = found.issues
    flagged = _flags(found, "near_duplicate")
    if flagged is None:
        return None
    sets = found.info["near_duplicate"]["near_duplicate_sets"]
    # groups: the connected components of the near-duplicate pairs
    rows = np.concatenate([np.full(len(s), i) for i, s in enumerate(sets)] or [np.zeros(0, int)])
    cols = np.concatenate([np.asarray(s) for s in sets] or [np.zeros(0, int)])
    n_all = len(found.labels)
    pairs = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_all, n_all))
    _, group = sparse.csgraph.connected_components(pairs, directed=False)
    members = np.flatnonzero(flagged)
    groups = pd.Series(members).groupby(group[members]).apply(list)
    groups = groups[groups.map(len) > 1].sort_values(key=lambda g: g.map(len), ascending=False)
    if not len(groups):
        return None
    ids = found.input_ids[np.concatenate(groups.to_list())]
    nn = issues["distance_to_nearest_neighbor"].to_numpy() if "distance_to_nearest_neighbor" in issues else None
    exact = int((nn[members] == 0).sum()) if nn is not None else None
    conflicting = int(sum(len(set(found.labels[g])) > 1 for g in groups))
    n = len(ids)
    text = (f"{n} inputs form {len(groups)} group{'s' if len(groups) > 1 else ''} of near duplicates in layer "
            f"{found.layer}" + (f" ({exact} at distance 0)" if exact else "")
            + (f"; {conflicting} of the groups mix labels" if conflicting else "") + ".")
    evidence = {"layer": found.layer, "n_inputs": n, "n_groups": len(groups), "exact": exact,
                "groups_with_mixed_labels": conflicting,
                "groups": [found.input_ids[g].tolist() for g in groups.head(50)]}
    confidence = {"method": "cleanlab Datalab near duplicates: nearer than 0.13 x the median nearest-neighbour "
                            "distance", "median_nn_distance": found.info["near_duplicate"].get("median_nn_distance")}
    view, selection = _where(found.layer, ids, mapper, view="inspector")
    check = "Open the inspector on the selected inputs: each group's members sit next to each other in the list."
    return make_finding("duplicate", text, view, selection, min(1.0, len(groups) / 20), evidence, confidence, check)
