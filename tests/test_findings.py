"""Findings in plain language: the planted flaws of the built-in data must be found.

One demo-cnn is trained on shapes with a planted shortcut (every training circle sits on the
noise background: ``bias=1``) and planted mislabels (a fifth of the training crosses carry
the label star: ``relabel=cross->star,relabel_fraction=0.2``). Its atlas holds every input,
both splits, with two snapshots; the maps are built as ``neurocarta map`` builds them, and
the findings must name the shortcut and the mislabelled inputs.

(At the default ``relabel_fraction=0.9`` the wrong label is the class's majority label: no
rule that reads labels can tell which crosses are "mislabelled", and the model learns
crosses as stars. The topomap use-case test covers that case as the errors use case.)
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

import neurocarta as nc
from neurocarta.cli import main
from neurocarta.findings import KINDS, findings, has_maps, shortcut_candidates
from neurocarta.models.demo_cnn import load_demo_cnn

pytestmark = pytest.mark.slow

DATA = "shapes:n=8000,bias=1,relabel=cross->star,relabel_fraction=0.2"
# 6 epochs of 6,400 training images (600 steps). With 5,000 images (375 steps) the model was on a
# knife edge: on another CPU (an AVX2-only host, other float rounding) seed 0 still mixed
# crosses and stars (test accuracy 0.78), the planted pair drowned in the model's own
# confusions, and this test failed; 10 epochs instead memorised the wrong labels (recall 0.15).
# At 8,000 images, seeds 0, 1 and 2 on that CPU: 77-86 star-looks-like-cross, precision 0.88-0.98.
EPOCHS = 6
LAYERS = ["features.block4", "head.relu", "head.fc2"]
VIEWS = {"topomap", "projection", "graph", "mapper", "inspector"}


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    source = nc.load_data(DATA)
    # NEUROCARTA_TEST_CACHE: reuse a trained model across runs while working on this file
    cache = os.environ.get("NEUROCARTA_TEST_CACHE") or tmp_path_factory.mktemp("cache")
    bundle = load_demo_cnn(source, epochs=EPOCHS, cache_dir=cache, progress=False)
    ckpts = bundle.info["checkpoints"]
    atlas = nc.extract(bundle, source, tmp_path_factory.mktemp("findings") / "atlas", layers=LAYERS,
                       snapshots=[ckpts[0], ckpts[-1]], progress=False)
    for layer in LAYERS:
        nc.mapper(atlas, layer, save=True)
    nc.concepts(atlas, layers=["features.block4", "head.relu"], save=True)
    nc.topomap(atlas, "head.relu", group_by="label", snapshots="all", save=True)
    return atlas


@pytest.fixture(scope="module")
def found(atlas):
    return findings(atlas)


def _of(found, kind):
    return [f for f in found if f["kind"] == kind]


def test_findings_are_plain_json_sorted_by_score(found):
    assert found
    assert json.loads(json.dumps(found)) == found
    assert [f["score"] for f in found] == sorted((f["score"] for f in found), reverse=True)
    for f in found:
        assert f["kind"] in KINDS and f["view"] in VIEWS and isinstance(f["selection"], dict)
        assert f["text"].endswith(".") and "\n" not in f["text"]
        assert 0 <= f["score"] <= 1


def test_planted_shortcut_noise_background_toward_circle(found):
    shortcuts = _of(found, "shortcut")
    assert shortcuts, "the planted shortcut was not found"
    top = shortcuts[0]
    assert top["selection"]["group_by"] == "background" and top["selection"]["group"] == "noise"
    assert top["selection"]["class"] == "circle"
    assert "noise background" in top["text"] and "class circle" in top["text"] and "shortcut" in top["text"]
    e = top["evidence"]
    assert e["difference"] > 0.5 and top["confidence"]["q"] < 1e-6
    # backed by the map it links to: circles on noise differ from other circles in head.relu
    assert e["representation"]["layer"] == top["selection"]["layer"] == "head.relu"
    assert e["representation"]["significant_neurons"] > 0
    # one cause, one finding: no "plain/gradient background pushes toward class X" beside it
    assert len(shortcuts) == 1
    # nothing else looks like a shortcut: the planted one is the only strong dependency
    assert all(f["selection"]["class"] == "circle" for f in shortcuts)
    # and the label-equivalent `shape` column is never reported as a "shortcut"
    assert not any(f["selection"]["group_by"] == "shape" for f in shortcuts)


def test_planted_mislabels_are_found(atlas, found):
    (f,) = _of(found, "mislabels")  # one finding for the layer, its pairs in the evidence
    table = atlas.inputs.set_index("input_id")
    planted = table["relabelled"]
    ids = np.asarray(f["selection"]["inputs"])
    pairs = {(p["label"], p["looks_like"]): p["n"] for p in f["evidence"]["pairs"]}
    precision = planted.loc[ids].mean()
    print(f"mislabels: {len(ids)} inputs, precision {precision:.2f}, recall {planted.loc[ids].sum() / planted.sum():.2f}"
          f", star-looks-like-cross {pairs.get(('star', 'cross'), 0)}; base rate {planted.mean():.3f}")
    assert max(pairs, key=pairs.get) == ("star", "cross") and pairs[("star", "cross")] >= 15
    # the planted pair is found clean (measured on the AVX2 CPU: 86 of the 88 inputs) ...
    pair = ids[((table.loc[ids, "label_name"] == "star") & (table.loc[ids, "pred_name"] == "cross")).to_numpy()]
    assert planted.loc[pair].mean() >= 0.9
    # ... and every pair together is still strongly enriched in the planted mislabels (measured:
    # 88 inputs, precision 0.98 against a base rate of 0.022; at 5,000 images on a faster CPU,
    # 66 inputs and 0.53: a weaker model's own errors join them)
    assert precision > 5 * planted.mean()
    # the model predicts another class than the given label for every one of them
    assert (table.loc[ids, "pred"] != table.loc[ids, "label"]).all()
    assert f["text"].startswith(f"{len(ids)} inputs look mislabelled: in layer head.relu")
    assert f["selection"]["layer"] == "head.relu" and f["view"] == "mapper" and f["selection"]["nodes"]
    # the circles off their shortcut background that the model calls hexagon are the model's
    # error, not wrong labels
    assert ("circle", "hexagon") not in pairs


def test_separation_concept_and_training_findings(found):
    sep = _of(found, "separation")
    assert sep and all(f["selection"]["layer"] in LAYERS and f["selection"]["nodes"] for f in sep)
    assert all(" from the others at layer" in f["text"] for f in sep)
    assert len({f["selection"]["layer"] for f in sep}) == len(sep)  # one finding per layer, naming its classes
    concepts = _of(found, "concept")
    assert concepts and len({f["selection"]["layer"] for f in concepts}) == len(concepts)  # one per layer
    for f in concepts:
        assert "coherence" in f["text"] and "random groups" in f["text"]
        clusters = f["evidence"]["clusters"]
        assert all(c["coherence"] >= c["random_coherence"] + 0.2 and c["p"] <= f["confidence"]["p"] for c in clusters)
        assert len(f["selection"]["neurons"]) == sum(c["size"] for c in clusters)
    (training,) = _of(found, "training")
    sep = training["evidence"]["separation"]
    assert list(sep) == ["epoch1", f"epoch{EPOCHS}"] and sep[f"epoch{EPOCHS}"] > sep["epoch1"] + 0.1


def test_cli_json_prints_the_same_list(atlas, found, capsys):
    assert main(["findings", str(atlas.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == found
    assert main(["findings", str(atlas.root)]) == 0
    out = capsys.readouterr().out
    assert "[shortcut]" in out and "[mislabels]" in out


def test_atlas_without_maps_says_so(atlas, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(atlas.root, bare, ignore=shutil.ignore_patterns("maps", "figures"))
    b = nc.open_atlas(bare)
    assert not has_maps(b)
    only = findings(b)
    # the rules that need only the outputs and the activations: shortcuts and label issues
    assert {"shortcut", "mislabels"} <= {f["kind"] for f in only} <= {
        "shortcut", "mislabels", "confusion", "underperforming", "outlier", "duplicate"}
    assert main(["findings", str(bare)]) == 0
    captured = capsys.readouterr()
    assert "no maps" in captured.err and "neurocarta map" in captured.err


def test_shortcut_rule_on_a_table_needs_a_real_within_label_effect():
    rng = np.random.default_rng(0)
    n = 4000
    label = rng.integers(0, 4, n)
    colour = rng.choice(["red", "green", "blue"], n)
    # class balance differs across colours (red holds many class 0) but predictions follow labels
    label = np.where((colour == "red") & (rng.random(n) < 0.5), 0, label)
    pred = np.where(rng.random(n) < 0.9, label, rng.integers(0, 4, n))
    t = pd.DataFrame({"input_id": np.arange(n), "label": label, "colour": colour, "pred": pred,
                      "name": np.array(list("abcd"))[label]})
    c = shortcut_candidates(t)
    assert len(c) == 3 * 4 * 2  # every test is counted: values x classes x contrasts
    assert not ((c["effect"] >= 0.2) & (c["q"] <= 0.05)).any()
    assert "name" not in set(c["attribute"])  # label-equivalent
    # now blue pushes class 2: half of blue inputs are predicted 2 whatever their label
    pred2 = np.where((colour == "blue") & (rng.random(n) < 0.5), 2, pred)
    c = shortcut_candidates(t.assign(pred=pred2), ["a", "b", "c", "d"])
    top = c.iloc[0]
    assert (top["attribute"], top["value"], top["class_name"]) == ("colour", "blue", "c")
    assert top["difference"] > 0.3 and top["q"] < 1e-10
