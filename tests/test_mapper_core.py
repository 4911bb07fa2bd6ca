"""Mapper core (issue 4 groundwork): cover arithmetic, exact DBSCAN, KeplerMapper equivalence,
the eps rule, shape summaries and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import DBSCAN

import neurocarta as nc
from neurocarta.methods.mapper import Cover, Mapper, MapperGraph, auto_eps, build_edges, dbscan


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = 6 * np.eye(16)[rng.integers(0, 5, 3000)]
    return np.maximum(0, rng.normal(size=(3000, 16)) + centres)


def test_uniform_cover_bounds_and_overlap():
    lo, hi = Cover(4, 0.5).bounds(np.array([0.0, 8.0]))[0]
    np.testing.assert_allclose(lo, [-1, 1, 3, 5])
    np.testing.assert_allclose(hi, [3, 5, 7, 9])
    # adjacent intervals share exactly `overlap` of their length
    lo, hi = Cover(7, 0.3).bounds(np.linspace(2, 9, 50))[0]
    length = hi - lo
    np.testing.assert_allclose((hi[:-1] - lo[1:]) / length[:-1], 0.3)
    members = Cover(4, 0.5).members(np.arange(9.0))
    assert [m.tolist() for _, m in members] == [[0, 1, 2, 3], [1, 2, 3, 4, 5], [3, 4, 5, 6, 7], [5, 6, 7, 8]]
    # balanced: quantile edges hold about the same number of inputs on a skewed lens
    skewed = np.random.default_rng(0).exponential(size=5000)
    sizes = [len(m) for _, m in Cover(10, 0.2, "balanced").members(skewed)]
    assert max(sizes) < 1.5 * min(sizes)
    # two lens dimensions: hypercubes
    cubes = Cover([2, 3], 0.25).members(np.random.default_rng(1).uniform(size=(400, 2)))
    assert len(cubes) == 6 and all(len(k) == 2 for k, _ in cubes)


@pytest.mark.parametrize("eps, min_samples", [(2.0, 5), (3.0, 10), (2.5, 3)])
def test_dbscan_labels_equal_scikit_learn(blobs, eps, min_samples):
    ours = dbscan(blobs, eps, min_samples)
    theirs = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(blobs)
    np.testing.assert_array_equal(ours, theirs)
    assert len(set(ours)) > 2


@pytest.fixture(scope="module")
def many_classes():
    """6,000 rows of 12 ReLU classes in 32 dimensions: enough rows for the grouped path."""
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 3, (12, 32)) * (rng.uniform(size=(12, 32)) < 0.5)
    lab = rng.integers(0, 12, 6000)
    return np.maximum(0, centres[lab] + 0.35 * rng.normal(size=(6000, 32))).astype(np.float64)


@pytest.mark.parametrize("options", [
    {},                                          # default grouping (11 groups here)
    {"rows_per_group": 200},                     # 30 groups, most pairs pruned
    {"rows_per_group": 200, "keep_bytes": 0},    # masks recomputed in pass two, not kept
    {"rows_per_group": 10**9, "block": 97},      # one group, many ragged row blocks
])
def test_dbscan_paths_equal_scikit_learn(many_classes, options):
    theirs = DBSCAN(eps=1.6, min_samples=6).fit_predict(many_classes)
    ours = dbscan(many_classes, 1.6, 6, **options)
    np.testing.assert_array_equal(ours, theirs)
    assert len(set(theirs)) >= 10 and (theirs == -1).any()  # clusters, borders and noise all occur


def test_dbscan_on_data_without_structure_equals_scikit_learn():
    x = np.random.default_rng(5).uniform(size=(3000, 8))
    np.testing.assert_array_equal(dbscan(x, 0.25, 4, rows_per_group=100),
                                  DBSCAN(eps=0.25, min_samples=4).fit_predict(x))


def test_group_pruning_never_drops_a_close_pair(many_classes):
    from neurocarta.methods.mapper.dbscan import group_rows

    reach = 1.6
    order, starts, near = group_rows(many_classes, reach, rows_per_group=200)
    assert len(starts) - 1 == 30 and np.array_equal(np.sort(order), np.arange(len(many_classes)))
    pruned = np.argwhere(~near)
    assert len(pruned) > 0.5 * near.size  # the bound does prune on class-structured data
    for g, h in pruned[pruned[:, 0] < pruned[:, 1]]:
        a = many_classes[order[starts[g]:starts[g + 1]]]
        b = many_classes[order[starts[h]:starts[h + 1]]]
        closest = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1).min())
        assert closest > reach


@pytest.mark.parametrize("n, overlap, eps, min_samples", [(10, 0.3, 3.0, 5), (20, 0.5, 2.5, 3), (7, 0.2, 3.5, 10)])
def test_nodes_and_edges_equal_keplermapper(blobs, n, overlap, eps, min_samples):
    import kmapper as km

    lens = np.linalg.norm(blobs, axis=1)[:, None]
    ref = km.KeplerMapper(verbose=0).map(lens, blobs, cover=km.Cover(n_cubes=n, perc_overlap=overlap),
                                         clusterer=DBSCAN(eps=eps, min_samples=min_samples))
    g = Mapper(intervals=n, overlap=overlap, eps=eps, min_samples=min_samples).fit(blobs).graph_
    assert {frozenset(m.tolist()) for m in g.nodes} == {frozenset(v) for v in ref["nodes"].values()}
    assert g.n_edges == sum(len(v) for v in ref["links"].values())


def test_auto_eps_rule_is_the_k_distance_quantile():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    eps = auto_eps(x, min_samples=5)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    fourth = np.sort(d, axis=1)[:, 3]  # 5 samples = the point itself and 4 neighbours
    assert eps == pytest.approx(np.quantile(fourth, 0.9))
    # 90% of points are then DBSCAN core points of the whole set
    core = (d <= eps).sum(axis=1) + 1 >= 5
    assert core.mean() == pytest.approx(0.9, abs=0.01)


def _graph(n_nodes, edges):
    nodes = [np.array([i]) for i in range(n_nodes)]
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return MapperGraph(nodes, [(i,) for i in range(n_nodes)], e, np.ones(len(e), dtype=np.int64), np.ones(len(e)))


def test_shape_summary_on_hand_built_graphs():
    y = _graph(4, [(0, 1), (1, 2), (1, 3)]).shape()  # a Y: one branch point, three flares
    assert (y["n_components"], y["loops"], y["n_leaves"], y["n_branch_points"]) == (1, 0, 3, 1)
    assert y["branch_points"] == [1]
    loop = _graph(4, [(0, 1), (1, 2), (2, 3), (3, 0)]).shape()
    assert (loop["n_components"], loop["loops"], loop["n_leaves"]) == (1, 1, 0)
    two = _graph(5, [(0, 1), (2, 3), (3, 4)]).shape()
    assert (two["n_components"], two["loops"], two["n_leaves"]) == (2, 0, 4)


def test_edges_carry_shared_counts_and_jaccard():
    nodes = [np.array([0, 1, 2, 3]), np.array([2, 3, 4]), np.array([5])]
    edges, shared, jac = build_edges(nodes, 6)
    assert edges.tolist() == [[0, 1]] and shared.tolist() == [2]
    assert jac[0] == pytest.approx(2 / 5)


# Bad parameters (raised by fit, the same types as TopoMap's and ConceptAtlas's): tests/test_estimators.py


def test_bad_data_get_clear_errors(blobs):
    with pytest.raises(nc.UserError, match="non-empty"):
        Mapper().fit(np.zeros((0, 4)))
    bad = blobs.copy()
    bad[3, 2] = np.nan
    with pytest.raises(nc.UserError, match="NaN"):
        Mapper().fit(bad)
    import pandas as pd

    with pytest.raises(nc.UserError, match="no lens 'loss'"):
        Mapper(lens="loss").fit(blobs, table=pd.DataFrame({"label": np.zeros(len(blobs))}))
