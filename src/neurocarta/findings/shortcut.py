"""The shortcut rule: attribute values that push the model toward one class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd

from ..store.schema import ATTRIBUTE, categorical_columns
from .common import MAX_SELECTED_INPUTS, class_names, make_finding, pct

if TYPE_CHECKING:
    from ..store import Atlas

#: shortcut: the smallest difference in the share of predictions of the class, with the value
#: against without it, inside the same true label (and split)
SHORTCUT_MIN_DIFFERENCE = 0.3
#: shortcut: the stratified two-proportion z statistic must pass this (a strict guard: many
#: values x classes are tested, and 4 sigma keeps chance out even across hundreds of tests)
SHORTCUT_MIN_Z = 4.0
#: shortcut: inputs needed on each side of a contrast (with the value, without it)
SHORTCUT_MIN_COUNT = 10


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
    names = class_names(atlas)
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
            how = f"{cls} inputs are recognised {pct(r['share_with'])} of the time with {noun}"
        else:
            how = f"inputs of other classes are called {cls} {pct(r['share_with'])} of the time with {noun}"
        text = (f"Inputs with {noun} push the model toward class {cls}, a possible shortcut: "
                f"{how}, at most {pct(r['share_without'])} with any other {col}.")
        chosen = t[(t[col].astype(str) == v) & (t["pred"] == r["class"])]["input_id"].to_numpy()
        selection = {"layer": layer, "group_by": col, "group": v, "class": cls,
                     "inputs": np.sort(chosen)[:MAX_SELECTED_INPUTS]}
        evidence = {key: r[key] for key in ("attribute", "value", "contrast", "share_with", "share_without",
                                            "versus", "difference", "z", "n_with", "n_without")}
        evidence["class"] = cls
        out.append(make_finding("shortcut", text, "topomap", selection, r["difference"], evidence))
    return out

