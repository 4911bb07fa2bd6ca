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
    # each epoch's training time is recorded, and reported in the model's info
    assert all(h["epoch_seconds"] > 0 for h in record["history"])
    assert first.test_accuracy > 0.3  # 8 classes: chance is 0.125
    t0 = time.time()
    second = train_demo_cnn(source, epochs=3, cache_dir=tmp_path, progress=False)
    assert second.cached and second.checkpoints == first.checkpoints and time.time() - t0 < 2
    bundle = load_demo_cnn(source, epochs=3, cache_dir=tmp_path, progress=False)
    assert bundle.info["epoch_seconds"] == [h["epoch_seconds"] for h in record["history"]]
    # a split-restricted source trains on (and shares the cache of) the whole set
    test_only = train_demo_cnn(source.with_split("test"), epochs=3, cache_dir=tmp_path, progress=False)
    assert test_only.cached and test_only.checkpoints == first.checkpoints
    state = torch.load(first.checkpoints[-1])
    assert torch.equal(bundle.module.state_dict()["head.fc2.weight"], state["head.fc2.weight"])


def test_demo_command_builds_a_complete_atlas(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "neurocarta", "demo", "--data", "shapes:n=1500", "--epochs", "3",
                        "--no-serve", "--no-featvis", "--out", str(out), "--quiet"], env=run_env(),
                       capture_output=True, text=True)
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
    assert "topographic maps built" in r.stderr and "class separation" in r.stdout
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


# ------------------------------------------------------------------ the viewer while maps are built
def _get(url: str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_viewer_serves_maps_as_the_stages_store_them(tmp_path):
    """The demo serves the viewer before its maps exist: the map-status endpoint says which
    stage is running and how far, and a map stored after the server started is served (the
    manifest lists it, its endpoint answers 200), not the "absent" answers cached before."""
    import threading

    from neurocarta.pipeline import MAP_STAGES, MapOptions, MapStage, run_map_stages
    from neurocarta.viewer import bind_socket, serve_in_background
    from tiny_models import planted_atlas

    atlas = planted_atlas(tmp_path, ["fc", "act"], n=300)
    viewer = serve_in_background(atlas, sock=bind_socket("127.0.0.1", 0))
    try:
        base = viewer.url.rstrip("/")
        assert _get(f"{base}/api/map-status") == (200, {"stages": [], "running": False})
        status, manifest = _get(f"{base}/api/manifest")
        assert status == 200 and manifest["maps"]["mapper"] == []
        assert _get(f"{base}/api/mapper/fc")[0] == 404

        # the real Mapper stage, held open after it stored its graphs, so "running" can be seen
        mapper_stage = next(s for s in MAP_STAGES if s.name == "mapper")
        stored, release = threading.Event(), threading.Event()

        def held_mapper(atlas, options, report):
            lines = mapper_stage.run(atlas, options, report)
            stored.set()
            assert release.wait(60)
            return lines

        stages = [MapStage("mapper", "Mapper graphs", held_mapper)]
        worker = threading.Thread(target=run_map_stages, args=(atlas, MapOptions(progress=False), stages))
        worker.start()
        assert stored.wait(60)
        running = _get(f"{base}/api/map-status")[1]
        assert running["running"] is True
        assert [(s["name"], s["state"], s["done"], s["total"]) for s in running["stages"]] == \
            [("mapper", "running", 2, 2)]
        # stored after the first answers: now listed and served
        assert _get(f"{base}/api/manifest")[1]["maps"]["mapper"] == ["act", "fc"]
        status, graph = _get(f"{base}/api/mapper/fc")
        assert status == 200 and graph["layer"] == "fc" and graph["nodes"]
        release.set()
        worker.join(60)
        done = _get(f"{base}/api/map-status")[1]
        assert done["running"] is False and done["stages"][0]["state"] == "done"
        assert done["stages"][0]["seconds"] >= 0
    finally:
        release.set()
        viewer.stop()


def test_a_stage_left_running_by_a_dead_process_reads_as_interrupted(tmp_path):
    """A demo killed mid-stage must not leave the viewer waiting for ever."""
    from neurocarta.store.status import MapStatus, StageState, read_map_status
    from tiny_models import planted_atlas

    atlas = planted_atlas(tmp_path, ["fc"], n=50)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    status = MapStatus(atlas.location, [StageState("topomap", "topographic maps"), StageState("mapper", "Mapper graphs")],
                       pid=gone.pid)
    status.finish("topomap")
    status.start("mapper")
    read = read_map_status(atlas.location)
    assert [s["state"] for s in read["stages"]] == ["done", "interrupted"] and read["running"] is False
    alive = MapStatus(atlas.location, [StageState("mapper", "Mapper graphs")])  # this process: alive
    alive.start("mapper")
    assert read_map_status(atlas.location)["running"] is True


def test_the_panel_shows_a_stage_in_progress_and_then_its_map(tmp_path):
    """In the browser: while the Mapper stage runs, the Mapper panel says how far it is and the
    findings wait; once it has stored its graphs, the layer list fills and the note goes."""
    from test_viewer_e2e import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, playwright_api

    from neurocarta.pipeline import build_mappers
    from neurocarta.store.status import MapStatus, StageState
    from neurocarta.viewer import bind_socket, serve_in_background
    from tiny_models import planted_atlas

    atlas = planted_atlas(tmp_path, ["fc", "act"], n=300)
    status = MapStatus(atlas.location, [StageState("mapper", "Mapper graphs")])
    status.start("mapper")
    status.progress("mapper", 1, 2)
    viewer = serve_in_background(atlas, sock=bind_socket("127.0.0.1", 0))
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(viewer.url + "#notour")
            note = page.get_by_test_id("view-mapper").get_by_test_id("map-progress")
            note.wait_for(timeout=30_000)
            assert note.inner_text() == "Mapper graphs: building 2 of 2 layers…"
            assert page.get_by_test_id("findings-waiting").is_visible()
            assert page.get_by_test_id("mapper-layer").locator("option").count() == 0
            build_mappers(atlas, progress=False)
            status.progress("mapper", 2, 2)
            status.finish("mapper")
            page.get_by_test_id("mapper-layer").locator("option[value='act']").wait_for(state="attached",
                                                                                         timeout=30_000)
            note.wait_for(state="detached", timeout=30_000)
            page.get_by_test_id("findings-waiting").wait_for(state="detached", timeout=30_000)
            browser.close()
    finally:
        viewer.stop()
