"""The concept atlas end to end: the ConceptAtlas estimator on planted neuron groups,
nc.concepts on an atlas (storage, class graphs, the CLI, bad input) and on the demo."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import neurocarta as nc
from neurocarta.cli import main
from test_cli import _one_line_error, nc_cli
from tiny_models import planted_atlas, planted_data


def planted_sets(groups=20, size=10, noise=200, n_inputs=20000, k=100, own=0.8, seed=0):
    """Exemplar sets: ``groups`` x ``size`` neurons whose sets take ``own`` of a shared core of
    k inputs (the rest random), plus ``noise`` neurons with random sets. Truth: group or -1."""
    rng = np.random.default_rng(seed)
    sets, truth = [], []
    for g in range(groups):
        core = rng.choice(n_inputs, k, replace=False)
        for _ in range(size):
            mine = rng.choice(core, int(own * k), replace=False)
            sets.append(np.concatenate([mine, rng.choice(n_inputs, k - len(mine), replace=False)]))
            truth.append(g)
    for _ in range(noise):
        sets.append(rng.choice(n_inputs, k, replace=False))
        truth.append(-1)
    order = rng.permutation(len(sets))
    return [sets[i] for i in order], np.asarray(truth)[order]


def test_planted_groups_are_recovered():
    sets, truth = planted_sets()
    model = nc.ConceptAtlas(k=100, threshold=0.2, seed=0).fit(sets)
    planted = truth >= 0
    ari = adjusted_rand_score(truth[planted], model.clusters_[planted])
    print(f"\nplanted groups: ARI {ari:.3f}, sizes {model.sizes_['sizes'][:5]}")
    assert ari >= 0.9
    assert (model.clusters_[~planted] == -1).mean() > 0.95  # random neurons stay alone
    assert model.sizes_["n_groups"] == 20 and model.sizes_["max"] == 10
    # the embedding puts a neuron's group first: nearest neighbours in embedding space
    first = int(np.flatnonzero(planted)[0])
    near, sim = model.nearest(first, k=5)
    assert (truth[near] == truth[first]).all() and (np.diff(sim) <= 1e-6).all()
    assert model.projection_.shape == (len(sets), 2) and model.embedding_.shape == (len(sets), 30)
    # verified edges only: every kept pair reaches the threshold
    assert (model.graph_.jaccard >= 0.2).all()


def test_components_chain_where_leiden_splits():
    """Two planted groups joined by one bridge neuron: components merge them, Leiden does not."""
    sets, truth = planted_sets(groups=2, size=12, noise=0, own=0.9, seed=1)
    a = sets[int(np.flatnonzero(truth == 0)[0])]
    b = sets[int(np.flatnonzero(truth == 1)[0])]
    bridge = np.concatenate([a[:50], b[:50]])
    model = nc.ConceptAtlas(k=100, threshold=0.25, method="components").fit(sets + [bridge])
    assert model.sizes_["n_groups"] == 1
    leiden = nc.ConceptAtlas(k=100, threshold=0.25).fit(sets + [bridge])
    assert leiden.sizes_["n_groups"] == 2


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return planted_atlas(tmp_path_factory.mktemp("concepts"), layers=["fc", "act", "head"])


def test_concepts_on_an_atlas_find_the_planted_blocks(atlas):
    r = nc.concepts(atlas, k=100, draws=10)
    n = r.neurons
    act = n[n["layer"] == "act"]
    # 4 blocks of 6 neurons, each firing for one class: 4 groups of 6
    assert sorted(r.sizes["act"]["sizes"]) == [6, 6, 6, 6]
    blocks = act["unit"].to_numpy() // 6
    assert adjusted_rand_score(blocks, act["cluster"].to_numpy()) == 1.0
    coh = r.coherence.set_index(["layer", "attribute"])
    assert coh.loc[("act", "label"), "coherence"] > 0.95
    assert coh.loc[("act", "label"), "random_coherence"] < 0.6
    # class graphs: the class's block leads its graph, joined to its logit by weight links
    g = r.graph(atlas.class_names[2])
    top = g.nodes[g.nodes["layer"] == "act"].iloc[0]
    assert set(np.asarray(top["members"]) // 6) == {2}
    assert set(g.edges["kind"]) <= {"weight", "coactivation"} and len(g.edges) > 0


def test_saves_reloads_and_cli_json(atlas):
    r = nc.concepts(atlas, k=100, draws=10, save=True)
    back = nc.load_concepts(nc.open_atlas(atlas.root))
    assert back.neurons.equals(r.neurons)
    np.testing.assert_allclose(back.embedding, r.embedding)
    assert [m.tolist() for m in back.clusters["members"]] == [m.tolist() for m in r.clusters["members"]]
    assert list(back.graphs) == list(r.graphs)
    name = next(iter(r.graphs))
    assert back.graphs[name].edges.equals(r.graphs[name].edges)
    assert back.summary() == r.summary()
    out = nc_cli("concepts", atlas.root, "--k", "100", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    layers = {l["layer"]: l for l in json.loads(out.stdout)["layers"]}
    assert sorted(layers) == ["act", "fc", "head"]
    assert layers["act"]["n_clusters"] == 4 and layers["act"]["sizes"] == [6, 6, 6, 6]
    assert layers["act"]["coherence"]["label"] > layers["act"]["random_coherence"]["label"]
    assert any((atlas.root / "figures" / "concepts").glob("projection@*.png"))


def test_bad_input(atlas, tmp_path):
    with pytest.raises(nc.UserError, match="larger than the number of inputs"):
        nc.concepts(atlas, k=601)
    with pytest.raises(nc.UserError, match=r"more than the 100 exemplars"):
        nc.concepts(atlas, k=200)
    for bad in (0, 1.5, -0.1):
        with pytest.raises(nc.UserError, match=r"threshold must be a number in \(0, 1\]"):
            nc.concepts(atlas, threshold=bad)
    assert "threshold must be a number in (0, 1]" in _one_line_error(nc_cli("concepts", atlas.root, "--threshold", "2"))
    # a layer whose top-k is missing
    broken = tmp_path / "broken"
    shutil.copytree(atlas.root, broken)
    snap = nc.open_atlas(broken).snapshots[-1]
    shutil.rmtree(broken / "topk" / snap / "act")
    line = _one_line_error(nc_cli("concepts", broken))
    assert "topk" in line and "re-extract" in line
    # class graphs need labels
    x = np.load(planted_data(tmp_path / "d.npz", n=200))["x"]
    np.savez(tmp_path / "nolabels.npz", x=x)
    bare = nc.extract("py:tiny_models:planted_net", f"npz:{tmp_path / 'nolabels.npz'}", tmp_path / "bare",
                      layers=["act"], progress=False)
    assert not nc.concepts(bare, k=50).graphs  # by default: no labels, no class graphs
    with pytest.raises(nc.UserError, match="no labels"):
        nc.concepts(bare, k=50, class_graphs=True)


def test_the_default_k_fits_a_small_atlas(tmp_path, capsys):
    """`neurocarta map` on 100 inputs or fewer stopped with "k=100 is larger than the number of
    inputs (60)": the default k now fits the atlas, with one warning line; an explicit k that
    is too large stays an error."""
    small = nc.extract("py:tiny_models:planted_net", f"npz:{planted_data(tmp_path / 'd.npz', n=60)}",
                       tmp_path / "small", layers=["fc", "act"], progress=False)
    with pytest.warns(UserWarning) as caught:
        result = nc.concepts(small, draws=5)
    notes = [str(w.message) for w in caught if "exemplars per neuron" in str(w.message)]  # not umap's import notes
    assert notes == ["concepts use k=60 exemplars per neuron instead of the default 100, since the atlas has only "
                     "60 inputs; pass --k to choose another"]
    assert result.params["k"] == 60 and result.summary()["layers"][0]["n_clusters"] >= 1
    with pytest.raises(nc.UserError, match=r"k=100 is larger than the number of inputs \(60\)"):
        nc.concepts(small, k=100)
    # the CLI's default too (`map` leaves k to the default as well)
    with pytest.warns(UserWarning, match="k=60 exemplars per neuron instead of the default 100"):
        assert main(["concepts", str(small.root), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"][0]["n_clusters"] >= 1
    # an atlas that stored fewer exemplars than the default (extract --topk 30) fits them
    few = nc.extract("py:tiny_models:planted_net", f"npz:{tmp_path / 'd.npz'}", tmp_path / "few", layers=["act"],
                     topk=30, progress=False)
    with pytest.warns(UserWarning, match=r"k=30 .* since the atlas stored only 30 per neuron \(extract --topk\)"):
        assert nc.concepts(few, draws=5).params["k"] == 30


@pytest.mark.slow
def test_demo_concepts_beat_random_groups(demo_atlas):
    """On the shapes demo, groups share what their exemplars show: colour early, class late."""
    r = nc.concepts(demo_atlas, draws=20, class_graphs=False)
    c = r.coherence.set_index(["layer", "attribute"])
    rows = []
    for layer, attribute in [("features.block1", "colour"), ("features.block4", "label"), ("head.relu", "label")]:
        got, rand = c.loc[(layer, attribute), "coherence"], c.loc[(layer, attribute), "random_coherence"]
        rows.append(f"{layer} {attribute}: {got:.2f} vs random {rand:.2f}")
        assert got >= rand + 0.25, rows[-1]
    print("\ncoherence on the demo: " + "; ".join(rows))


def test_snapshots_align_to_the_last(tmp_path):
    from tiny_models import planted_snapshots

    data = planted_data(tmp_path / "d.npz", n=600)
    atlas = nc.extract("py:tiny_models:planted_net", f"npz:{data}", tmp_path / "a", layers=["act"],
                       snapshots=planted_snapshots(tmp_path / "ckpt"), progress=False)
    last = nc.concepts(atlas, k=100, draws=5, class_graphs=False)
    first = atlas.snapshots[0]
    free = nc.concepts(atlas, k=100, draws=5, class_graphs=False, snapshot=first, seed=7)
    aligned = nc.concepts(atlas, k=100, draws=5, class_graphs=False, snapshot=first, seed=7, align_to=last)
    ref = last.neurons[["x", "y"]].to_numpy()

    def gap(r):
        return float(np.nanmean(np.linalg.norm(r.neurons[["x", "y"]].to_numpy() - ref, axis=1)))

    assert gap(aligned) < gap(free)
    assert aligned.neurons["cluster"].equals(free.neurons["cluster"])  # alignment moves points only
    with pytest.raises(nc.UserError, match="same layers"):
        other = nc.concepts(atlas, k=100, draws=5, class_graphs=False)
        other.neurons = other.neurons.iloc[:10]
        nc.concepts(atlas, k=100, draws=5, class_graphs=False, snapshot=first, align_to=other)
