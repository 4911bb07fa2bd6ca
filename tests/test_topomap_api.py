"""nc.topomap on an atlas with planted structure: maps, storage, differences, figures, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import neurocarta as nc
from neurocarta.methods.topomap import contrastive, group_difference, raw_profiles
from neurocarta.render import plot_difference, save_figure
from neurocarta.render.images import grid_images
from neurocarta.render.topomap import tile_board
from tiny_models import N_BLOCK, planted_data, planted_snapshots

BLOCK = np.repeat(np.arange(4), N_BLOCK)  # the class each neuron of layer act was built for


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    kw = dict(layers=["fc", "act", "one"], batch_size=64, chunk_size=128, progress=False)
    data = f"npz:{planted_data(d / 'data.npz')}"
    full = nc.extract("py:tiny_models:planted_net", data, d / "full", snapshots=planted_snapshots(d / "snaps"), **kw)
    summary = nc.extract("py:tiny_models:planted_net", data, d / "summary", mode="summary", group_by=["label"], **kw)
    return full, summary


def test_the_map_puts_each_planted_block_together(planted):
    full, _ = planted
    r = nc.topomap(full, "act", group_by="label")
    assert r.groups == ["0", "1", "2", "3"] and r.layout.shape == (24, 2)
    assert r.metrics["trustworthiness"] > 0.95 and r.metrics["n_silent"] == 0
    d = np.linalg.norm(r.layout[:, None] - r.layout[None], axis=-1)
    same = BLOCK[:, None] == BLOCK[None]
    off_diagonal = ~np.eye(24, dtype=bool)
    assert d[same & off_diagonal].mean() < 0.5 * d[~same].mean()
    # each group's map is highest on its own block: NAP values of block g peak in group g
    assert (r.frame().argmax(axis=1) == BLOCK).all()
    # the original's smoothness score is reported beside the faithfulness metrics; it cannot
    # replace them: a random layout averages into flat maps that score about as smooth
    rand = nc.topomap(full, "act", group_by="label", method="random")
    assert rand.metrics["trustworthiness"] < 0.8
    assert 0 < r.metrics["smoothness_auc"] < 1 and 0 < rand.metrics["smoothness_auc"] < 1


def test_result_saves_into_the_atlas_and_reloads(planted):
    full, _ = planted
    r = nc.topomap(full, "act", group_by="label", snapshots="all", grid=True, save=True)
    assert full.maps("topomap") == ["act@label"]
    back = nc.load_topomap(nc.open_atlas(full.root), "act", "label")
    np.testing.assert_allclose(back.layout, r.layout)
    np.testing.assert_array_equal(back.grid_cells, r.grid_cells)
    assert back.snapshots == ["step1", "step2"] and back.grid_shape == r.grid_shape
    for snap in r.snapshots:
        np.testing.assert_allclose(back.frame(snap), r.frame(snap))
    assert back.metrics["grid"] == pytest.approx(r.metrics["grid"])
    assert {k: v for k, v in back.metrics.items() if k != "grid"} == pytest.approx(
        {k: v for k, v in r.metrics.items() if k != "grid"})
    # one layout for every snapshot; the weak early snapshot paints weaker maps
    assert np.abs(r.frame("step1")).max() < 0.2 * np.abs(r.frame("step2")).max()
    with pytest.raises(nc.AtlasError, match="no topomap result 'fc@label'"):
        nc.load_topomap(full, "fc", "label")


def test_summary_atlas_gives_the_same_profiles(planted):
    full, summary = planted
    a = nc.topomap(full, "act", group_by="label")
    b = nc.topomap(summary, "act", group_by="label")
    np.testing.assert_allclose(a.frame(), b.frame(), atol=1e-6)


def test_contrastive_and_raw_profiles(planted):
    full, summary = planted
    c = contrastive(full.group_stats("act", "label"))
    assert (c.values.argmax(axis=1) == BLOCK).all()
    assert c.values.max() > 3  # a planted block is several pooled standard deviations apart
    raw = raw_profiles(full, "act", n=40, balanced_by="label")
    labels = full.inputs["label"].to_numpy()[raw.groups]
    assert raw.values.shape == (24, 40) and np.bincount(labels).tolist() == [10, 10, 10, 10]
    # summary atlases draw from their row sample
    raw_s = raw_profiles(summary, "act", n=20, seed=1)
    assert raw_s.values.shape == (24, 20)
    r = nc.topomap(full, "act", profile="raw", n_samples=80)
    assert r.metrics["trustworthiness"] > 0.9


def test_difference_marks_exactly_the_planted_neurons(planted):
    full, summary = planted
    d = group_difference(full, "act", "label", 0, 1, permutations=300)
    assert d.test == "permutation" and d.n_a + d.n_b == int((full.inputs["label"] < 2).sum())
    # blocks 0 and 1 differ; blocks 2 and 3 (noise only) stay below the FDR threshold
    np.testing.assert_array_equal(np.flatnonzero(d.significant), np.arange(12))
    assert (d.values[:6] > 1.5).all() and (d.values[6:12] < -1.5).all()
    assert d.statistic_p < 0.01
    w = group_difference(summary, "act", "label", 0, 1)
    assert w.test == "welch" and w.statistic_p is None
    np.testing.assert_array_equal(w.significant, d.significant)
    np.testing.assert_allclose(w.values, d.values, atol=1e-5)


def test_figures_panels_differences_and_formats(planted, tmp_path):
    full, _ = planted
    r = nc.topomap(full, "act", snapshots="all", grid=True)
    fig = r.plot()
    # every group's map is a tile of one image in one Axes (beside the colour bar), titled
    (board,) = [ax for ax in fig.axes if ax.images]
    assert len(board.images) == 1 and len(board.texts) == 4
    grid = r.plot(kind="grid", groups=["2", "0"], order="given")
    (ax,) = [ax for ax in grid.axes if ax.images]
    assert [t.get_text().split(" ")[0] for t in ax.texts] == ["2", "0"]
    # the tiles are the grid images of groups 2 and 0, in that order, and nothing else is painted
    tiles = grid_images(r.grid_cells, r.grid_shape, r.frame()[:, [2, 0]])
    expected, origins = tile_board(tiles, ncols=2)
    image = np.ma.filled(ax.images[0].get_array(), np.nan)
    np.testing.assert_array_equal(image, expected)
    x0, y0 = origins[0]
    np.testing.assert_array_equal(image[y0:y0 + r.grid_shape[0], x0:x0 + r.grid_shape[1]], tiles[0])
    d = group_difference(full, "act", "label", 0, 1, permutations=100)
    diff = plot_difference(r, d)
    assert "12/24 neurons" in diff.axes[0].get_title()
    for suffix in ("png", "svg", "pdf"):
        path = save_figure(fig, tmp_path / f"map.{suffix}")
        assert path.stat().st_size > 1000
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "map.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(nc.UserError, match="figures are"):
        save_figure(fig, tmp_path / "map.bmp")


def test_animation_over_snapshots(planted, tmp_path):
    import imageio.v3 as iio

    full, _ = planted
    r = nc.topomap(full, "act", snapshots="all")
    gif = r.animate(tmp_path / "train.gif")
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 2 and not np.array_equal(frames[0], frames[1])
    mp4 = r.animate(tmp_path / "train.mp4")
    assert mp4.stat().st_size > 1000 and b"ftyp" in mp4.read_bytes()[:64]
    with pytest.raises(nc.UserError, match="at least 2 snapshots"):
        nc.topomap(full, "act").animate(tmp_path / "one.gif")


def test_bad_inputs_get_clear_errors(planted, tmp_path):
    full, _ = planted
    with pytest.raises(nc.AtlasError, match="no column 'colour' to group by"):
        nc.topomap(full, "act", group_by="colour")
    with pytest.raises(nc.UserError, match="group '9' has no inputs in column 'label'"):
        nc.topomap(full, "act", groups=["0", "9"])
    with pytest.raises(nc.UserError, match="layer 'one' has 1 neuron.*at least 3"):
        nc.topomap(full, "one")
    with pytest.raises(nc.UserError, match="no layer 'nope'"):
        nc.topomap(full, "nope")
    with pytest.raises(nc.UserError, match="NaN"):
        nc.TopoMap().fit(np.array([[1.0, np.nan, 0.0]] * 5))
    # NaN that reached an atlas (written behind neurocarta's back) is refused, not drawn
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(full.root, broken)
    arr = zarr.open_array(str(broken / "acts" / "step2" / "act" / "value"), mode="r+")
    arr[3, 5] = np.nan
    with pytest.raises(nc.UserError, match="NaN"):
        nc.topomap(nc.open_atlas(broken), "act")
