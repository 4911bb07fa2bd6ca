"""The concept graph per class: weight links, Summit importance, co-activation, cascade."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import neurocarta as nc
from neurocarta.capture.links import find_link_modules, layer_links
from neurocarta.errors import UserError
from neurocarta.methods.concepts.graph import (cascade, class_importance, concept_graph, conditional_top,
                                               require_labels, top_sets)
from neurocarta.models.demo_cnn import DEFAULT_LAYERS, DemoCNN

import tiny_models

# fc2's weights for the hand-computed two-layer example: 3 outputs x 4 inputs.
W2 = np.array([[1.0, -2.0, 0.0, 1.0],
               [0.5, 0.0, -1.0, 2.0],
               [3.0, 1.0, 1.0, -1.0]], dtype=np.float32)


def _mlp() -> nn.Module:
    net = nn.Sequential(OrderedDict(fc1=nn.Linear(2, 4), act1=nn.ReLU(), fc2=nn.Linear(4, 3), act2=nn.ReLU()))
    with torch.no_grad():
        net.fc2.weight.copy_(torch.from_numpy(W2))
    return net


def _edges(graph) -> dict[tuple, float]:
    """{(source layer, source cluster, target layer, target cluster): weight}."""
    nodes = graph.nodes
    return {(nodes.at[r.source, "layer"], nodes.at[r.source, "cluster"],
             nodes.at[r.target, "layer"], nodes.at[r.target, "cluster"]): r.weight
            for r in graph.edges.itertuples()}


# ----------------------------------------------------------------------------- links

def test_weight_edges_match_a_hand_computation():
    links = layer_links(_mlp(), torch.zeros(1, 2), ["act1", "act2"])
    assert list(links) == [("act1", "act2")]
    np.testing.assert_array_equal(links[("act1", "act2")], np.abs(W2))
    clusters = {"act1": np.array([0, 0, 1, 1]), "act2": np.array([0, 1, 1])}
    mean = {"act1": np.array([1.0, 2.0, 3.0, 4.0])}
    g = concept_graph(clusters, {"act1": np.ones(4), "act2": np.ones(3)}, links=links, mean_activation=mean,
                      top_fraction=1.0)
    # w(A, B) = sum_{a in A, b in B} |W[b, a]| * m_a, by hand:
    #   A0={0,1} -> B0={0}:   1*1 + 2*2                 = 5
    #   A1={2,3} -> B0:       0*3 + 1*4                 = 4
    #   A0 -> B1={1,2}:       0.5*1 + 0*2 + 3*1 + 1*2   = 5.5
    #   A1 -> B1:             1*3 + 2*4 + 1*3 + 1*4     = 18
    assert _edges(g) == pytest.approx({("act1", 0, "act2", 0): 5.0, ("act1", 1, "act2", 0): 4.0,
                                       ("act1", 0, "act2", 1): 5.5, ("act1", 1, "act2", 1): 18.0})
    assert set(g.edges["kind"]) == {"weight"}
    # Top half by importance: act1 keeps neurons 0, 1 (cluster 0), act2 keeps 1, 2 (cluster 1).
    g = concept_graph(clusters, {"act1": np.array([4.0, 3, 2, 1]), "act2": np.array([0.0, 5, 1])}, links=links,
                      mean_activation=mean, top_fraction=0.5)
    assert g.nodes[["layer", "cluster", "importance", "n_members"]].values.tolist() == [
        ["act1", 0, 7.0, 2], ["act2", 1, 6.0, 2]]
    assert g.nodes["members"].tolist() == [[0, 1], [1, 2]]
    assert _edges(g) == pytest.approx({("act1", 0, "act2", 1): 5.5})
    nxg = g.to_networkx()
    assert nxg.edges[0, 1]["weight"] == pytest.approx(5.5) and nxg.nodes[1]["cluster"] == 1


def test_grouped_conv_links_are_block_diagonal():
    net = nn.Sequential(OrderedDict(c1=nn.Conv2d(1, 2, 1), r1=nn.ReLU(),
                                    c2=nn.Conv2d(2, 4, 3, padding=1, groups=2, bias=False), r2=nn.ReLU()))
    with torch.no_grad():
        w = torch.ones(4, 1, 3, 3) * torch.arange(1.0, 5.0)[:, None, None, None]
        w[:, :, 0, 0] *= -1  # signs must not cancel: |W| is summed over the kernel
        net.c2.weight.copy_(w)
    links = layer_links(net, torch.zeros(1, 1, 5, 5), ["r1", "r2"])
    # Output channels 0, 1 read input channel 0 and 2, 3 read channel 1; 9 taps each.
    np.testing.assert_array_equal(links[("r1", "r2")], [[9, 0], [18, 0], [0, 27], [0, 36]])


def test_links_on_the_demo_cnn():
    torch.manual_seed(0)
    model = DemoCNN(n_classes=8)
    x = torch.rand(2, 3, 32, 32)
    modules = find_link_modules(model, x, DEFAULT_LAYERS)
    assert modules == {
        ("features.block1", "features.block2"): "features.block2.conv",
        ("features.block2", "features.block3"): "features.block3.conv",
        ("features.block3", "features.block4"): "features.block4.conv",
        ("features.block4", "head.relu"): "head.fc1",  # after avg-pool + flatten: the width fallback
        ("head.relu", "head.fc2"): "head.fc2",
    }
    links = layer_links(model, x, DEFAULT_LAYERS)
    assert model.training  # the mode is restored
    f = model.features
    want = {
        ("features.block1", "features.block2"): f.block2.conv.weight.abs().sum((2, 3)),
        ("features.block2", "features.block3"): f.block3.conv.weight.abs().sum((2, 3)),
        ("features.block3", "features.block4"): f.block4.conv.weight.abs().sum((2, 3)),
        ("features.block4", "head.relu"): model.head.fc1.weight.abs(),
        ("head.relu", "head.fc2"): model.head.fc2.weight.abs(),
    }
    assert list(links) == list(want)
    for pair, w in want.items():
        assert links[pair].dtype == np.float32
        np.testing.assert_allclose(links[pair], w.detach().numpy(), rtol=1e-6)
    assert links[("features.block1", "features.block2")].shape == (32, 16)
    assert links[("head.relu", "head.fc2")].shape == (8, 128)


def test_no_linking_module_means_no_entry():
    # tiny cnn: conv (6 channels) -> pool(2) -> flatten (24) -> fc: no module reads 6 channels.
    links = layer_links(tiny_models.cnn(), torch.zeros(1, 3, 8, 8), ["conv", "act", "head"])
    assert list(links) == [("act", "head")]


# ----------------------------------------------------------------------------- importance

def test_class_importance_by_hand():
    x = np.array([[4, 3, 2, 1, 0],    # total 10, mass 5: channel 0 (0 above), 1 (4 above); 2 has 7 above
                  [0, 0, 10, 0, 0],   # one channel holds everything
                  [1, 1, 1, 1, -5],   # negatives count 0; ties by index: 0 (0 above), 1 (1 above), not 2 (2)
                  [0, 0, 0, 0, 0],    # a dead row counts nothing
                  [1, 0, 0, 0, 0]], dtype=np.float32)
    labels = np.array([0, 1, 0, 1, -1])  # -1: unknown, skipped
    expected_top = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0],
                             [1, 0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(top_sets(x, mass=0.5), expected_top)
    a = class_importance(x, labels, n_classes=3, mass=0.5)
    np.testing.assert_array_equal(a, [[2, 2, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    # With Summit's 3% the top channel always counts, even when it alone holds more.
    np.testing.assert_array_equal(top_sets(x[:1]), [[1, 0, 0, 0, 0]])


def test_class_importance_is_the_same_across_chunks():
    rng = np.random.default_rng(0)
    x = rng.gamma(1.0, size=(5000, 12))  # more rows than one chunk
    labels = rng.integers(0, 3, 5000)
    want = np.zeros((3, 12), dtype=np.int64)
    for row, lab in zip(x, labels):  # one input at a time, the rule in words
        order = np.argsort(-row, kind="stable")
        above = 0.0
        for c in order:
            if above >= 0.1 * row.sum():
                break
            want[lab, c] += 1
            above += row[c]
    np.testing.assert_array_equal(class_importance(x, labels, 3, mass=0.1), want)


# ----------------------------------------------------------------------------- co-activation

def test_coactivation_edges_by_hand():
    top_a = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=bool)
    top_b = np.array([[1, 0], [0, 1], [0, 1], [1, 1]], dtype=bool)
    # a0 is top in inputs 0, 1, 3; a1 in 1, 2; a2 never.
    np.testing.assert_allclose(conditional_top(top_a, top_b), [[2 / 3, 0, 0], [2 / 3, 1, 0]])
    g = concept_graph({"a": np.array([0, 0, 1]), "b": np.array([0, 1])}, {"a": np.ones(3), "b": np.ones(2)},
                      top_fraction=1.0, coactivation={"a": top_a, "b": top_b})
    # Summed over member pairs: A0={0,1} -> B0: 2/3 + 0; A0 -> B1: 2/3 + 1; A1={2} never top: no edge.
    assert _edges(g) == pytest.approx({("a", 0, "b", 0): 2 / 3, ("a", 0, "b", 1): 5 / 3})
    assert set(g.edges["kind"]) == {"coactivation"}


def test_weight_where_linked_coactivation_elsewhere():
    links = {("x", "a"): np.ones((3, 2))}
    top = {"a": np.eye(3, dtype=bool), "b": np.eye(3, 2, dtype=bool)}
    g = concept_graph({"x": np.array([0, 1]), "a": np.array([0, 0, 1]), "b": np.array([0, 0])},
                      {"x": np.ones(2), "a": np.ones(3), "b": np.ones(2)}, links=links,
                      mean_activation={"x": np.array([1.0, 2.0])}, top_fraction=1.0, coactivation=top)
    kinds = g.edges.assign(src=g.nodes.loc[g.edges["source"], "layer"].to_numpy()).groupby("src")["kind"].unique()
    assert kinds["x"].tolist() == ["weight"] and kinds["a"].tolist() == ["coactivation"]
    assert _edges(g)[("x", 1, "a", 0)] == pytest.approx(2.0 * 2)  # two targets x |w|=1 x m=2


# ----------------------------------------------------------------------------- cascade

def _chain():
    clusters = {"l0": np.array([0, 1]), "l1": np.array([0, 1, 2]), "l2": np.array([5, 7])}
    links = {("l0", "l1"): np.array([[9.0, 1.0], [0.0, 2.0], [0.0, 3.0]]),
             ("l1", "l2"): np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 1.0]])}
    return clusters, links


def test_cascade_follows_the_strongest_paths():
    clusters, links = _chain()
    out = cascade(clusters, ("l0", 1), links=links, top=5)
    # l1: |W| column 1 = [1, 2, 3] -> shares 1/6, 2/6, 3/6: cluster 2 first.
    # l2: [3 * 1/6, 2/6 + 3/6] = [0.5, 0.833] -> shares 0.375, 0.625: cluster 7 first.
    assert out[["layer", "cluster"]].values.tolist() == [["l1", 2], ["l1", 1], ["l1", 0], ["l2", 7], ["l2", 5]]
    np.testing.assert_allclose(out["score"], [0.5, 1 / 3, 1 / 6, 0.625, 0.375])
    best = cascade(clusters, ("l0", 1), links=links, top=1)
    assert best[["layer", "cluster"]].values.tolist() == [["l1", 2], ["l2", 7]]
    # From neuron 0, almost all weight goes to l1's neuron 0 and then to l2's cluster 5.
    assert cascade(clusters, ("l0", 0), links=links, top=1)["cluster"].tolist() == [0, 5]
    # A class for which l1's neuron 2 is silent: the path through it carries nothing, so
    # l1 = [1, 2, 0] / 3 and l2 = [3 * 1/3, 2/3] -> shares 0.6, 0.4: the winner flips to 5.
    gated = cascade(clusters, ("l0", 1), links=links, top=1, mean_activation={"l1": np.array([1.0, 1.0, 0.0])})
    assert gated["cluster"].tolist() == [1, 5]
    np.testing.assert_allclose(gated["score"], [2 / 3, 0.6])
    # Starting from a cluster, and continuing by co-activation where no link exists.
    top = {"l1": np.array([[1, 0, 0], [0, 0, 1]], dtype=bool), "l2": np.array([[0, 1], [1, 0]], dtype=bool)}
    mixed = cascade(clusters, ("l1", 2), coactivation=top, top=1, unit="cluster")
    assert mixed[["layer", "cluster"]].values.tolist() == [["l2", 5]]


# ----------------------------------------------------------------------------- round trip

def test_extraction_stores_links_per_snapshot(tmp_path):
    rng = np.random.default_rng(1)
    npz = tmp_path / "img.npz"
    np.savez(npz, x=rng.integers(0, 256, size=(12, 6, 6, 3)).astype(np.uint8), y=rng.integers(0, 4, 12))
    model = tiny_models.cnn()
    paths = []
    for i, scale in enumerate((1.0, -2.0)):
        with torch.no_grad():
            model.head.weight.mul_(scale)
        paths.append(tmp_path / f"epoch{i + 1}.pt")
        torch.save(model.state_dict(), paths[-1])
    weights = [np.abs(torch.load(p)["head.weight"].numpy()) for p in paths]
    atlas = nc.extract("py:tiny_models:cnn_bundle", f"npz:{npz}", tmp_path / "a", layers=["conv", "act", "head"],
                       snapshots=[str(p) for p in paths], batch_size=8, topk=3, progress=False)
    for snap, w in zip(["epoch1", "epoch2"], weights):
        links = atlas.links(snap)
        assert list(links) == [("act", "head")]
        np.testing.assert_array_equal(links[("act", "head")], w)
    code = ("import sys, numpy as np, neurocarta as nc; a = nc.open_atlas(sys.argv[1]); "
            "w = a.links()[('act', 'head')]; print(w.shape, round(float(w.sum()), 4), 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["(4,", "8)", str(round(float(weights[1].sum()), 4)), "False"]
    shutil.rmtree(tmp_path / "a" / "links")  # an atlas from before links existed
    assert nc.open_atlas(tmp_path / "a").links() == {}


# ----------------------------------------------------------------------------- errors

def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(UserError, match="the atlas has no labels, so there is no per-class graph"):
        require_labels(None)
    with pytest.raises(UserError, match="has no labels"):
        require_labels(np.full(4, -1))
    np.testing.assert_array_equal(require_labels(np.array([1.0, np.nan, 0.0])), [1, -1, 0])
    x = np.ones((3, 4))
    with pytest.raises(UserError, match="2 labels for 3 inputs"):
        class_importance(x, [0, 1], 2)
    with pytest.raises(UserError, match="n_classes is 2"):
        class_importance(x, [0, 1, 2], 2)
    with pytest.raises(UserError, match="mass"):
        top_sets(x, mass=0)
    with pytest.raises(UserError, match="NaN"):
        top_sets(np.array([[1.0, np.nan]]))
    clusters = {"a": np.array([0, 1]), "b": np.array([0, 0, 1])}
    imp = {"a": np.ones(2), "b": np.ones(3)}
    with pytest.raises(UserError, match=r"has shape \(2, 3\), expected \(3, 2\)"):
        concept_graph(clusters, imp, links={("a", "b"): np.ones((2, 3))}, mean_activation={"a": np.ones(2)})
    with pytest.raises(UserError, match="need its mean activation"):
        concept_graph(clusters, imp, links={("a", "b"): np.ones((3, 2))})
    with pytest.raises(UserError, match="no influence between 'a' and 'b'"):
        concept_graph(clusters, imp)
    with pytest.raises(UserError, match="importance of shape"):
        concept_graph(clusters, {"a": np.ones(3), "b": np.ones(3)}, coactivation={})
    with pytest.raises(UserError, match="same inputs"):
        concept_graph(clusters, imp, coactivation={"a": np.ones((4, 2), bool), "b": np.ones((5, 3), bool)})
    with pytest.raises(UserError, match="not among the layers"):
        cascade(clusters, ("c", 0), links={("a", "b"): np.ones((3, 2))})
    with pytest.raises(UserError, match="neurons 0..1, not 5"):
        cascade(clusters, ("a", 5), links={("a", "b"): np.ones((3, 2))})
    with pytest.raises(UserError, match="no cluster 9"):
        cascade(clusters, ("a", 9), links={("a", "b"): np.ones((3, 2))}, unit="cluster")
