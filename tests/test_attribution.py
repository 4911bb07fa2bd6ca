"""Attributions (issue 18): sanity after Adebayo et al., the shapes check, the CLI's bad input,
storage and the viewer's endpoints."""

from __future__ import annotations

import copy
import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

import neurocarta as nc
from conftest import run_env
from neurocarta.attribution.run import compute
from neurocarta.attribution.targets import Target
from neurocarta.capture.reload import reload_model

METHODS = ["saliency", "integrated_gradients"]


def _unbiased_test_inputs(atlas, n: int) -> np.ndarray:
    """Test-split inputs the model got right whose background is not the planted shortcut's."""
    source = reload_model(atlas, progress=False).source
    shortcut = getattr(source, "bias_background", None)
    t = atlas.inputs_with_outputs()
    keep = (t["split"] == "test") & t["correct"].astype(bool)
    if shortcut:
        keep &= t["background"] != shortcut
    return t.loc[keep, "input_id"].to_numpy()[:n]


@pytest.fixture(scope="module")
def demo_model(demo_atlas):
    return reload_model(demo_atlas, progress=False)


@pytest.mark.parametrize("method", METHODS)
def test_randomised_weights_change_the_attribution(demo_atlas, demo_model, method):
    """Adebayo et al.'s model randomisation test: the maps of the trained model and of the same
    architecture with every layer re-initialised, for the same class, share little rank order."""
    ids = [int(i) for i in _unbiased_test_inputs(demo_atlas, 8)]
    trained = compute(demo_model, ids, Target("predicted"), method, steps=16, progress=False)
    again = compute(demo_model, ids, Target("predicted"), method, steps=16, progress=False)
    random = copy.deepcopy(demo_model)
    torch.manual_seed(1)
    for module in random.module.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    rho = []
    for item in trained:
        other = compute(random, [item.input_id], Target("class", item.target), method, steps=16, progress=False)[0]
        rho.append(spearmanr(item.values.ravel(), other.values.ravel())[0])
    assert all(np.allclose(a.values, b.values, rtol=1e-5) for a, b in zip(trained, again))  # deterministic
    assert np.mean(rho) < 0.6, rho  # measured 0.40 (saliency) and 0.40 (IG) on 24 demo inputs


@pytest.mark.parametrize("method", METHODS)
def test_attribution_falls_on_the_shape(demo_atlas, demo_model, method):
    """On unbiased shapes the predicted class's attribution sits on the shape: per pixel far
    denser there than on the background; integrated gradients put most of the mass there."""
    ids = _unbiased_test_inputs(demo_atlas, 16)
    source = demo_model.source
    parent, index = (source.parent, source.indices[ids]) if hasattr(source, "parent") else (source, ids)
    masks = parent.shape_masks(index)
    items = compute(demo_model, [int(i) for i in ids], Target("predicted"), method, steps=16, progress=False)
    maps = np.stack([i.values for i in items])
    share = np.array([m[s].sum() / m.sum() for m, s in zip(maps, masks)])
    area = masks.mean(axis=(1, 2))
    density = (share / area) / ((1 - share) / (1 - area))  # mass per shape pixel / per background pixel
    # 1.0 is mass spread evenly over the image. Saliency measured 3.5 on the demo trained with
    # two torch threads and 2.15 with one (the test workers' setting: the weights differ in the
    # last bits), IG 14; saliency's raw gradients spread wider, so its bound is the looser one.
    assert np.median(density) > (1.5 if method == "saliency" else 2.5), density
    if method == "integrated_gradients":
        assert share.mean() > 0.5, share  # measured 0.60 of the mass on 11% of the pixels


@pytest.fixture(scope="module")
def tiny_atlas(tmp_path_factory):
    """A tiny CNN (tests/tiny_models.py) over 40 shapes: reloadable from its py: spec."""
    return nc.extract("py:tiny_models:cnn_bundle", "shapes:n=40", tmp_path_factory.mktemp("attr") / "a",
                      layers=["conv", "fc"], progress=False)


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


BAD_INPUT = [
    (["--inputs", "3,400"], "the atlas has no input 400; its input ids run from 0 to 39"),
    (["--inputs", "3,x"], "input id 'x' is not a whole number"),
    (["--inputs", "3", "--target", "neuron:nope:1"], "the atlas has no layer 'nope'"),
    (["--inputs", "3", "--target", "neuron:conv:6"], "layer 'conv' has neurons 0 to 5"),
    (["--inputs", "3", "--target", "class:9"], "the model has classes 0 to 7"),
    (["--inputs", "3", "--target", "concept:conv:0"], "no concept groups for snapshot 'final'"),
    (["--inputs", "3", "--target", "logit"], "unknown attribution target 'logit'"),
]


def test_cli_bad_input_is_one_line_and_leaves_the_atlas(tiny_atlas, capsys):
    from neurocarta.cli import main

    before = _tree_digest(tiny_atlas.root)
    # one run as a user runs it, the rest through the same entry point in this process
    r = subprocess.run([sys.executable, "-m", "neurocarta", "attribute", str(tiny_atlas.root), *BAD_INPUT[0][0]],
                       capture_output=True, text=True, env=run_env(), timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == f"neurocarta: error: {BAD_INPUT[0][1]}", r.stderr
    for args, message in BAD_INPUT[1:]:
        assert main(["attribute", str(tiny_atlas.root), *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("neurocarta: error: ") and message in lines[0], lines
    assert _tree_digest(tiny_atlas.root) == before


def test_stored_attributions_and_the_viewer_endpoints(tiny_atlas):
    from fastapi.testclient import TestClient
    from PIL import Image

    from neurocarta.viewer import create_app

    first = nc.attribute(tiny_atlas, "2,5", progress=False)  # saliency of the predicted class
    ig = nc.attribute(tiny_atlas, [5], method="ig", target="class:1", steps=8, progress=False)
    neuron = nc.attribute(tiny_atlas, [5], target="neuron:conv:2", progress=False)
    assert [i.index for i in first + ig + neuron] == [0, 1, 2, 3]
    again = nc.attribute(tiny_atlas, [5], progress=False)  # the same item again replaces it
    assert again[0].index == 1 and np.allclose(again[0].values, first[1].values, rtol=1e-5)

    client = TestClient(create_app(tiny_atlas.root))
    assert client.get("/api/manifest").json()["attributions"] == {"final": ["2", "5"]}
    body = client.get("/api/attributions/final/5").json()
    assert body["input_id"] == "5"
    items = {i["index"]: i for i in body["items"]}
    assert sorted(items) == [1, 2, 3]
    assert items[2]["method"] == "integrated_gradients" and items[2]["target_kind"] == "class"
    assert items[2]["target"] == "1" and items[2]["layer"] is None and items[2]["kind"] == "image"
    assert items[3]["target_kind"] == "neuron" and items[3]["layer"] == "conv" and items[3]["target"] == "2"
    assert items[1]["total"] == pytest.approx(float(first[1].values.sum()), rel=1e-4)  # saliency: |grad| summed

    png = client.get("/api/attributions/final/5/2.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(png.content)))
    assert image.shape == (*tiny_atlas.thumbnail(5).shape[:2], 4)
    alpha = image[..., 3]
    assert (alpha == 0).any() and alpha.max() > 150  # transparent where small, opaque at the peak
    strong = ig[0].values > np.percentile(ig[0].values, 90)  # the overlay is opaque where the map is high
    assert alpha[strong].mean() > 3 * alpha[~strong].mean()
    assert client.get("/api/attributions/final/5/0.png").status_code == 404  # input 2's item
    assert client.get("/api/attributions/final/7").json() == {"input_id": "7", "items": []}


def test_concept_target_is_the_sum_of_its_members(tmp_path):
    """Integrated gradients are linear in the target: a concept group's total is the sum of its
    members' totals (each about its activation's change from the black baseline)."""
    atlas = nc.extract("py:tiny_models:cnn_bundle", "shapes:n=12", tmp_path / "a", layers=["conv"], progress=False)
    neurons = pd.DataFrame({"layer": ["conv"] * 6, "unit": np.arange(6), "cluster": [0, 1, 0, -1, 1, 0]})
    atlas.save_map("concepts", "final", {"neurons": neurons}, {"snapshot": "final"})
    group = nc.attribute(atlas, [4], method="ig", target="concept:conv:0", steps=16, save=False, progress=False)[0]
    members = [nc.attribute(atlas, [4], method="ig", target=f"neuron:conv:{u}", steps=16, save=False,
                            progress=False)[0] for u in (0, 2, 5)]
    assert group.total == pytest.approx(sum(m.total for m in members), rel=1e-4)
    assert group.score == pytest.approx(sum(m.score for m in members), rel=1e-5)
    assert not (Path(atlas.root) / "maps" / "attributions").exists()  # save=False stores nothing
