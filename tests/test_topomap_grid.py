"""Grid mode: one neuron per cell, exact up to the limit, a close approximation beyond."""

from __future__ import annotations

import numpy as np

from neurocarta.methods.topomap.grid import assignment_cost, cell_centres, grid_assign, grid_shape


def _cost(layout, cells, shape):
    lo, hi = layout.min(0), layout.max(0)
    return assignment_cost(layout, cell_centres(*shape, lo, hi), cells)


def test_points_already_on_a_grid_keep_their_cells():
    rows, cols = grid_shape(36)
    assert (rows, cols) == (6, 6)
    centres = cell_centres(6, 6, np.zeros(2), np.ones(2))
    perm = np.random.default_rng(0).permutation(36)
    cells, shape = grid_assign(centres[perm] + 0.01)
    assert shape == (6, 6)
    np.testing.assert_array_equal(cells, perm)


def test_cells_are_distinct_and_approximation_is_close_to_exact():
    layout = np.random.default_rng(1).uniform(size=(900, 2))
    exact, shape = grid_assign(layout, exact_limit=5000)
    approx, shape2 = grid_assign(layout, exact_limit=100, window=12)
    assert shape == shape2 == (30, 30)
    for cells in (exact, approx):
        assert len(np.unique(cells)) == 900 and cells.max() < 900
    c_exact, c_approx = _cost(layout, exact, shape), _cost(layout, approx, shape)
    assert c_exact <= c_approx <= 1.25 * c_exact


def test_refinement_never_raises_the_cost_of_the_band_sort():
    from neurocarta.methods.topomap.grid import _band_sort

    layout = np.random.default_rng(2).normal(size=(2500, 2))
    shape = grid_shape(2500)
    start = _band_sort(layout, *shape)
    refined, _ = grid_assign(layout, exact_limit=0, window=16)
    assert _cost(layout, refined, shape) < _cost(layout, start, shape)
    assert len(np.unique(refined)) == 2500
