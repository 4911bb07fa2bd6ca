"""`neurocarta map`: all three maps of every layer with their defaults, stored for the viewer."""

from __future__ import annotations

import neurocarta as nc
from test_cli import nc_cli
from tiny_models import planted_data, planted_snapshots


def test_map_builds_every_map_of_every_layer(tmp_path):
    data = planted_data(tmp_path / "d.npz", n=400)
    atlas = nc.extract("py:tiny_models:planted_net", f"npz:{data}", tmp_path / "atlas", layers=["fc", "act"],
                       snapshots=planted_snapshots(tmp_path / "ckpt"), progress=False)
    r = nc_cli("map", atlas.root, "--quiet")
    assert r.returncode == 0, r.stderr
    atlas = nc.open_atlas(atlas.root)
    assert atlas.maps("topomap") == ["act@label", "fc@label"]
    assert atlas.maps("mapper") == ["act", "fc"]
    assert atlas.maps("concepts") == atlas.snapshots == ["step1", "step2"]  # every snapshot, aligned
    topo = nc.load_topomap(atlas, "act", "label")
    assert topo.snapshots == ["step1", "step2"] and topo.grid_cells is not None  # the viewer's slider and grid
    assert "view with: neurocarta serve" in r.stdout
