"""Comparison on real atlases: on the demo's snapshots the last layers grow more similar to
their final representation epoch by epoch; concept matching of an atlas against itself is the
identity; `neurocarta compare-atlases` writes its figure and JSON, and bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import neurocarta as nc
from neurocarta.data import load_data
from neurocarta.demo import demo_data
from neurocarta.methods.comparison import concept_matching, layer_similarity, match_concepts
from neurocarta.methods.concepts import concepts
from neurocarta.models.demo_cnn import DEFAULT_LAYERS, untrained_bundle
from test_compare_cli import one_line_error, run

LAST_LAYERS = ["features.block4", "head.relu", "head.fc2"]


@pytest.fixture(scope="module")
def snapshots_atlas(demo_atlas, tmp_path_factory):
    """The demo's model at each of its training snapshots (the per-epoch checkpoints the session's
    demo training left in its cache) on a seeded 1,500 of the demo's inputs: an atlas with every
    snapshot, cheap to capture (the training is the session's)."""
    folder = Path(demo_atlas.manifest.model["info"]["training"])
    checkpoints = sorted(folder.glob("epoch*.pt"), key=lambda p: int(p.stem.removeprefix("epoch")))
    assert len(checkpoints) == 4
    source = load_data(demo_data())
    return nc.extract(untrained_bundle(source), source, tmp_path_factory.mktemp("snapshots") / "atlas",
                      layers=list(DEFAULT_LAYERS), snapshots=[str(p) for p in checkpoints], limit=1500,
                      progress=False)


def test_last_layers_grow_similar_to_the_final_snapshot_epoch_by_epoch(snapshots_atlas):
    result = layer_similarity(snapshots_atlas, layers=LAST_LAYERS)
    training = result.training()
    assert list(training.columns) == snapshots_atlas.snapshots and list(training.index) == LAST_LAYERS
    for layer, row in training.iterrows():
        values = row.to_numpy()
        assert np.all(np.diff(values) > 0), (layer, values)
        assert values[-1] == pytest.approx(1.0) and values[0] < 0.95
    within = result.between()
    assert np.allclose(np.diag(within), 1.0)
    assert np.allclose(within, within.T)
    assert result.params["n_inputs"] == 1500 and result._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_concept_matching_of_an_atlas_with_itself_is_the_identity(snapshots_atlas):
    result = concepts(snapshots_atlas, class_graphs=False)
    match = match_concepts(snapshots_atlas, result, snapshots_atlas, result)
    for side in (match.a, match.b):
        assert len(side) == len(result.clusters) > 5
        assert (side["best_cluster"].to_numpy() == side["cluster"].to_numpy()).all()
        assert (side["jaccard"] == 1.0).all() and (side["status"] == "matched").all()
    assert match.events == []
    # against another snapshot the rules do fire: the first epoch's groups are not the last's
    early = concepts(snapshots_atlas, snapshot=snapshots_atlas.snapshots[0], class_graphs=False)
    moved = match_concepts(snapshots_atlas, early, snapshots_atlas, result)
    assert (moved.a["status"] != "matched").any() and moved.events
    assert {e["kind"] for e in moved.events} <= {"appeared", "vanished", "split", "merged"}
    assert f"<td>{moved.events[0]['kind']}</td>" in moved._repr_html_()  # a notebook shows the events


def test_compare_atlases_cli_writes_figure_and_json(snapshots_atlas, tmp_path, capsys):
    root = snapshots_atlas.root
    code, out, _ = run(capsys, "compare-atlases", root, root, "--snapshots", "last", "--no-concepts",
                       "--json", "--out", tmp_path)
    assert code == 0
    data = json.loads(out)
    across = next(p for p in data["similarity"]["panels"] if p["key"] == "across")
    assert np.allclose(np.diag(np.asarray(across["values"], dtype=float)), 1.0)
    assert json.loads((tmp_path / "comparison.json").read_text())["similarity"]["params"]["n_inputs"] == 1500
    assert (tmp_path / "similarity.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_atlases_bad_input_is_one_line(snapshots_atlas, tmp_path, capsys):
    line = one_line_error(capsys, "compare-atlases", tmp_path / "missing")
    assert "missing" in line
    # 30 inputs of other data: the atlases share 30 input ids, too few to compare
    source = load_data("shapes:n=30")
    small = nc.extract(untrained_bundle(source), source, tmp_path / "small", layers=["head.fc2"], progress=False)
    line = one_line_error(capsys, "compare-atlases", snapshots_atlas.root, small.root, "--no-concepts")
    assert "share only 30 inputs" in line and "same data" in line
    assert concept_matching.MATCH == 0.5  # the documented rule the README states


def test_serve_compare_answers_the_comparison_of_two_atlases(snapshots_atlas):
    """`serve A --compare B`: the manifest names B, /api/comparison holds A's and B's panels and
    the cross panel (B is A itself here: its diagonal is 1), and the concept matching."""
    from fastapi.testclient import TestClient

    from neurocarta.viewer.app import create_app

    client = TestClient(create_app(snapshots_atlas, compare=snapshots_atlas))
    assert client.get("/api/manifest").json()["compare"] == snapshots_atlas.url
    data = client.get("/api/comparison").json()
    panels = {p["key"]: p for p in data["similarity"]["panels"]}
    assert list(panels) == ["layers_A", "layers_B", "across", "training_A", "training_B"]
    assert np.allclose(np.diag(np.asarray(panels["across"]["values"], dtype=float)), 1.0)
    assert data["names"] == {"A": snapshots_atlas.url, "B": snapshots_atlas.url}
    assert data["warnings"] == []  # one atlas against itself: the same data, nothing to warn
    assert data["concepts"]["matched"] == data["concepts"]["groups"]["a"] > 0


def test_comparison_page_draws_its_heatmaps_without_console_errors(snapshots_atlas):
    """The comparison page of one atlas in Chromium (`serve A`, then #compare): its layers x
    layers and training heatmaps drawn cell by cell in the figure's colours, the concept groups
    that changed from the first snapshot to the last listed, and no console error. Its
    screenshot is the README's."""
    from test_viewer_e2e import CHROMIUM, CHROMIUM_ARGS, IMG, Page, playwright_api, serving

    with serving(snapshots_atlas.root) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = Page(browser)
        pg = page.page
        pg.goto(url + "#compare")
        pg.wait_for_selector("[data-testid=comparison-heatmap]", timeout=120_000)
        heatmaps = pg.locator("[data-testid=comparison-heatmap]")
        assert [heatmaps.nth(i).get_attribute("data-panel") for i in range(heatmaps.count())] == \
            ["layers_A", "training_A"]
        n_layers, n_snaps = len(snapshots_atlas.layer_names), len(snapshots_atlas.snapshots)
        layers = pg.locator("[data-panel=layers_A] [data-testid=cka-cell]")
        assert layers.count() == n_layers ** 2
        assert pg.locator("[data-panel=training_A] [data-testid=cka-cell]").count() == n_layers * n_snaps
        top = "rgb(253,231,37)"  # viridis at 1: a layer with itself
        assert all(layers.nth(i * n_layers + i).get_attribute("fill") == top for i in range(n_layers))
        assert layers.nth(n_layers - 1).get_attribute("fill") != top  # the first layer against the last
        events = pg.locator("[data-testid=concept-events] li")
        assert events.count() > 0
        assert any(k in events.first.inner_text() for k in ("split", "merged", "vanished", "appeared"))
        IMG.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(IMG / "comparison.png"))
        assert page.errors == []
        browser.close()
