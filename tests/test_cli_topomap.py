"""`neurocarta topomap`: JSON metrics per layer, figures and stored maps, one-line errors."""

from __future__ import annotations

import json

import pytest

import neurocarta as nc
from test_cli import _one_line_error, nc_cli
from tiny_models import planted_data, planted_snapshots


@pytest.fixture(scope="module")
def atlas_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-topomap")
    data = f"npz:{planted_data(d / 'data.npz', n=240)}"
    nc.extract("py:tiny_models:planted_net", data, d / "atlas", layers=["fc", "act", "one"],
               snapshots=planted_snapshots(d / "snaps"), progress=False)
    return d / "atlas"


def test_json_metrics_for_every_mappable_layer_and_figures(atlas_dir):
    r = nc_cli("topomap", atlas_dir, "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    layers = {l["layer"]: l for l in json.loads(r.stdout)["layers"]}
    assert sorted(layers) == ["act", "fc"]  # "one" has a single neuron: skipped when not asked for
    for l in layers.values():
        assert l["method"] == "umap" and l["n_neurons"] == 24
        assert 0.9 < l["trustworthiness"] <= 1.0 and 0.9 < l["continuity"] <= 1.0 and 0 < l["spearman"] <= 1
    # grid, every snapshot, an animation and two formats
    r = nc_cli("topomap", atlas_dir, "--json", "--grid", "--animate", "--format", "png", "svg", "--quiet")
    assert r.returncode == 0, r.stderr
    layers = {l["layer"]: l for l in json.loads(r.stdout)["layers"]}
    for l in layers.values():
        assert l["snapshots"] == ["step1", "step2"] and len(l["figures"]) == 5
        for f in l["figures"]:
            assert (atlas_dir / "figures" / "topomap").as_posix() in f
    figures = atlas_dir / "figures" / "topomap"
    for name in ("act@label.png", "act@label.svg", "act@label_grid.png", "act@label.gif"):
        assert (figures / name).stat().st_size > 1000
    stored = nc.load_topomap(nc.open_atlas(atlas_dir), "act", "label")
    assert stored.metrics["trustworthiness"] == pytest.approx(layers["act"]["trustworthiness"])
    assert stored.grid_shape is not None


def test_method_and_grouping_options(atlas_dir):
    r = nc_cli("topomap", atlas_dir, "--layers", "act", "--method", "pca", "--group-by", "label,correct",
               "--profile", "contrastive", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    (layer,) = json.loads(r.stdout)["layers"]
    assert layer["method"] == "pca" and layer["group_by"] == "label,correct" and layer["groups"] == 4
    text = nc_cli("topomap", atlas_dir, "--layers", "a*", "--method", "som", "--quiet")
    assert text.returncode == 0 and text.stdout.startswith("act") and "trustworthiness" in text.stdout


@pytest.mark.parametrize("args, message", [
    (["--group-by", "colour"], "no column 'colour' to group by"),
    (["--layers", "one"], "layer 'one' has 1 neuron"),
    (["--layers", "nope*"], "no layer of the atlas matches 'nope*'"),
])
def test_bad_input_is_one_line(atlas_dir, args, message):
    line = _one_line_error(nc_cli("topomap", atlas_dir, *args, "--quiet"))
    assert message in line


def test_missing_atlas_and_single_snapshot_animation(tmp_path, atlas_dir):
    assert "no atlas at" in _one_line_error(nc_cli("topomap", tmp_path / "nothing"))
    single = tmp_path / "single"
    nc.extract("py:tiny_models:planted_net", f"npz:{planted_data(tmp_path / 'd.npz', n=60)}", single,
               layers=["act"], progress=False)
    assert "2 or more snapshots" in _one_line_error(nc_cli("topomap", single, "--animate"))
