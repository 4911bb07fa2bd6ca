"""Findings against planted truth: precision, recall and false alarms per finding kind.

    .venv/bin/python benchmarks/bench_findings.py [--quick] [--scenario NAME ...] [--json OUT]
                                                  [--no-scale] [--cache DIR]

Each scenario of benchmarks/findings_scenarios.py is generated, a tiny model trained on it,
extracted and mapped as ``neurocarta map`` does (cached under ~/.cache/neurocarta/bench_findings:
rules change, atlases do not), and then ``neurocarta.findings.findings`` is run and scored
against the plant, through the public contract only (``kind``, ``selection["inputs"]``,
``evidence["attribute" / "value" / "class"]``):

- shortcut: a finding is right when its attribute, value (any value for a continuous attribute)
  and class are the planted ones; one right finding per plant, every other shortcut finding is
  wrong (a collateral class of the same attribute included: one cause, one finding);
- mislabels: the inputs of its selection against the flipped inputs;
- confusion: right when at least 90% of its inputs carry their true label (labels fine);
- the other kinds have no plant: they are counted, and on null scenarios every finding of a
  problem kind (shortcut, mislabels, confusion, underperforming, outlier, duplicate) is a false
  alarm.

On every noise scenario the mislabel ranking is compared at precision@k (k = the planted flips)
with cleanlab's ``find_label_issues`` on the model's own predicted probabilities, the loss on the
given label, and a kNN label-disagreement score in the activations of a late layer. The findings
of a 10k-input atlas are timed. Goals print PASS or FAIL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import findings_scenarios as fs  # noqa: E402

import neurocarta.findings as nf  # noqa: E402

#: kinds that claim a problem: any of them on a null scenario is a false alarm
PROBLEM_KINDS = ("shortcut", "mislabels", "confusion", "underperforming", "outlier", "duplicate")
#: neighbours of the kNN label-disagreement baseline
KNN_K = 10
#: a confusion finding is right when this share of its inputs carry their true label
CONFUSION_LABELS_FINE = 0.9


# --- the findings under test ------------------------------------------------------------------

def _rules() -> list:
    """Every public rule of the findings package (``*_findings``), so each is timed apart."""
    return [getattr(nf, name) for name in nf.__all__ if name.endswith("_findings")]


def run_findings(atlas) -> tuple[list[dict], float, dict[str, dict]]:
    """``findings(atlas)``, its seconds, and per rule: its seconds and the kinds it emitted."""
    t0 = time.perf_counter()
    found = nf.findings(atlas)
    total = time.perf_counter() - t0
    snap = atlas.snapshot_name(None)
    per_rule = {}
    for rule in _rules():
        t0 = time.perf_counter()
        out = rule(atlas, snap)
        per_rule[rule.__name__] = {"seconds": time.perf_counter() - t0, "kinds": sorted({f["kind"] for f in out})}
    return found, total, per_rule


def finding_inputs(f: dict) -> set[int]:
    ids = f.get("selection", {}).get("inputs") or f.get("evidence", {}).get("inputs") or []
    return {int(i) for i in ids}


# --- scoring ------------------------------------------------------------------------------------

def is_planted_shortcut(f: dict, plant: dict) -> bool:
    ev = f.get("evidence", {})
    if str(ev.get("attribute")) != plant["attribute"] or str(ev.get("class")) != plant["class"]:
        return False
    return plant["continuous"] or str(ev.get("value")) == plant["value"]


def score_shortcuts(found: list[dict], truth: dict) -> dict[str, Any]:
    shortcuts = [f for f in found if f["kind"] == "shortcut"]
    plant = truth.get("shortcut")
    if plant and not plant["reliance"]["learned"]:
        plant = None  # the model did not learn it: a finding about it claims what is not there
    right = [f for f in shortcuts if plant and is_planted_shortcut(f, plant)]
    tp = min(1, len(right))
    wrong = [f for f in shortcuts if not (right and f is right[0])]  # by identity: a repeat is wrong too
    collateral = [f for f in wrong if plant and str(f.get("evidence", {}).get("attribute")) == plant["attribute"]]
    return {"n": len(shortcuts), "tp": tp, "fp": len(wrong), "collateral": len(collateral),
            "planted": int(plant is not None),
            "found": bool(tp), "wrong": [f["text"] for f in wrong][:5]}


def score_mislabels(found: list[dict], truth: dict, given: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    flagged: set[int] = set()
    findings = [f for f in found if f["kind"] == "mislabels"]
    for f in findings:
        flagged |= finding_inputs(f)
    flipped = set(truth["flipped"])
    hit = flagged & flipped
    right_model = [i for i in flagged if i not in flipped and pred[i] == given[i]]
    return {"n": len(findings), "flagged": len(flagged), "tp_inputs": len(hit), "planted_inputs": len(flipped),
            "flagged_model_right": len(right_model)}


def score_confusion(found: list[dict], truth: dict) -> dict[str, Any]:
    flipped = set(truth["flipped"])
    out = {"n": 0, "tp": 0, "unverifiable": 0}
    for f in (f for f in found if f["kind"] == "confusion"):
        out["n"] += 1
        ids = finding_inputs(f)
        if not ids:
            out["unverifiable"] += 1
        elif len(ids - flipped) >= CONFUSION_LABELS_FINE * len(ids):
            out["tp"] += 1
    return out


def score_inputs(found: list[dict], kind: str, truth_ids: set[int], planted: set[int]) -> dict[str, Any]:
    """A finding of a data-hygiene kind is right when at least half its inputs are in the truth
    (planted, or for duplicates also exact copies the generator made); recall counts the planted
    inputs its findings cover."""
    out = {"n": 0, "tp": 0, "unverifiable": 0, "planted_inputs": len(planted), "covered": 0}
    covered: set[int] = set()
    for f in (f for f in found if f["kind"] == kind):
        out["n"] += 1
        ids = finding_inputs(f)
        covered |= ids
        if not ids:
            out["unverifiable"] += 1
        elif len(ids & truth_ids) >= 0.5 * len(ids):
            out["tp"] += 1
    out["covered"] = len(covered & planted)
    return out


# --- mislabel rankings --------------------------------------------------------------------------

def precision_at_k(ranking: list[int], flipped: set[int]) -> float:
    k = len(flipped)
    return len(set(ranking[:k]) & flipped) / k if k else float("nan")


def our_ranking(atlas, found: list[dict]) -> tuple[list[int], str]:
    """``label_issue_ranking`` when the package has it, else the mislabel findings' inputs in
    the order of the findings."""
    import importlib

    for module in ("neurocarta.findings.labels", "neurocarta.findings.mislabels"):
        try:
            rank = getattr(importlib.import_module(module), "label_issue_ranking", None)
        except ImportError:
            rank = None
        if rank is not None:
            break
    if rank is not None:
        table = rank(atlas)
        return [int(i) for i in table["input_id"]], "label_issue_ranking"
    ids: list[int] = []
    for f in found:
        if f["kind"] == "mislabels":
            ids += [i for i in (f.get("selection", {}).get("inputs") or []) if i not in ids]
    return [int(i) for i in ids], "mislabel findings"


def cleanlab_ranking(given: np.ndarray, probs: np.ndarray) -> list[int]:
    """cleanlab's ``find_label_issues`` ranked by self-confidence, then every other input in
    the same order (so the top k exists when it flags fewer than k)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    issues = find_label_issues(labels=given, pred_probs=probs, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(given, probs, method="self_confidence")
    rest = [int(i) for i in np.argsort(quality, kind="stable") if i not in set(issues.tolist())]
    return [int(i) for i in issues] + rest


def loss_ranking(given: np.ndarray, probs: np.ndarray) -> list[int]:
    loss = -np.log(np.clip(probs[np.arange(len(given)), given], 1e-12, None))
    return [int(i) for i in np.argsort(-loss, kind="stable")]


def knn_ranking(atlas, layer: str, given: np.ndarray) -> list[int]:
    """Inputs whose nearest neighbours in ``layer`` (distance-weighted) carry other labels."""
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(atlas.activations(layer)[:], dtype=np.float32)
    ids = atlas.row_table(layer)["input_id"].to_numpy()
    dist, idx = NearestNeighbors(n_neighbors=KNN_K + 1).fit(x).kneighbors(x)
    dist, idx = dist[:, 1:], idx[:, 1:]  # each point is its own nearest neighbour
    w = 1.0 / (dist + 1e-6)
    labels = given[ids]
    disagree = (w * (labels[idx] != labels[:, None])).sum(1) / w.sum(1)
    return [int(ids[i]) for i in np.argsort(-disagree, kind="stable")]


def mislabel_rankings(b: fs.Built, atlas, found: list[dict], given: np.ndarray) -> dict[str, Any]:
    flipped = set(b.truth["flipped"])
    ours, source = our_ranking(atlas, found)
    p = {"ours": precision_at_k(ours, flipped),
         "cleanlab": precision_at_k(cleanlab_ranking(given, b.probs), flipped),
         "loss": precision_at_k(loss_ranking(given, b.probs), flipped),
         "knn": precision_at_k(knn_ranking(atlas, b.truth["late_layer"], given), flipped)}
    return {"k": len(flipped), "ours_from": source, **{k: round(v, 3) for k, v in p.items()}}


# --- one scenario -------------------------------------------------------------------------------

def evaluate(b: fs.Built) -> dict[str, Any]:
    atlas = b.atlas()
    found, seconds, per_rule = run_findings(atlas)
    given = atlas.input_table.sort_values("input_id")["label"].to_numpy()
    pred = b.probs.argmax(1)
    natural = {"duplicate": set(b.truth.get("duplicate_natural", []))}
    kinds = defaultdict(int)
    for f in found:
        kinds[f["kind"]] += 1
    out = {"scenario": b.scenario.name, "null": b.scenario.null, "n": b.truth["n"],
           "accuracy_test": round(b.truth["accuracy_test"], 3), "findings_seconds": round(seconds, 2),
           "rules": {k: {"seconds": round(v["seconds"], 2), "kinds": v["kinds"]} for k, v in per_rule.items()},
           "kinds": dict(kinds), "shortcut": score_shortcuts(found, b.truth),
           "mislabels": score_mislabels(found, b.truth, given, pred), "confusion": score_confusion(found, b.truth),
           **{kind: score_inputs(found, kind, set(b.truth.get(kind, [])) | natural.get(kind, set()),
                                 set(b.truth.get(kind, [])))
              for kind in ("outlier", "duplicate", "underperforming")},
           "texts": [f"[{f['kind']}] {f['text']}" for f in found]}
    if b.truth.get("shortcut"):
        out["reliance"] = b.truth["shortcut"]["reliance"]
    if b.truth["flipped"]:
        out["ranking"] = mislabel_rankings(b, atlas, found, given)
    return out


# --- the summary ----------------------------------------------------------------------------------

def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def summarise(results: list[dict]) -> dict[str, dict]:
    """Per kind: findings on flawed scenarios, right ones, precision, recall, findings on null
    scenarios, and the seconds of the rule that emits the kind (summed over scenarios)."""
    flawed = [r for r in results if not r["null"]]
    nulls = [r for r in results if r["null"]]
    rule_of: dict[str, str] = {}
    for r in results:
        for rule, info in r["rules"].items():
            for kind in info["kinds"]:
                rule_of.setdefault(kind, rule)
    table = {}
    for kind in nf.KINDS:
        n = sum(r["kinds"].get(kind, 0) for r in flawed)
        null_n = sum(r["kinds"].get(kind, 0) for r in nulls)
        row: dict[str, Any] = {"findings": n, "null_findings": null_n,
                               "null_false": null_n if kind in PROBLEM_KINDS else None}
        if kind == "shortcut":
            tp = sum(r["shortcut"]["tp"] for r in flawed)
            planted = sum(r["shortcut"]["planted"] for r in flawed)
            row.update(tp=tp, planted=planted, precision=_ratio(tp, n), recall=_ratio(tp, planted),
                       collateral=sum(r["shortcut"]["collateral"] for r in flawed))
        elif kind == "mislabels":
            flagged = sum(r["mislabels"]["flagged"] for r in flawed)
            tp = sum(r["mislabels"]["tp_inputs"] for r in flawed)
            planted = sum(r["mislabels"]["planted_inputs"] for r in flawed)
            row.update(tp=tp, flagged_inputs=flagged, planted=planted, precision=_ratio(tp, flagged),
                       recall=_ratio(tp, planted),
                       null_flagged_inputs=sum(r["mislabels"]["flagged"] for r in nulls),
                       null_flagged_model_right=sum(r["mislabels"]["flagged_model_right"] for r in nulls))
        elif kind in ("confusion", "outlier", "duplicate", "underperforming"):
            tp = sum(r[kind]["tp"] for r in flawed)
            row.update(tp=tp, precision=_ratio(tp, n - sum(r[kind]["unverifiable"] for r in flawed)))
            if kind != "confusion":
                row["recall"] = _ratio(sum(r[kind]["covered"] for r in flawed),
                                       sum(r[kind]["planted_inputs"] for r in flawed))
            # a null scenario's model may truly confuse two classes, and its data hold copies the
            # generator made by chance: such findings are true, not false alarms
            row["null_false"] = sum(r[kind]["n"] - r[kind]["tp"] for r in nulls)
        rule = rule_of.get(kind) or next((name for name in results[0]["rules"] if name.startswith(kind[:6])), None)
        row["rule"] = rule
        row["seconds"] = round(sum(r["rules"][rule]["seconds"] for r in results), 2) if rule else None
        table[kind] = row
    return table


def goals(results: list[dict], table: dict, scale_seconds: float | None) -> list[tuple[str, bool | None, str]]:
    nulls = [r for r in results if r["null"]]
    noisy = [r for r in results if "ranking" in r]
    sc = table["shortcut"]
    out: list[tuple[str, bool | None, str]] = [
        ("shortcut recall >= 0.9", None if sc["recall"] is None else sc["recall"] >= 0.9,
         f"{sc['tp']}/{sc['planted']} learned plants found"),
        ("0 shortcut findings on null scenarios", sc["null_findings"] == 0 if nulls else None,
         f"{sc['null_findings']} on {len(nulls)} null scenarios"),
    ]
    for r in noisy:
        k = r["ranking"]
        best = max(k["cleanlab"], k["loss"], k["knn"])
        out.append((f"mislabels p@k >= baselines on {r['scenario']}", k["ours"] >= best,
                    f"ours {k['ours']:.2f} (k={k['k']}), cleanlab {k['cleanlab']:.2f}, loss {k['loss']:.2f}, "
                    f"knn {k['knn']:.2f}"))
    ml = table["mislabels"]
    out.append(("0 mislabel findings on null scenarios where the model is right",
                ml["null_flagged_model_right"] == 0 if nulls else None,
                f"{ml['null_flagged_model_right']} flagged inputs the model gets right "
                f"({ml['null_flagged_inputs']} flagged in all)"))
    out.append(("findings on 10k inputs < 30 s", None if scale_seconds is None else scale_seconds < 30,
                "not run" if scale_seconds is None else f"{scale_seconds:.1f} s"))
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def markdown(results: list[dict], table: dict, goal_rows: list, scale: dict | None) -> str:
    lines = ["| kind | findings (flawed) | right | precision | recall | null findings (false alarms) | "
             "rule seconds (all) |",
             "|---|---|---|---|---|---|---|"]
    for kind, row in table.items():
        right = row.get("tp")
        if kind == "shortcut":
            right = f"{row['tp']} of {row['planted']} plants"
        elif kind == "mislabels":
            right = f"{row['tp']} of {row['flagged_inputs']} inputs ({row['planted']} flipped)"
        lines.append(f"| {kind} | {row['findings']} | {_fmt(right)} | {_fmt(row.get('precision'))} | "
                     f"{_fmt(row.get('recall'))} | {row['null_findings']} ({_fmt(row['null_false'])}) | "
                     f"{_fmt(row['seconds'])} |")
    lines += ["", "| scenario | test acc | reliance (recall / attraction) | shortcut found | wrong shortcuts | "
                  "mislabel findings (flagged, right) | findings s |", "|---|---|---|---|---|---|---|"]
    for r in results:
        rel = r.get("reliance")
        rel_s = f"{rel['recall_difference']:+.2f} / {rel['attraction_difference']:+.2f}" if rel else "-"
        found = ("yes" if r["shortcut"]["found"] else "no") if rel else "-"
        ml = r["mislabels"]
        lines.append(f"| {r['scenario']} | {r['accuracy_test']:.2f} | {rel_s} | {found} | {r['shortcut']['fp']} | "
                     f"{ml['n']} ({ml['flagged']}, {ml['tp_inputs']}) | {r['findings_seconds']:.1f} |")
    ranked = [r for r in results if "ranking" in r]
    if ranked:
        lines += ["", "| noise scenario | k | ours | cleanlab | loss | kNN |", "|---|---|---|---|---|---|"]
        for r in ranked:
            k = r["ranking"]
            lines.append(f"| {r['scenario']} | {k['k']} | {k['ours']:.2f} | {k['cleanlab']:.2f} | "
                         f"{k['loss']:.2f} | {k['knn']:.2f} |")
        lines.append(f"\nours = {ranked[0]['ranking']['ours_from']}")
    if scale:
        lines.append(f"\n10k atlas ({scale['n']} inputs): findings {scale['seconds']:.1f} s, "
                     f"{scale['findings']} findings")
    lines += [""] + [f"- {'PASS' if ok else ('n/a ' if ok is None else 'FAIL')} {name}: {why}"
                     for name, ok, why in goal_rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"a subset: {', '.join(fs.QUICK)}")
    p.add_argument("--scenario", nargs="+", default=None, metavar="NAME",
                   help="only these scenarios: " + ", ".join(s.name for s in fs.SCENARIOS))
    p.add_argument("--no-scale", action="store_true", help="skip timing findings on the 10k-input atlas")
    p.add_argument("--cache", type=Path, default=fs.CACHE, help="where built atlases are kept")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    a = p.parse_args(argv)
    by_name = {s.name: s for s in fs.SCENARIOS}
    names = a.scenario or (fs.QUICK if a.quick else list(by_name))
    unknown = [n for n in names if n not in by_name]
    if unknown:
        p.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(by_name)}")
    results = []
    for name in names:
        built = fs.build(by_name[name], a.cache, log=lambda m: print(m, file=sys.stderr))
        r = evaluate(built)
        results.append(r)
        print(f"{name}: {dict(r['kinds'])} in {r['findings_seconds']:.1f} s", file=sys.stderr)
    scale = None
    if not a.no_scale and not a.scenario:
        built = fs.build(fs.SCALE, a.cache, log=lambda m: print(m, file=sys.stderr))
        atlas = built.atlas()
        t0 = time.perf_counter()
        found = nf.findings(atlas)
        seconds = time.perf_counter() - t0
        scale = {"n": built.truth["n"], "seconds": round(seconds, 2), "findings": len(found)}
    table = summarise(results)
    goal_rows = goals(results, table, scale["seconds"] if scale else None)
    print(markdown(results, table, goal_rows, scale))
    report = {"scenarios": results, "kinds": table, "scale": scale,
              "goals": [{"goal": g, "pass": ok, "detail": why} for g, ok, why in goal_rows]}
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
