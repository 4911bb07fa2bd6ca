"""What Mapper graphs say beyond one layer: flows between layers, where classes separate,
and inputs that look mislabelled.

- :func:`flow`: the same inputs sit in nodes of consecutive layers' graphs; the number of
  shared inputs per (node in layer A, node in layer B) pair is Sankey-ready data.
- :func:`separation_layers`: for each class, the first layer whose graph has a component
  or a branch (a leaf and its path to the nearest branch point) holding mostly that class.
- :func:`anomalies`: rank inputs by how strongly the nodes they sit in contradict their
  label: the node's majority class differs from the input's own label, the node is pure in
  that other class, and small or isolated nodes count more. Candidate mislabels and outliers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..defaults import MAPPER_LENS


def flow(a, b, min_shared: int = 1) -> pd.DataFrame:
    """Shared inputs between the nodes of two MapperResults (on the same inputs)."""
    ma, mb = a.members(), b.members()
    joined = ma[["node", "input_id"]].merge(mb[["node", "input_id"]], on="input_id", suffixes=("_a", "_b"))
    out = joined.groupby(["node_a", "node_b"]).size().rename("shared").reset_index()
    out = out[out["shared"] >= min_shared].sort_values("shared", ascending=False, kind="stable")
    out.insert(0, "layer_b", b.layer)
    out.insert(0, "layer_a", a.layer)
    return out.reset_index(drop=True)


def _class_regions(result) -> list[np.ndarray]:
    """Node sets that can hold a class on their own: components, and flares (a leaf up to,
    not including, its nearest branch point)."""
    g = result.graph
    comps = g.components()
    regions = [np.flatnonzero(comps == c) for c in np.unique(comps)]
    degree = np.bincount(g.edges.ravel(), minlength=g.n_nodes)
    neighbours = [[] for _ in range(g.n_nodes)]
    for x, y in g.edges.tolist():
        neighbours[x].append(y)
        neighbours[y].append(x)
    for leaf in np.flatnonzero(degree == 1):
        path, prev, cur = [leaf], -1, leaf
        while True:
            nxt = [v for v in neighbours[cur] if v != prev]
            if len(nxt) != 1 or degree[nxt[0]] >= 3:
                break
            prev, cur = cur, nxt[0]
            path.append(cur)
        regions.append(np.array(path))
    return regions


def separation_layers(results, purity: float = 0.9, min_share: float = 0.5) -> dict[str, str | None]:
    """For each class: the first layer (in the order given) with a component or flare whose
    members are at least ``purity`` that class and hold at least ``min_share`` of the class's
    inputs in the graph. ``None`` when no layer separates it."""
    first: dict[str, str | None] = {}
    classes = sorted({c for r in results if "classes" in r.nodes for h in r.nodes["classes"] for c in h})
    for cls in classes:
        first[cls] = None
        for r in results:
            total = sum(h.get(cls, 0) for h in r.nodes["classes"])
            if not total:
                continue
            for region in _class_regions(r):
                hist: dict[str, int] = {}
                for h in r.nodes["classes"].iloc[region]:
                    for k, v in h.items():
                        hist[k] = hist.get(k, 0) + v
                size = sum(hist.values())
                if size and hist.get(cls, 0) / size >= purity and hist.get(cls, 0) / total >= min_share:
                    first[cls] = r.layer
                    break
            if first[cls] is not None:
                break
    return first


def anomalies(result, table: pd.DataFrame, label: str = "label") -> pd.DataFrame:
    """Inputs ranked by how strongly their nodes contradict their label (highest first).

    Per (input, node): the share of the node's members that carry another single label (the
    node's majority, when it is not the input's own), times a size weight 1 / log2(2 + size)
    so small nodes count more, times 1.5 for a node with no edges. An input's score is the
    largest over its nodes. Columns: input_id, label, node_majority, score.
    """
    node, rows = result.graph.membership()
    labels = table[label].to_numpy()
    own = labels[rows]
    frame = pd.DataFrame({"node": node, "row": rows, "own": own})
    counts = frame.groupby(["node", "own"], observed=True).size().rename("n").reset_index()
    size = frame.groupby("node").size()
    top = counts.sort_values(["node", "n"], ascending=[True, False]).drop_duplicates("node").set_index("node")
    frame["majority"] = frame["node"].map(top["own"])
    frame["majority_share"] = frame["node"].map(top["n"]) / frame["node"].map(size)
    degree = np.bincount(result.graph.edges.ravel(), minlength=result.graph.n_nodes)
    isolated = np.where(degree[frame["node"].to_numpy()] == 0, 1.5, 1.0)
    weight = 1.0 / np.log2(2.0 + frame["node"].map(size).to_numpy())
    contradict = (frame["majority"].to_numpy() != frame["own"].to_numpy()).astype(float)
    frame["score"] = contradict * frame["majority_share"].to_numpy() * weight * isolated
    best = frame.sort_values("score", ascending=False, kind="stable").drop_duplicates("row")
    out = pd.DataFrame({"input_id": result.input_ids[best["row"].to_numpy()], "label": best["own"].to_numpy(),
                        "node_majority": best["majority"].to_numpy(), "score": best["score"].to_numpy()})
    return out.sort_values(["score", "input_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def sweep(x: np.ndarray, table: pd.DataFrame | None = None, intervals=(10, 15, 20, 30), overlaps=(0.2, 0.3, 0.4, 0.5),
          **params) -> pd.DataFrame:
    """Mapper over a grid of intervals x overlap: nodes, edges, components, coverage and (with
    a ``label`` column in ``table``) member-weighted purity, plus each setting's instability.

    Instability of a setting: the mean relative change of its node count, component count
    and purity towards its grid neighbours (one step in intervals or overlap): a stable
    setting is one whose graph does not hinge on the exact parameters. See
    :func:`pick_stable` for the rule that picks the defaults.
    """
    from .estimator import Mapper
    from .graph import node_table
    from .lens import compute_lens, row_norms

    rows = []
    eps = params.pop("eps", None)
    # The lens and the norms do not depend on the cover: compute them once for the grid.
    lens = compute_lens(x, params.pop("lens", MAPPER_LENS), table, params.get("seed", 0))
    norms = row_norms(x)
    for n in intervals:
        for p in overlaps:
            m = Mapper(intervals=n, overlap=p, eps=eps, **params).fit(x, table=table, lens_values=lens)
            eps = m.eps_ if eps is None else eps  # one eps for the whole grid
            g = m.graph_
            row = {"intervals": n, "overlap": p, "n_nodes": g.n_nodes, "n_edges": g.n_edges,
                   "n_components": g.shape()["n_components"],
                   "coverage": np.unique(np.concatenate(g.nodes)).size / len(x) if g.nodes else 0.0}
            if table is not None and "label" in table.columns and g.n_nodes:
                nt = node_table(g, table, m.lens_, norms, label="label")
                row["purity"] = float((nt["purity"] * nt["size"]).sum() / nt["size"].sum())
            rows.append(row)
    out = pd.DataFrame(rows)
    keys = [c for c in ("n_nodes", "n_components", "purity") if c in out]
    grid = {(r.intervals, r.overlap): r for r in out.itertuples()}
    iv, ov = list(intervals), list(overlaps)
    instability = []
    for r in out.itertuples():
        i, j = iv.index(r.intervals), ov.index(r.overlap)
        near = [grid[(iv[a], ov[b])] for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))
                if 0 <= a < len(iv) and 0 <= b < len(ov)]
        change = [abs(getattr(q, k) - getattr(r, k)) / max(abs(getattr(r, k)), 1e-9) for q in near for k in keys]
        instability.append(float(np.mean(change)) if change else 0.0)
    out["instability"] = instability
    out["eps"] = eps
    return out


def pick_stable(table: pd.DataFrame, min_coverage: float = 0.9) -> dict:
    """The setting the stability rule picks from a :func:`sweep` table.

    1. Keep settings whose nodes cover at least ``min_coverage`` of the inputs (DBSCAN noise
       and skipped intervals drop inputs).
    2. Of those, keep the stable half: instability at or below their median.
    3. Take the highest class purity (without labels: the lowest instability); ties go to
       fewer intervals, then less overlap.

    On demo-cnn's ``head.relu`` (PCA lens, cosine) this picks 30 intervals and 0.2 overlap, the
    defaults of ``mapper()``; so it does on features.block4 and head.fc2.
    """
    t = table[table["coverage"] >= min_coverage]
    t = t if len(t) else table
    t = t[t["instability"] <= t["instability"].median()]
    by = (["purity"] if "purity" in t else []) + ["instability", "intervals", "overlap"]
    ascending = ([False] if "purity" in t else []) + [True, True, True]
    best = t.sort_values(by, ascending=ascending, kind="stable").iloc[0]
    return {"intervals": int(best["intervals"]), "overlap": float(best["overlap"])}
