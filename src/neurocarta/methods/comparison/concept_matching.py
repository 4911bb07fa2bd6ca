"""Concept matching: which concept groups of one snapshot or model have a counterpart in
another, and which appeared, vanished, split or merged.

A group's exemplar set is the union of its neurons' top-k exemplar *inputs* (input ids, so
token layers and two tokenisers compare alike; k as the concept result used). Two groups are
compared by the Jaccard of those sets, and by containment (the share of one set inside the
other), since a part of a split group can be small next to the whole (Jaccard |b|/|a|) yet lie
entirely inside it.

Why exact overlaps, not MinHash + LSH as the concept atlas finds similar *neurons*: there are
millions of neurons but only hundreds to a few thousand groups, and the split and merge rules
need the containment of small parts, which LSH (tuned to a Jaccard threshold) would drop. One
sparse product of the two incidence matrices gives every pair's exact overlap, touching only
the pairs that share an input.

The rules (thresholds below; ``a`` in the first result, ``b`` in the second):
  * matched: ``a``'s best counterpart (highest Jaccard) has Jaccard > MATCH (0.5: more than half
    of their pooled exemplars shared; an even split's halves have exactly 0.5 and do not match);
    it is listed both ways.
  * part: ``b`` is a part of ``a`` when >= PART (0.6) of ``b``'s exemplars are ``a``'s and ``b``
    holds >= PART_MIN (0.1) of ``a``'s; parts of one ``b`` in the other direction alike. A part
    inside several wholes counts for the one it shares the most exemplars with.
  * split: an unmatched ``a`` with 2 or more parts in the second result that together hold
    >= COVER (0.5) of its exemplars; merged: the same for an unmatched ``b`` and parts in the first.
  * vanished: an unmatched ``a``, in no split or merge, whose best Jaccard is < NEW (0.2, the
    concept atlas's own threshold for two neurons to be linked at all); appeared: the same for ``b``.
  * changed: any other unmatched group (a counterpart with Jaccard in [0.2, 0.5)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from ...errors import UserError

if TYPE_CHECKING:
    from ...store import Atlas
    from ..concepts import ConceptResult

MATCH = 0.5
PART = 0.6
PART_MIN = 0.1
COVER = 0.5
NEW = 0.2
THRESHOLDS = {"match": MATCH, "part": PART, "part_min": PART_MIN, "cover": COVER, "new": NEW}


def group_exemplars(atlas: "Atlas", result: "ConceptResult") -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Each group of ``result`` (its ``clusters`` table: cluster, layer, size) and its exemplar
    input ids (sorted, unique): the union of its neurons' top-k inputs."""
    k = int(result.params.get("k", 0))
    neurons = result.neurons
    tops = {layer: atlas.topk(layer, result.snapshot).input_ids[:k] for layer in result.layers}
    sets = []
    for layer, members in zip(result.clusters["layer"], result.clusters["members"]):
        units = neurons["unit"].to_numpy(dtype=np.int64)[np.asarray(members, dtype=np.int64)]
        sets.append(np.unique(np.asarray(tops[layer][:, units], dtype=np.int64)))
    table = result.clusters[["cluster", "layer", "size"]].reset_index(drop=True).copy()
    if "describe" in result.clusters:
        table["describe"] = result.clusters["describe"].to_numpy()
    table["n_exemplars"] = [len(s) for s in sets]
    return table, sets


def _incidence(sets: list[np.ndarray], n_ids: int) -> sparse.csr_matrix:
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    indices = np.concatenate(sets) if sets else np.zeros(0, dtype=np.int64)
    return sparse.csr_matrix((np.ones(len(indices), dtype=np.float64), indices, indptr), shape=(len(sets), n_ids))


@dataclass
class ConceptMatch:
    """Groups of both sides (``a``, ``b``: cluster, layer, size, n_exemplars, best_cluster,
    best_layer, jaccard, status) and the events (appeared, vanished, split, merged)."""
    a: pd.DataFrame
    b: pd.DataFrame
    events: list[dict]
    labels: dict[str, str]  # "a"/"b" -> what each side is (atlas url @ snapshot)
    jaccard: np.ndarray = field(repr=False)  # (groups of a x groups of b)
    same_layer: bool = True

    def summary(self) -> dict:
        count = lambda kind: sum(e["kind"] == kind for e in self.events)  # noqa: E731
        return {"sides": self.labels, "groups": {"a": len(self.a), "b": len(self.b)},
                "matched": int((self.a["status"] == "matched").sum()),
                **{kind: count(kind) for kind in ("appeared", "vanished", "split", "merged")},
                "thresholds": THRESHOLDS, "same_layer": self.same_layer}

    def to_json(self) -> dict:
        def records(df: pd.DataFrame) -> list[dict]:
            return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                    for row in df.to_dict(orient="records")]
        return {**self.summary(), "a": records(self.a), "b": records(self.b), "events": self.events}

    def _repr_html_(self) -> str:
        """In a notebook: the counts, then one line per event."""
        from html import escape

        def groups(side: list[dict] | None) -> str:
            return ", ".join(f"{g['layer']} #{g['cluster']}" for g in side or [])

        s = self.summary()
        head = (f"<p><b>{escape(s['sides']['a'])} &rarr; {escape(s['sides']['b'])}</b>: {s['groups']['a']} &rarr; "
                f"{s['groups']['b']} groups; {s['matched']} matched, {s['appeared']} appeared, {s['vanished']} "
                f"vanished, {s['split']} split, {s['merged']} merged</p>")
        rows = "".join(f"<tr><td>{e['kind']}</td><td>{escape(groups(e.get('a')))}</td>"
                       f"<td>{escape(groups(e.get('b')))}</td></tr>" for e in self.events)
        return head + (f"<table><tr><th>event</th><th>first side</th><th>second side</th></tr>{rows}</table>"
                       if rows else "")

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<ConceptMatch {s['groups']['a']} -> {s['groups']['b']} groups: {s['matched']} matched, "
                f"{s['appeared']} appeared, {s['vanished']} vanished, {s['split']} split, {s['merged']} merged>")


def _parts(inter: np.ndarray, size_whole: np.ndarray, size_part: np.ndarray) -> np.ndarray:
    """(wholes x parts) mask: the part lies mostly inside the whole and holds a real share of it.
    Exemplar sets of one side overlap (popular inputs are many neurons' exemplars), so a part may
    lie inside several wholes: it counts for the one it shares most with, never for two."""
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = inter / size_part[None, :] >= PART
        share = inter / size_whole[:, None] >= PART_MIN
    mask = inside & share
    best = np.where(mask, inter, -1.0).argmax(axis=0)
    return mask & (np.arange(len(inter))[:, None] == best[None, :])


def match_concepts(atlas_a: "Atlas", result_a: "ConceptResult", atlas_b: "Atlas", result_b: "ConceptResult",
                   same_layer: bool | None = None) -> ConceptMatch:
    """Match the concept groups of ``result_a`` (of ``atlas_a``) to those of ``result_b``.

    ``same_layer``: compare only groups of layers of the same name (default: when both results
    cover the same layers, e.g. two snapshots of one model); else any layer with any.
    """
    a, sets_a = group_exemplars(atlas_a, result_a)
    b, sets_b = group_exemplars(atlas_b, result_b)
    if same_layer is None:
        same_layer = list(result_a.layers) == list(result_b.layers)
    labels = {"a": f"{atlas_a.url}@{result_a.snapshot}", "b": f"{atlas_b.url}@{result_b.snapshot}"}
    return match_groups(a, sets_a, b, sets_b, labels, same_layer)


def match_groups(a: pd.DataFrame, sets_a: list[np.ndarray], b: pd.DataFrame, sets_b: list[np.ndarray],
                 labels: dict[str, str], same_layer: bool = True) -> ConceptMatch:
    """The rules of the module on any two lists of groups: tables with ``cluster``, ``layer``
    and ``n_exemplars`` (``group_exemplars``' form) and each group's sorted exemplar ids."""
    if not len(a) or not len(b):
        raise UserError("one side has no concept groups to match; run `neurocarta concepts` with a lower --threshold")
    a, b = a.copy(), b.copy()
    n_ids = int(max(max((s.max() for s in sets_a if len(s)), default=0),
                    max((s.max() for s in sets_b if len(s)), default=0))) + 1
    inter = (_incidence(sets_a, n_ids) @ _incidence(sets_b, n_ids).T).toarray()
    if same_layer:
        inter *= a["layer"].to_numpy()[:, None] == b["layer"].to_numpy()[None, :]
    na, nb = a["n_exemplars"].to_numpy(np.float64), b["n_exemplars"].to_numpy(np.float64)
    union = na[:, None] + nb[None, :] - inter
    jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    def best(table: pd.DataFrame, other: pd.DataFrame, j: np.ndarray) -> np.ndarray:
        idx = j.argmax(axis=1)
        table["best_cluster"] = other["cluster"].to_numpy()[idx]
        table["best_layer"] = other["layer"].to_numpy()[idx]
        table["jaccard"] = j[np.arange(len(j)), idx].round(4)
        return j[np.arange(len(j)), idx] > MATCH

    matched_a, matched_b = best(a, b, jac), best(b, a, jac.T)
    status_a = np.where(matched_a, "matched", "changed").astype(object)
    status_b = np.where(matched_b, "matched", "changed").astype(object)
    events: list[dict] = []

    def name(table: pd.DataFrame, i: int) -> dict:
        return {"layer": str(table["layer"].iat[i]), "cluster": int(table["cluster"].iat[i])}

    # split: a whole of the first side into parts of the second; merged: the other way round
    for kind, whole_t, part_t, inter_w, matched_w, status_w, status_p, matched_p in (
            ("split", a, b, inter, matched_a, status_a, status_b, matched_b),
            ("merged", b, a, inter.T, matched_b, status_b, status_a, matched_a)):
        sizes_w, sizes_p = whole_t["n_exemplars"].to_numpy(np.float64), part_t["n_exemplars"].to_numpy(np.float64)
        parts = _parts(inter_w, sizes_w, sizes_p)
        for i in np.flatnonzero(~matched_w):
            picked = np.flatnonzero(parts[i])
            held = inter_w[i, picked].sum()
            if len(picked) < 2 or held < COVER * sizes_w[i]:
                continue
            status_w[i] = kind
            status_p[picked[~matched_p[picked]]] = kind
            whole, many = [name(whole_t, i)], [name(part_t, j) for j in picked]
            events.append({"kind": kind, "a": whole if kind == "split" else many,
                           "b": many if kind == "split" else whole,
                           "cover": round(float(min(1.0, held / sizes_w[i])), 4)})
    for table, status, kind, side in ((a, status_a, "vanished", "a"), (b, status_b, "appeared", "b")):
        lost = (status == "changed") & (table["jaccard"].to_numpy() < NEW)
        status[lost] = kind
        events += [{"kind": kind, side: [name(table, i)], "best_jaccard": float(table["jaccard"].iat[i])}
                   for i in np.flatnonzero(lost)]
        table["status"] = status
    return ConceptMatch(a, b, events, labels, jac, bool(same_layer))


def concept_result(atlas: "Atlas", snapshot: str | None = None) -> "ConceptResult":
    """The stored concept atlas of ``snapshot`` (default: the last), else one computed now with
    the defaults (not saved: comparing never writes into an atlas)."""
    from ..concepts import ConceptResult, concepts

    snap = atlas.snapshot_name(snapshot)
    if snap in atlas.maps("concepts"):
        return ConceptResult.load(atlas, snap)
    return concepts(atlas, snapshot=snap, class_graphs=False)


def compare_concepts(atlas: "Atlas", other: "Atlas | None" = None, snapshot: str | None = None,
                     other_snapshot: str | None = None, same_layer: bool | None = None) -> ConceptMatch:
    """Concept matching of ``atlas`` at ``snapshot`` against ``other`` at ``other_snapshot``.
    Without ``other``: the atlas's first snapshot against its last (defaults), or the two named;
    with ``other``: each atlas's last snapshot unless named."""
    if other is None:
        other = atlas
        if snapshot is None:
            snapshot = atlas.snapshots[0]
    first = concept_result(atlas, snapshot)
    same = other is atlas and first.snapshot == other.snapshot_name(other_snapshot)
    second = first if same else concept_result(other, other_snapshot)  # an atlas against itself: one result
    return match_concepts(atlas, first, other, second, same_layer=same_layer)
