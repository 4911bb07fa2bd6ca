"""A viewer that is already running serves what a later ``neurocarta visualize`` or
``neurocarta attribute`` stores: its payload cache is keyed by ``maps/_status.json``'s identity,
which those writes change too (store/status.py note_stored), not only the map stages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import neurocarta as nc
from neurocarta.featvis import Settings, visualize
from neurocarta.viewer import create_app


@pytest.fixture
def served(tmp_path):
    """A tiny CNN's atlas (tests/tiny_models.py, 40 shapes, no maps) and its viewer's client."""
    atlas = nc.extract("py:tiny_models:cnn_bundle", "shapes:n=40", tmp_path / "a", layers=["conv", "fc"],
                       progress=False)
    return atlas, TestClient(create_app(atlas.root))


def test_a_running_viewer_serves_later_attributions(served):
    atlas, client = served
    snap = atlas.snapshots[-1]
    assert client.get("/api/manifest").json()["attributions"] == {}
    assert client.get(f"/api/attributions/{snap}/3").json()["items"] == []
    nc.attribute(atlas, [3], device="cpu", progress=False)
    assert client.get("/api/manifest").json()["attributions"] == {snap: ["3"]}
    items = client.get(f"/api/attributions/{snap}/3").json()["items"]
    assert [(i["method"], i["target_kind"], i["kind"]) for i in items] == [("saliency", "predicted", "image")]


def test_a_running_viewer_serves_later_feature_visualizations(served):
    atlas, client = served
    snap = atlas.snapshots[-1]
    assert client.get("/api/manifest").json()["featvis"] == {}
    assert client.get(f"/api/featvis/{snap}/conv").status_code == 404
    visualize(atlas, ["conv"], neurons=[0, 1], settings=Settings(steps=4, seed=0), device="cpu", progress=False)
    assert client.get("/api/manifest").json()["featvis"] == {snap: ["conv"]}
    first = client.get(f"/api/featvis/{snap}/conv").json()
    assert [t["target"] for t in first["targets"]] == ["0", "1"]
    # a second run adds a neuron: the served table grows, never the first run's cached one
    visualize(atlas, ["conv"], neurons=[2], settings=Settings(steps=4, seed=0), device="cpu", progress=False)
    again = client.get(f"/api/featvis/{snap}/conv").json()
    assert sorted(t["target"] for t in again["targets"]) == ["0", "1", "2"]
