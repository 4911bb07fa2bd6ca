"""demo-cnn training and caching, and the demo command end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import torch

from conftest import run_env
from neurocarta.data.shapes import ShapesSource
from neurocarta.models.demo_cnn import DEFAULT_LAYERS, DemoCNN, load_demo_cnn, train_demo_cnn


def test_demo_cnn_layers_and_logits():
    model = DemoCNN(8).eval()
    names = dict(model.named_modules())
    assert all(n in names for n in DEFAULT_LAYERS)
    assert names["head.relu"].inplace
    with torch.no_grad():
        assert model(torch.zeros(5, 3, 64, 64)).shape == (5, 8)


def test_training_writes_snapshots_and_is_cached(tmp_path):
    source = ShapesSource(n=1200, seed=0)
    first = train_demo_cnn(source, epochs=3, cache_dir=tmp_path, progress=False)
    assert not first.cached and len(first.checkpoints) == 3
    assert all(p.exists() for p in first.checkpoints)
    record = json.loads((first.folder / "training.json").read_text())
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert first.test_accuracy > 0.3  # 8 classes: chance is 0.125
    t0 = time.time()
    second = train_demo_cnn(source, epochs=3, cache_dir=tmp_path, progress=False)
    assert second.cached and second.checkpoints == first.checkpoints and time.time() - t0 < 2
    bundle = load_demo_cnn(source, epochs=3, cache_dir=tmp_path, progress=False)
    # a split-restricted source trains on (and shares the cache of) the whole set
    test_only = train_demo_cnn(source.with_split("test"), epochs=3, cache_dir=tmp_path, progress=False)
    assert test_only.cached and test_only.checkpoints == first.checkpoints
    state = torch.load(first.checkpoints[-1])
    assert torch.equal(bundle.module.state_dict()["head.fc2.weight"], state["head.fc2.weight"])


def test_demo_command_builds_a_complete_atlas(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "neurocarta", "demo", "--data", "shapes:n=1500", "--epochs", "3",
                        "--no-serve", "--out", str(out), "--quiet"], env=run_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stderr
    # the demo plants its flaws into the user's shapes spec, says so, and ends with its findings
    assert "planted a shortcut" in r.stderr and "label noise" in r.stderr and "--clean plants none" in r.stderr
    assert "finding [" in r.stdout and "findings in" in r.stderr
    info = json.loads(subprocess.run([sys.executable, "-m", "neurocarta", "info", str(out), "--json"],
                                     env=run_env(), capture_output=True, text=True).stdout)
    assert info["data"] == "shapes:n=1500,seed=0,bias=0.9,noise=0.02"  # what was planted, for every reader
    assert info["complete"] is True and info["n_inputs"] == 1500
    assert info["snapshots"] == ["epoch1", "epoch2", "epoch3"]
    assert [l["name"] for l in info["layers"]] == DEFAULT_LAYERS
    assert {l["name"]: l["kind"] for l in info["layers"]}["features.block2"] == "conv"
    import neurocarta as nc

    atlas = nc.open_atlas(out)
    t = atlas.inputs
    assert {"shape", "colour", "texture", "background", "pred", "correct", "loss"} <= set(t.columns)
    # training shows: the last snapshot is more accurate than the first
    acc = [atlas.outputs(s)["correct"].mean() for s in atlas.snapshots]
    assert acc[-1] > acc[0]
    assert atlas.thumbnail(0).shape == (64, 64, 3)
    # the demo also maps every layer: a stored topomap, a figure and a training animation each
    assert sorted(atlas.maps("topomap")) == sorted(f"{l}@label" for l in DEFAULT_LAYERS)
    figures = out / "figures" / "topomap"
    for layer in DEFAULT_LAYERS:
        assert (figures / f"{layer}@label.png").stat().st_size > 5000
        assert (figures / f"{layer}@label.gif").exists()
    assert "topographic maps drawn" in r.stderr and "class separation" in r.stdout
    # and builds the Mapper graph of every layer
    assert sorted(atlas.maps("mapper")) == sorted(DEFAULT_LAYERS)
    assert "Mapper graphs built" in r.stderr and "class purity" in r.stdout
    assert (out / "figures" / "mapper" / "head.relu.png").stat().st_size > 5000
    # and the concept atlas: groups, class graphs, exemplar patches and figures
    assert atlas.maps("concepts") == ["epoch3"]
    concepts = nc.load_concepts(atlas)
    assert concepts.layers == DEFAULT_LAYERS and set(concepts.graphs) == set(atlas.class_names)
    patches = atlas.patches("features.block2")
    assert patches.shape == (32, 9, 32, 32, 3) and patches.std() > 0
    assert "concept atlas built" in r.stderr and "groups" in r.stdout
    assert (out / "figures" / "concepts" / "projection@epoch3.png").stat().st_size > 5000
    assert any((out / "figures" / "concepts").glob("graph@*.png"))
