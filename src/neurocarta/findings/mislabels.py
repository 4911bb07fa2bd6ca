"""The mislabel rule: inputs whose representation sits among another label's inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .common import MAX_SELECTED_INPUTS, class_names, make_finding, mapper_results, pct

if TYPE_CHECKING:
    from ..store import Atlas

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
    results = [r for r in mapper_results(atlas) if "purity" in r.nodes and len(r.nodes)]
    if not results:
        return []
    names = class_names(atlas)
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
                f"among {name(other)} inputs (at least {pct(MISLABEL_MIN_MAJORITY)} of their group): they may be "
                f"mislabelled, or the model confuses the two classes.")
        evidence = {"layer": judge.layer, "label": name(own), "looks_like": name(other), "n_inputs": int(n),
                    "share_of_inputs": n / n_inputs, "mean_majority_share": float(part["majority_share"].mean()),
                    "graph_purity": judge.mean_purity, "n_candidates": int(len(cand))}
        selection = {"layer": judge.layer, "inputs": ids[:MAX_SELECTED_INPUTS]}
        # strength: how pure the surrounding nodes are, and how large the pair is
        strength = 0.5 * float(part["majority_share"].mean()) + 0.5 * min(1.0, n / 50)
        out.append(make_finding("mislabels", text, "inspector", selection, strength, evidence))
    return out

