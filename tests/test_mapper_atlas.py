"""nc.mapper on an atlas: node attributes, storage, exports and the CLI."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest

import neurocarta as nc
from test_cli import _one_line_error, nc_cli
from tiny_models import planted_atlas


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return planted_atlas(tmp_path_factory.mktemp("mapper"), layers=["fc", "act", "one"])


def test_planted_classes_become_pure_nodes(atlas):
    r = nc.mapper(atlas, "act", lens="l2", intervals=8, overlap=0.3)
    s = r.summary()
    assert s["n_nodes"] >= 4 and s["mean_purity"] > 0.99 and s["coverage"] > 0.8
    # every class has its own component: no node mixes the planted blocks
    comp = r.graph.components()
    dominant = r.nodes["dominant"].to_numpy()
    for c in np.unique(comp):
        assert len(set(dominant[comp == c])) == 1
    assert set(r.nodes.columns) >= {"size", "dominant", "purity", "entropy", "classes", "accuracy",
                                    "mean_confidence", "mean_lens", "mean_norm"}
    assert (r.nodes["size"] == r.graph.sizes).all()
    lens = np.linalg.norm(atlas.activations("act")[:].astype(np.float64), axis=1)
    first = r.graph.nodes[0]
    assert r.nodes.loc[0, "mean_lens"] == pytest.approx(lens[first].mean(), rel=1e-5)


def test_saves_reloads_and_exports(atlas, tmp_path):
    r = nc.mapper(atlas, "act", intervals=8, save=True)
    back = nc.load_mapper(nc.open_atlas(atlas.root), "act")
    assert [m.tolist() for m in back.graph.nodes] == [m.tolist() for m in r.graph.nodes]
    np.testing.assert_array_equal(back.graph.edges, r.graph.edges)
    assert back.summary() == r.summary()
    assert back.anomalies is not None and len(back.anomalies) == len(r.anomalies)  # the exported ranking
    members = r.members()
    assert len(members) == r.graph.sizes.sum() and set(members.columns) == {"node", "row", "input_id"}
    g = r.to_networkx()
    assert g.number_of_nodes() == r.graph.n_nodes and g.number_of_edges() == r.graph.n_edges
    r.to_graphml(tmp_path / "g.graphml")
    assert nx.read_graphml(tmp_path / "g.graphml").number_of_nodes() == r.graph.n_nodes
    data = json.loads(json.dumps(r.to_json()))
    assert len(data["nodes"]) == r.graph.n_nodes and data["summary"]["n_nodes"] == r.graph.n_nodes


def test_lens_from_a_column_and_bad_input(atlas):
    r = nc.mapper(atlas, "act", lens="confidence", intervals=5)
    assert r.params["lens"] == "confidence" and r.graph.n_nodes > 0
    with pytest.raises(nc.UserError, match="no lens 'nope'"):
        nc.mapper(atlas, "act", lens="nope")
    with pytest.raises(nc.UserError, match="no layer 'x'"):
        nc.mapper(atlas, "x")
    with pytest.raises(nc.UserError, match="overlap"):
        nc.mapper(atlas, "act", overlap=1.5)


def test_cli_json_for_every_layer(atlas):
    r = nc_cli("mapper", atlas.root, "--json", "--intervals", "8", "--quiet")
    assert r.returncode == 0, r.stderr
    layers = {l["layer"]: l for l in json.loads(r.stdout)["layers"]}
    assert sorted(layers) == ["act", "fc", "one"]
    act = layers["act"]
    assert act["n_nodes"] > 0 and act["mean_purity"] > 0.99
    assert act["params"]["intervals"] == 8 and act["params"]["eps"] > 0
    assert {"n_edges", "n_components"} <= set(act)
    assert "intervals must be a whole number >= 1" in _one_line_error(nc_cli("mapper", atlas.root, "--intervals", "0"))


def test_flow_between_layers_and_where_classes_separate(atlas):
    from neurocarta.methods.mapper import flow, separation_layers

    fc, act, one = (nc.mapper(atlas, layer, intervals=8) for layer in ("fc", "act", "one"))
    f = flow(fc, act)
    assert set(f.columns) == {"layer_a", "layer_b", "node_a", "node_b", "shared"}
    assert (f["layer_a"] == "fc").all() and f["shared"].is_monotonic_decreasing
    # shared counts are real intersections of members
    top = f.iloc[0]
    both = np.intersect1d(fc.graph.nodes[top.node_a], act.graph.nodes[top.node_b])
    assert len(both) == top.shared
    # the single-neuron layer mixes the planted classes; act separates every one of them
    assert separation_layers([one, act]) == {"0": "act", "1": "act", "2": "act", "3": "act"}


def test_flipped_labels_rank_at_the_top_of_the_anomalies():
    """2% of the built-in digits get a wrong label; their nodes' majority gives them away."""
    import pandas as pd

    from neurocarta.data import load_data
    from neurocarta.methods.mapper import Mapper, anomalies, node_table
    from neurocarta.methods.mapper.result import MapperResult

    source = load_data("digits")
    table = source.table()
    x = np.stack(source.get(range(len(table)))).reshape(len(table), -1).astype(np.float64)
    rng = np.random.default_rng(0)
    k = int(0.02 * len(table))
    flipped = rng.choice(len(table), k, replace=False)
    labels = table["label"].to_numpy().copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, k)) % 10
    t = pd.DataFrame({"input_id": table["input_id"], "label": labels})
    m = Mapper(lens="pca2", intervals=8, overlap=0.4, min_samples=3).fit(x)
    result = MapperResult("pixels", "final", m.graph_, node_table(m.graph_, t, m.lens_, np.linalg.norm(x, axis=1)),
                          t["input_id"].to_numpy(), m.params)
    ranked = anomalies(result, t)
    precision = np.isin(ranked["input_id"].to_numpy()[:k], flipped).mean()
    assert precision >= 0.5  # 25x the 2% base rate
    assert {"input_id", "label", "node_majority", "score"} == set(ranked.columns)
    assert ranked["score"].is_monotonic_decreasing


def test_sweep_reports_every_setting_and_the_rule_picks_a_covering_stable_one(atlas):
    from neurocarta.methods.mapper import pick_stable, sweep

    x = atlas.activations("act")[:]
    table = sweep(x, atlas.inputs, intervals=(4, 8), overlaps=(0.2, 0.4), metric="cosine")
    assert len(table) == 4 and {"n_nodes", "n_components", "coverage", "purity", "instability"} <= set(table)
    assert (table["eps"] == table["eps"].iloc[0]).all()  # one eps across the grid
    more = table[(table.intervals == 8) & (table.overlap == 0.2)].n_nodes.item()
    fewer = table[(table.intervals == 4) & (table.overlap == 0.2)].n_nodes.item()
    assert more > fewer
    pick = pick_stable(table)
    row = table[(table.intervals == pick["intervals"]) & (table.overlap == pick["overlap"])].iloc[0]
    covered = table[table.coverage >= 0.9]
    assert row.coverage >= 0.9 and row.instability <= covered.instability.median()
