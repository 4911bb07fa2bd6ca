"""The findings benchmark (benchmarks/bench_findings.py) runs end to end on one tiny scenario, and
its scoring counts what it says: so the benchmark cannot rot between runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_findings as bf  # noqa: E402
import findings_scenarios as fs  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 400-input texture set with a red-checker colour shortcut and 5% uniform flips,
    extracted without maps (a few seconds)."""
    s = fs.Scenario("tiny", "textures", n=400, seed=3, shortcut=("colour", "red", "checker", 0.95),
                    noise=(0.05, "uniform"), epochs=3, maps=False)
    return fs.build(s, tmp_path_factory.mktemp("bench"), log=lambda m: None)


def test_the_plant_is_in_the_training_split_only_and_the_flips_are_bookkeeping(tiny):
    atlas = tiny.atlas()
    t = atlas.input_table
    checker = t["label"] == tiny.truth["class_names"].index("checker")
    truly_checker = np.asarray(tiny.truth["true_labels"]) == tiny.truth["class_names"].index("checker")
    train, red = t["split"] == "train", t["colour"] == "red"
    # 95% red among the training checkers; the test split keeps the random 1 in 8
    assert red[train & truly_checker].mean() > 0.85
    assert red[~train & truly_checker].mean() < 0.35
    assert red[train & ~truly_checker].mean() < 0.06
    assert len(tiny.truth["flipped"]) == 20  # 5% of 400
    assert sorted(np.flatnonzero(t["flipped"].to_numpy())) == tiny.truth["flipped"]
    assert atlas.column_roles["flipped"] == "bookkeeping"
    assert (t["label"].to_numpy() != np.asarray(tiny.truth["true_labels"])).sum() == 20
    assert checker.sum() > 0 and tiny.probs.shape == (400, 6)


def test_evaluate_scores_the_findings_against_the_plant(tiny):
    r = bf.evaluate(tiny)
    assert r["scenario"] == "tiny" and r["n"] == 400 and not r["null"]
    # precision@k of every ranking is a share of the 20 flips
    k = r["ranking"]
    assert k["k"] == 20
    for name in ("ours", "cleanlab", "loss", "knn"):
        assert 0.0 <= k[name] <= 1.0 and abs(k[name] * 20 - round(k[name] * 20)) < 1e-6
    assert r["shortcut"]["n"] == r["kinds"].get("shortcut", 0)
    assert r["shortcut"]["tp"] + r["shortcut"]["fp"] == r["shortcut"]["n"]


def test_shortcut_scoring_counts_one_right_finding_per_plant_and_collateral_as_wrong():
    plant = {"attribute": "colour", "value": "red", "class": "checker", "continuous": False,
             "reliance": {"learned": True}}

    def shortcut(value: str, cls: str) -> dict:
        return {"kind": "shortcut", "text": f"{value} {cls}",
                "evidence": {"attribute": "colour", "value": value, "class": cls}}

    found = [shortcut("red", "checker"), shortcut("red", "checker"), shortcut("blue", "dots")]
    s = bf.score_shortcuts(found, {"shortcut": plant})
    assert (s["tp"], s["fp"], s["collateral"], s["planted"]) == (1, 2, 2, 1)
    # a plant the model did not learn is no truth: the finding about it is wrong
    unlearned = {**plant, "reliance": {"learned": False}}
    s = bf.score_shortcuts(found[:1], {"shortcut": unlearned})
    assert (s["tp"], s["fp"], s["planted"]) == (0, 1, 0)


def test_rankings_and_baselines_on_known_values():
    flipped = {3, 7}
    assert bf.precision_at_k([7, 1, 3], flipped) == 0.5
    given = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    assert bf.loss_ranking(given, probs) == [2, 3, 1, 0]
