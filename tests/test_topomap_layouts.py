"""Neuron layouts: seeded, faithful on clustered profiles, aligned with reflection (issue 3 groundwork)."""

from __future__ import annotations

import numpy as np
import pytest

import neurocarta as nc
from neurocarta.methods.topomap import align, layout


@pytest.fixture(scope="module")
def clustered():
    """60 neurons in 4 tight clusters of profiles over 10 groups."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 10)) * 3
    return np.repeat(centres, 15, axis=0) + 0.3 * rng.normal(size=(60, 10))


@pytest.mark.parametrize("method", ["umap", "tsne", "pca", "graph", "som"])
def test_every_method_is_seeded_and_beats_random(clustered, method):
    a = nc.TopoMap(method=method, seed=3).fit(clustered)
    b = nc.TopoMap(method=method, seed=3).fit(clustered)
    np.testing.assert_array_equal(a.layout_, b.layout_)
    assert a.layout_.shape == (60, 2) and a.layout_.min() >= -1e-9 and a.layout_.max() <= 1 + 1e-9
    rand = nc.TopoMap(method="random", seed=3).fit(clustered)
    assert a.metrics_["trustworthiness"] > 0.85 > rand.metrics_["trustworthiness"] + 0.2
    assert set(a.metrics_) >= {"trustworthiness", "continuity", "spearman", "neighbourhood_preservation"}


def test_graph_layout_joins_disconnected_components():
    rng = np.random.default_rng(1)
    far_apart = np.r_[rng.normal(size=(20, 5)) + 50, rng.normal(size=(20, 5)) - 50, rng.normal(size=(3, 5))]
    y = layout(far_apart, method="graph", metric="euclidean", n_neighbors=3)
    assert np.isfinite(y).all() and len(np.unique(y.round(6), axis=0)) == len(y)


def test_align_undoes_rotation_reflection_scale_and_shift():
    ref = np.random.default_rng(2).uniform(size=(50, 2))
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = (ref * np.array([-1.0, 1.0])) @ rot * 2.5 + 4.0  # reflected, rotated, scaled, shifted
    np.testing.assert_allclose(align(moved, ref), ref, atol=1e-9)


def test_layout_errors():
    with pytest.raises(nc.UserError, match="at least 3 neurons"):
        layout(np.zeros((2, 4)))
    with pytest.raises(nc.UserError, match="NaN"):
        layout(np.full((5, 3), np.nan))
    with pytest.raises(nc.UserError, match="unknown layout"):
        layout(np.zeros((5, 3)), method="pso")


def test_grid_mode_gives_distinct_cells_and_keeps_most_faithfulness(clustered):
    free = nc.TopoMap(method="tsne", seed=0).fit(clustered)
    grid = nc.TopoMap(method="tsne", seed=0, grid=True).fit(clustered)
    assert grid.grid_shape_ == (8, 8) and len(np.unique(grid.grid_cells_)) == 60
    np.testing.assert_array_equal(grid.layout_, free.layout_)
    assert grid.metrics_ == free.metrics_
    assert 0.8 < grid.grid_metrics_["trustworthiness"] <= free.metrics_["trustworthiness"] + 0.02


def test_batch_som_spreads_shared_units_and_lowers_error_with_epochs(clustered):
    from neurocarta.methods.topomap.som import BatchSOM

    short = BatchSOM(epochs=2, seed=0).fit(clustered)
    long = BatchSOM(epochs=15, seed=0).fit(clustered)
    assert long.side_ == 8 and long.weights_.shape == (64, 10)
    assert long.quantization_error_ < short.quantization_error_
    pos = long.positions()
    assert len(np.unique(pos.round(6), axis=0)) == 60  # neurons sharing a unit sit on a circle
