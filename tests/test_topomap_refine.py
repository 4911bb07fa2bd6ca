"""The refinement keeps the distance forces: it improves a poor start and keeps a good one."""

from __future__ import annotations

import numpy as np

from neurocarta.methods.topomap import layout
from neurocarta.methods.topomap.metrics import distance_spearman, trustworthiness
from neurocarta.methods.topomap.refine import refine


def _profiles():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 12)) * 3
    return np.repeat(centres, 40, axis=0) + 0.4 * rng.normal(size=(200, 12))


def test_refinement_improves_a_random_start():
    x = _profiles()
    start = layout(x, method="random", seed=1)
    done = refine(start, x, metric="euclidean", seed=1)
    assert trustworthiness(x, done, metric="euclidean") > trustworthiness(x, start, metric="euclidean") + 0.2
    assert distance_spearman(x, done, metric="euclidean") > 0.5


def test_refinement_of_umap_keeps_neighbours_and_restores_global_distances():
    x = _profiles()
    start = layout(x, method="umap", metric="euclidean", seed=2)
    a = refine(start, x, metric="euclidean", seed=2)
    b = refine(start, x, metric="euclidean", seed=2)
    np.testing.assert_array_equal(a, b)
    # the distance forces are kept: global distances improve a lot, neighbourhoods stay
    assert distance_spearman(x, a, metric="euclidean") > distance_spearman(x, start, metric="euclidean") + 0.2
    assert trustworthiness(x, a, metric="euclidean") > 0.85


def test_topomap_refine_option():
    import neurocarta as nc

    x = _profiles()
    tm = nc.TopoMap(method="random", distance="euclidean", refine=True, seed=0).fit(x)
    assert tm.metrics_["trustworthiness"] > 0.85 and "refine=True" in repr(tm)
