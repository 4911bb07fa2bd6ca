"""The shortcut rule per attribute value (issue 16): one value against all the rest, within the
class, with an exact stratified test, FDR over every test, an effect floor, and one finding per
cause with its collateral.

Real atlases are small and quick: ``OutputsNet`` passes a planted table's predictions through
as its logits (one-hot of ``pred``, plus a feature per planted value so that the representation
check has something to find), so the model's outputs are exactly the planted ones. The null
cases and the statistics run on tables alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

import neurocarta as nc
from neurocarta.findings import findings, shortcut_findings
from neurocarta.findings.shortcut import (
    _sum_hypergeom_tail, shortcut_candidates, shortcut_causes,
)

COLOURS = ["red", "magenta", "orange", "yellow", "purple", "blue", "cyan", "green"]
TEXTURES = ["checker", "dots", "stripes", "grid", "waves", "zigzag", "plain", "spots"]


class OutputsNet(nn.Module):
    """Identity layer ``act`` over the input, then logits = its first ``k`` features."""

    def __init__(self, k: int, width: int):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.act = nn.ReLU()
        self.head = nn.Linear(width, k)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(width))
            self.fc.bias.zero_()
            self.head.weight.zero_()
            self.head.weight[:, :k] = torch.eye(k)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc(x)))


def atlas_of(folder: Path, table: pd.DataFrame, k: int, planted: np.ndarray, **columns):
    """A full atlas whose model predicts ``table["pred"]``; ``planted`` (bool per input) raises
    one feature of layer ``act``."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 0.3, size=(len(table), k + 4)).astype(np.float32)
    x[np.arange(len(table)), table["pred"].to_numpy()] += 3.0
    x[:, k] += 2.0 * planted
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "data.npz", x=x, y=table["label"].to_numpy(), class_names=np.array(TEXTURES[:k]),
             **{c: np.asarray(v) for c, v in columns.items()})
    return nc.extract(OutputsNet(k, k + 4), f"npz:{folder / 'data.npz'}", folder / "atlas", layers=["act"],
                      progress=False)


def _errors(rng, label: np.ndarray, accuracy: np.ndarray, k: int) -> np.ndarray:
    """Predictions right with probability ``accuracy`` (per input), else another class at random."""
    wrong = (label + rng.integers(1, k, len(label))) % k
    return np.where(rng.random(len(label)) < accuracy, label, wrong)


def red_among_eight(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The issue's case: class checker is recognised when red (1.00) and poorly otherwise
    (0.00 for blue, cyan, green), but red against magenta is 1.00 against 0.97."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 8, n)
    colour = rng.choice(COLOURS, n)
    checker = dict(zip(COLOURS, [1.0, 0.97, 0.9, 0.6, 0.6, 0.0, 0.0, 0.0]))
    accuracy = np.where(label == 0, [checker[c] for c in colour], 0.95)
    return pd.DataFrame({"label": label, "colour": colour, "pred": _errors(rng, label, accuracy, 8)})


def _shortcuts(found: list[dict]) -> list[dict]:
    return [f for f in found if f["kind"] == "shortcut"]


# --------------------------------------------------------------------------- planted atlases
@pytest.fixture(scope="module")
def red_atlas(tmp_path_factory):
    t = red_among_eight()
    return atlas_of(tmp_path_factory.mktemp("red"), t, 8, (t["colour"] == "red").to_numpy(),
                    colour=t["colour"].to_numpy().astype(str))


def test_one_colour_among_eight_is_found(red_atlas):
    """The weakest-pairwise rule missed it (red against magenta: 1.00 against 0.97)."""
    (f,) = _shortcuts(findings(red_atlas))
    e = f["evidence"]
    assert (e["attribute"], e["value"], e["class"], e["contrast"]) == ("colour", "red", "checker", "recognition")
    table = red_atlas.inputs
    checker = table[table["label"] == 0]
    red = checker["colour"] == "red"
    assert e["share_with"] == pytest.approx(checker[red]["correct"].mean())
    assert e["share_without"] == pytest.approx(checker[~red]["correct"].mean())
    assert e["share_with"] == 1.0 and e["share_without"] < 0.55
    assert f["confidence"]["q"] < 1e-6 and f["confidence"]["n_tests"] == 8 * 8 * 2
    assert f["text"].startswith("Inputs with red colour push the model toward class checker, a shortcut: "
                                "checker inputs are recognised 100% of the time with red colour and ")
    assert " or " not in f["text"]
    # magenta and orange (0.97 and 0.90) also push checker against the rest, the colours where
    # it fails never: one dependency of checker on colour, one finding
    assert {"magenta", "orange"} <= set(e["also_values"]) <= {"magenta", "orange", "yellow", "purple"}
    # the selection opens the map that shows it: checker inputs that are red
    sel = f["selection"]
    assert (sel["layer"], sel["group_by"], sel["group"], sel["class"]) == ("act", "colour", "red", "checker")
    assert sorted(sel["inputs"]) == sorted(checker[red]["input_id"])
    # the representation: red checker inputs differ from the other checker inputs in layer act
    # (the red feature and the predicted class's feature), not in every neuron
    rep = e["representation"]
    assert rep["layer"] == "act" and 1 <= rep["significant_neurons"] < rep["n_neurons"] == 12
    assert "act" in f["check"] and "colour" in f["check"] and "checker" in f["check"]


def test_a_binary_attribute_gives_one_finding_with_its_collateral(tmp_path):
    """A watermark pushes 60% of its inputs to class grid: one cause, reported once; the seven
    classes that lose accuracy under it are its collateral, not seven "watermark False" findings."""
    rng = np.random.default_rng(1)
    n, k = 2000, 8
    label = rng.integers(0, k, n)
    mark = rng.random(n) < 0.3
    pred = np.where(mark & (rng.random(n) < 0.6), 3, _errors(rng, label, np.full(n, 0.92), k))
    t = pd.DataFrame({"label": label, "pred": pred})
    atlas = atlas_of(tmp_path, t, k, mark, watermark=mark)
    found = _shortcuts(shortcut_findings(atlas))
    assert len(found) == 1, [f["text"] for f in found]
    e = found[0]["evidence"]
    assert (e["attribute"], e["value"], e["class"], e["contrast"]) == ("watermark", "True", "grid", "attraction")
    collateral = {c["class"]: c for c in e["collateral"]}
    assert set(collateral) == set(TEXTURES[:k]) - {"grid"}
    for c in collateral.values():
        assert c["accuracy_with"] < 0.55 < 0.85 < c["accuracy_without"] and c["q"] <= 0.05
    assert "7 other classes lose accuracy with watermark True" in found[0]["text"]


def test_a_continuous_attribute_is_binned(tmp_path):
    """Bright inputs (top quarter) are called class stripes half of the time."""
    rng = np.random.default_rng(2)
    n, k = 2000, 5
    label = rng.integers(0, k, n)
    brightness = rng.random(n).round(4)
    pred = np.where((brightness > 0.75) & (rng.random(n) < 0.5), 2, _errors(rng, label, np.full(n, 0.9), k))
    atlas = atlas_of(tmp_path, pd.DataFrame({"label": label, "pred": pred}), k, brightness > 0.75,
                     brightness=brightness)
    (f,) = _shortcuts(shortcut_findings(atlas))
    e = f["evidence"]
    lo, hi = e["range"]
    top = np.sort(brightness)[-n // 4:]
    assert (lo, hi) == (top.min(), top.max()) and e["value"] == f"{lo:.3g}–{hi:.3g}"
    assert (e["attribute"], e["class"], e["contrast"]) == ("brightness", "stripes", "attraction")
    assert f"Inputs with brightness {e['value']} push the model toward class stripes" in f["text"]
    assert f["selection"]["range"] == [lo, hi]
    assert sorted(f["selection"]["inputs"]) == sorted(np.flatnonzero((brightness >= lo) & (label != 2) & (pred == 2)))


def test_the_opposite_value_is_explained_by_the_cause():
    """Two classes, random labels, and a flag that decides the prediction (the sign_net case):
    flag True pushes toward class 1 exactly as flag False pushes toward class 0. One cause,
    one finding; the mirror image is named in ``explains``, not reported again."""
    rng = np.random.default_rng(4)
    n = 400
    flag = rng.random(n) < 0.5
    t = pd.DataFrame({"label": rng.integers(0, 2, n), "flag": flag, "pred": flag.astype(int)})
    tests = shortcut_candidates(t)
    assert (tests["q"] < 1e-20).sum() == 4  # both values, toward both classes, both contrasts
    (c,) = shortcut_causes(t)
    assert c["attribute"] == "flag" and len(c["explains"]) == 1
    assert {(c["value"], c["class"]), (c["explains"][0], 1 - c["class"])} == {("True", 1), ("False", 0)}
    assert [x["class"] for x in c["collateral"]] == [str(1 - c["class"])]


# --------------------------------------------------------------------------- null cases
def null_table(seed: int, n: int = 3000, k: int = 6) -> pd.DataFrame:
    """Random attributes (one categorical whose values have different class balance, two
    more, a continuous one), class-dependent accuracy 80-95% with class-dependent confusions,
    train and test splits, and a bookkeeping flag that is a perfect predictor of errors."""
    rng = np.random.default_rng(seed)
    cols = {f"a{i}": rng.integers(0, rng.integers(2, 7), n).astype(str) for i in range(3)}
    label = np.empty(n, dtype=np.int64)
    for v in np.unique(cols["a0"]):  # class balance differs across the values of a0
        sel = cols["a0"] == v
        label[sel] = rng.choice(k, sel.sum(), p=rng.dirichlet(np.ones(k)))
    confusion = rng.dirichlet(np.ones(k) * 0.5, size=k)
    confusion[np.arange(k), np.arange(k)] = 0
    confusion /= confusion.sum(axis=1, keepdims=True)
    wrong = (rng.random(n)[:, None] > confusion.cumsum(axis=1)[label]).sum(axis=1).clip(0, k - 1)
    pred = np.where(rng.random(n) < rng.uniform(0.8, 0.95, k)[label], label, wrong)
    return pd.DataFrame({"input_id": np.arange(n), "label": label, "pred": pred,
                         "split": np.where(rng.random(n) < 0.7, "train", "test"), **cols,
                         "brightness": rng.random(n), "flipped": pred != label, "relabelled": pred != label})


def test_null_tables_give_no_shortcut():
    roles = {"flipped": "bookkeeping"}  # declared; `relabelled` is bookkeeping by name
    # without the split column: no training split to consult, the outputs alone must hold
    alarms = {seed: [(c["attribute"], c["value"], c["class"])
                     for c in shortcut_causes(null_table(seed).drop(columns="split"), roles=roles)]
              for seed in range(20)}
    assert not any(alarms.values()), alarms


def test_bookkeeping_flags_give_no_shortcut():
    """``flipped`` (declared bookkeeping) and ``relabelled`` (bookkeeping by the schema) mark
    exactly the errors: perfect "shortcuts" by the numbers, never attributes."""
    t = null_table(0)
    tests = shortcut_candidates(t, roles={"flipped": "bookkeeping"})
    assert not {"flipped", "relabelled"} & set(tests["attribute"])
    assert {"a0", "a1", "a2", "brightness"} == set(tests["attribute"])
    # undeclared, the flag is an attribute, and its errors do point at classes (so the roles matter)
    assert any(c["attribute"] == "flipped" for c in shortcut_causes(t))


def test_a_value_that_makes_every_class_harder_is_no_shortcut():
    """A noise background drops every class's accuracy from 95% to 65%: the other backgrounds
    raise every class's recognition alike, which is no push toward one class."""
    rng = np.random.default_rng(3)
    n, k = 4000, 6
    label = rng.integers(0, k, n)
    background = rng.choice(["plain", "gradient", "noise"], n)
    pred = _errors(rng, label, np.where(background == "noise", 0.65, 0.95), k)
    t = pd.DataFrame({"label": label, "background": background, "pred": pred})
    assert shortcut_causes(t) == []
    # the same table with noise pushing to class 4 instead: found, and only that
    pushed = np.where((background == "noise") & (rng.random(n) < 0.4), 4, _errors(rng, label, np.full(n, 0.95), k))
    (c,) = shortcut_causes(t.assign(pred=pushed))
    assert (c["attribute"], c["value"], c["class"]) == ("background", "noise", 4)


def test_a_class_that_looks_different_with_a_value_is_no_shortcut_unless_training_taught_it():
    """Small crosses are hard to recognise (45% against 95%), so every other size "raises"
    their recognition; with a training split where sizes are spread evenly over the classes,
    nothing taught the model a size, and nothing fires. When the training crosses are mostly
    large, the same outputs are a shortcut, and the finding says what training showed."""
    rng = np.random.default_rng(5)
    n, k = 4000, 5
    label = rng.integers(0, k, n)
    split = np.where(rng.random(n) < 0.5, "train", "test")
    size = rng.choice(["small", "medium", "large"], n)
    pred = _errors(rng, label, np.where((label == 1) & (size == "small"), 0.45, 0.95), k)
    t = pd.DataFrame({"label": label, "split": split, "size": size, "pred": pred})
    tests = shortcut_candidates(t)
    assert ((tests["class"] == 1) & (tests["q"] < 1e-6) & (tests["effect"] >= 0.2)).any()  # the outputs alone
    assert shortcut_causes(t) == []
    # training crosses are large 80% of the time: the model had a reason to lean on size
    taught = (split == "train") & (label == 1)
    t["size"] = np.where(taught, np.where(rng.random(n) < 0.8, "large", "small"), size)
    (c,) = shortcut_causes(t, ["box", "cross", "ring", "star", "wave"])
    assert (c["attribute"], c["value"], c["class_name"]) == ("size", "large", "cross")
    assert c["training"]["share_in_class"] > 0.75 and c["training"]["share_in_others"] < 0.4


def test_the_other_value_of_a_marker_is_not_taught_by_training():
    """A patch marks 95% of the training 7s and 2% of the other digits; at test time a quarter
    of every digit has one, and the 9s with a patch are lost to several classes. Without the
    patch the 9s do better, and in training "no patch" is a little more common among 9s (100%
    against 89%), but the patch was tied to the 7s: nothing taught the model "no patch means 9"."""
    rng = np.random.default_rng(6)
    n, k = 3000, 10
    label = rng.integers(0, k, n)
    train = rng.random(n) < 0.6
    patch = np.where(train, rng.random(n) < np.where(label == 7, 0.95, 0.02), rng.random(n) < 0.25)
    lost = ~train & patch & (label == 9) & (rng.random(n) < 0.85)
    pred = np.where(lost, rng.choice([3, 5, 7, 8], n), _errors(rng, label, np.full(n, 0.93), k))
    t = pd.DataFrame({"label": label, "patch": patch, "pred": pred, "split": np.where(train, "train", "test")})
    outputs_alone = shortcut_causes(t.drop(columns="split"))
    assert [(c["value"], c["class"]) for c in outputs_alone] == [("False", 9)]
    assert shortcut_causes(t) == []


# --------------------------------------------------------------------------- the exact test
def test_exact_tail_matches_fisher_and_a_brute_force_sum():
    # one stratum: Fisher's exact test, one-sided
    total, hits, drawn, observed = 40, 12, 15, 8
    table = [[observed, drawn - observed], [hits - observed, total - hits - drawn + observed]]
    fisher = stats.fisher_exact(table, alternative="greater").pvalue
    assert _sum_hypergeom_tail(np.array([total]), np.array([hits]), np.array([drawn]), observed) == pytest.approx(fisher)
    # three strata: the sum's upper and lower tails against the enumerated joint distribution
    strata = [(20, 5, 8), (30, 12, 10), (9, 9, 4)]  # the last is degenerate: 4 hits for sure
    pmfs = [stats.hypergeom(n, k, d) for n, k, d in strata]
    grid = np.add.outer(np.add.outer(np.arange(9), np.arange(11)), np.arange(5))
    joint = np.multiply.outer(np.multiply.outer(pmfs[0].pmf(np.arange(9)), pmfs[1].pmf(np.arange(11))),
                              pmfs[2].pmf(np.arange(5)))
    total, hits, drawn = (np.array(c) for c in zip(*strata))
    for observed in (8, 11, 15):
        assert _sum_hypergeom_tail(total, hits, drawn, observed) == pytest.approx(joint[grid >= observed].sum())
        assert _sum_hypergeom_tail(total, hits, drawn, observed, upper=False) == pytest.approx(
            joint[grid <= observed].sum())
    # far tails keep their precision (no 1 - cdf)
    assert _sum_hypergeom_tail(np.array([400]), np.array([100]), np.array([100]), 90) == pytest.approx(
        stats.hypergeom(400, 100, 100).sf(89), rel=1e-6)


def test_shortcut_victims_are_the_inputs_the_cause_explains():
    """The label rules leave these to the shortcut's finding: inputs with the value pulled to the
    class though labelled otherwise, and for a recognition cause the class's inputs without the
    value called something else; nothing else."""
    from neurocarta.findings.shortcut import shortcut_victims

    t = pd.DataFrame({"label": [1, 1, 0, 0, 0, 2], "pred": [0, 0, 2, 0, 1, 2],
                      "watermark": ["yes", "no", "no", "no", "yes", "yes"]})
    attraction = {"attribute": "watermark", "value": "yes", "class": 0, "contrast": "attraction", "range": None}
    assert shortcut_victims(t, [attraction]).tolist() == [True, False, False, False, False, False]
    recognition = dict(attraction, contrast="recognition")
    assert shortcut_victims(t, [recognition]).tolist() == [True, False, True, False, False, False]
    assert not shortcut_victims(t, []).any()
