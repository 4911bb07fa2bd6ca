"""`neurocarta compare`: selections (--where, --vs, --within), a planted difference found with FDR,
the significance-map figure, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import neurocarta as nc
from neurocarta.cli import main
from neurocarta.errors import UserError
from neurocarta.store.where import Clause, parse_where, where_mask
from tiny_models import N_BLOCK

CLASSES = ["circle", "square", "star", "checker"]
COLOURS = ["red", "green", "blue", "cyan"]
PLANTED = 4 * N_BLOCK - 1  # the last neuron of layer act: it fires for red inputs, whatever their class


@pytest.fixture(scope="module")
def atlas_dir(tmp_path_factory):
    """PlantedNet (layer act copies its 24 inputs through a ReLU) on 400 inputs of 4 classes,
    with a colour drawn independently of the class; red raises input PLANTED by 1.5."""
    d = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 4, n)
    colour = np.asarray(COLOURS)[rng.integers(0, 4, n)]
    x = rng.normal(0.0, 0.3, size=(n, 24)).astype(np.float32)
    for g in range(4):
        x[y == g, g * N_BLOCK:(g + 1) * N_BLOCK] += 2.0
    x[colour == "red", PLANTED] += 1.5
    brightness = rng.uniform(0, 1, n)
    np.savez(d / "data.npz", x=x, y=y, class_names=np.asarray(CLASSES), colour=colour, brightness=brightness)
    nc.extract("py:tiny_models:planted_net", f"npz:{d / 'data.npz'}", d / "atlas", layers=["act"], progress=False)
    return d / "atlas"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(capsys, *args) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurocarta: error: "), err
    return lines[0]


# --- parsing and selecting ---------------------------------------------------------------

def test_every_clause_form_parses():
    assert parse_where("colour=red") == [Clause("colour", "=", ("red",))]
    assert parse_where("colour == red") == [Clause("colour", "=", ("red",))]
    assert parse_where("colour!=red") == [Clause("colour", "!=", ("red",))]
    assert parse_where("colour=red,blue") == [Clause("colour", "=", ("red", "blue"))]
    assert parse_where("brightness>0.5") == [Clause("brightness", ">", ("0.5",))]
    assert parse_where("size<=3") == [Clause("size", "<=", ("3",))]
    assert parse_where("size>=3") == [Clause("size", ">=", ("3",))]
    assert parse_where("size<3") == [Clause("size", "<", ("3",))]
    assert parse_where("colour=red and label=checker") == [Clause("colour", "=", ("red",)),
                                                           Clause("label", "=", ("checker",))]
    assert parse_where(["colour=red", "size>1 and size<4"]) == [
        Clause("colour", "=", ("red",)), Clause("size", ">", ("1",)), Clause("size", "<", ("4",))]
    # an " and " inside a value stays in the value; quotes are taken off
    assert parse_where("texture='salt and pepper'") == [Clause("texture", "=", ("salt and pepper",))]
    for bad in ("colour", "colour=", "=red", "", "colour=red,", "size>"):
        with pytest.raises(UserError):
            parse_where(bad)


def test_values_compare_as_the_column_type():
    table = pd.DataFrame({"label": [0, 1, 2, 3, 0], "colour": ["red", "blue", None, "red", "green"],
                          "brightness": [0.1, 0.6, 0.9, np.nan, 0.5], "flag": [True, False, True, False, True],
                          "size": pd.array([1, 2, None, 4, 5], dtype="Int64")})
    names = {"label": {"circle": 0, "checker": 3}}

    def rows(text):
        return np.flatnonzero(where_mask(table, parse_where(text), names)).tolist()

    assert rows("colour=red") == [0, 3]
    assert rows("colour!=red") == [1, 4]  # a missing colour is not known to be "not red"
    assert rows("colour=red,green") == [0, 3, 4]
    assert rows("brightness>0.5") == [1, 2]
    assert rows("brightness<=0.5") == [0, 4]
    assert rows("size>=2 and size<5") == [1, 3]
    assert rows("label=checker") == [3] and rows("label=0") == [0, 4] and rows("label=circle,3") == [0, 3, 4]
    assert rows("flag=true") == [0, 2, 4] and rows("flag=False") == [1, 3]
    # a number is the column's own value even where a class is named by that number elsewhere
    assert np.flatnonzero(where_mask(table, parse_where("label=1"), {"label": {"1": 2}})).tolist() == [1]
    with pytest.raises(UserError, match=r"no row has colour=purple; colour has: blue, green, red"):
        rows("colour=purple")
    with pytest.raises(UserError, match=r"no column 'hue'.*columns: label, colour, brightness"):
        rows("hue=red")
    with pytest.raises(UserError, match=r"'colour' is not numeric"):
        rows("colour>1")
    with pytest.raises(UserError, match=r"'label' holds numbers or a class name \(circle, checker\), not 'dog'"):
        rows("label=dog")
    with pytest.raises(UserError, match=r"no row has label=7; label has: 0 \(circle\), 1, 2, 3 \(checker\)"):
        rows("label=7")


# --- the command ---------------------------------------------------------------------------

def test_the_planted_neuron_is_the_one_significant_difference(atlas_dir, capsys):
    code, out, err = run(capsys, "compare", atlas_dir, "--layer", "act", "--where", "colour=red", "--vs",
                         "colour!=red", "--json")
    assert code == 0, err
    r = json.loads(out)
    table = nc.open_atlas(atlas_dir).input_table
    red = int((table["colour"] == "red").sum())
    assert r["groups"]["a"] == {"where": "colour=red", "n_inputs": red, "n_rows": red, "n_tested": red}
    assert r["groups"]["b"]["n_inputs"] == len(table) - red and r["within"] is None
    assert r["test"] == "permutation" and r["permutations"] == 1000 and r["fdr"] == 0.05
    assert r["n_neurons"] == 24 and r["n_significant"] == 1
    top = r["neurons"][0]
    assert top["neuron"] == PLANTED and top["significant"] and top["q"] <= 0.05
    assert 1.0 < top["difference"] < 1.8 and top["effect"] > 1  # ReLU and the class block damp the 1.5
    # the class blocks are balanced across colours: none of the 23 others differs
    assert not any(n["significant"] for n in r["neurons"][1:])
    assert sorted(n["neuron"] for n in r["neurons"]) == list(range(24))
    # no stored topomap yet: the numbers come anyway, with a note naming the command that draws it
    assert r["figure"] is None and "neurocarta topomap" in err


def test_within_restricts_both_groups_and_the_label_by_class_name(atlas_dir, capsys):
    table = nc.open_atlas(atlas_dir).input_table
    checker = table["label"] == CLASSES.index("checker")
    code, out, err = run(capsys, "compare", atlas_dir, "--layer", "act", "--where", "colour=red",
                         "--within", "label=checker", "--json")
    assert code == 0, err
    r = json.loads(out)
    red_checker = int((checker & (table["colour"] == "red")).sum())
    assert r["within"] == "label=checker"
    assert r["groups"]["a"]["n_inputs"] == red_checker
    assert r["groups"]["b"]["n_inputs"] == int(checker.sum()) - red_checker
    assert r["groups"]["b"]["where"] == "not (colour=red)"
    assert r["neurons"][0]["neuron"] == PLANTED and r["neurons"][0]["significant"]
    # repeated flags and ' and ' are the same selection; a list of values is any of them. Too few
    # permutations for any lone neuron to pass the FDR are said, not left to read as "no difference"
    with pytest.warns(UserWarning, match="too coarse for a single neuron of 24 to pass FDR 0.05; use "
                                         "--permutations 480 or more"):
        code, out, _ = run(capsys, "compare", atlas_dir, "--layer", "act", "--where", "colour=red",
                           "--where", "label=checker", "--vs", "colour=green,blue and label=checker",
                           "--permutations", "50", "--json")
    r = json.loads(out)
    assert code == 0 and r["groups"]["a"]["n_inputs"] == red_checker
    assert r["groups"]["b"]["n_inputs"] == int((checker & table["colour"].isin(["green", "blue"])).sum())


def test_text_report_and_the_figure_on_the_stored_layout(atlas_dir, capsys, tmp_path):
    assert main(["topomap", str(atlas_dir), "--layers", "act", "--method", "pca", "--quiet"]) == 0
    capsys.readouterr()
    fig = tmp_path / "red.png"
    code, out, err = run(capsys, "compare", atlas_dir, "--layer", "act", "--where", "colour=red",
                         "--top", "3", "--out", fig)
    assert code == 0, err
    assert fig.stat().st_size > 5000
    lines = out.splitlines()
    assert lines[0].startswith("layer act: A = colour=red (") and "B = not (colour=red)" in lines[0]
    assert "1 of 24 neurons differ at FDR 0.05" in lines[1]
    assert lines[3].split()[0] == str(PLANTED) and lines[3].endswith("*")
    assert len([l for l in lines if l.endswith("*")]) == 1 and f"figure: {fig}" in out
    # without --out the figure goes under the atlas
    code, out, _ = run(capsys, "compare", atlas_dir, "--layer", "act", "--where", "brightness>0.5",
                       "--permutations", "500", "--json")
    written = json.loads(out)["figure"]
    assert code == 0 and (atlas_dir / "figures" / "compare").as_posix() in written
    assert (atlas_dir / "figures" / "compare" / "act@brightness_0.5_vs_not_brightness_0.5.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--where", "hue=red"], "no column 'hue' in hue=red; columns: input_id, label, label_name"),
    (["--where", "colour=purple"], "no row has colour=purple; colour has: blue, cyan, green, red"),
    (["--where", "label=dog"], "holds numbers or a class name (circle, square, star, checker), not 'dog'"),
    (["--where", "brightness>2"], "group A (brightness>2) has no inputs"),
    (["--where", "colour=red", "--vs", "colour=red,blue"], "groups A (colour=red) and B (colour=red,blue) share"),
    (["--where", "colour=red", "--within", "colour=blue"], "group A (colour=red) has no inputs within colour=blue"),
    (["--where", "colour"], "cannot read the selection 'colour'"),
    (["--where", "colour=red", "--fdr", "2"], "the FDR level must be between 0 and 1"),
    (["--where", "colour=red", "--layer", "nope"], "nope"),
    (["--where", "colour=red", "--snapshot", "epoch9"], "epoch9"),
])
def test_bad_input_exits_2_with_one_line(atlas_dir, capsys, args, message):
    line = one_line_error(capsys, "compare", atlas_dir, "--layer", "act", *args)
    assert message in line, line


def test_the_difference_map_shows_the_lone_neuron_and_no_colour_no_neuron_has(atlas_dir):
    """A difference carried by one neuron among unchanged neighbours: the figure marks it in its own
    colour, and the interpolated map stays within the neurons' values (a cubic surface overshot
    to the opposite sign, painting a region dark blue where no neuron is below -0.2)."""
    from matplotlib.collections import PathCollection

    from neurocarta.methods.topomap import group_difference
    from neurocarta.render import plot_difference

    atlas = nc.open_atlas(atlas_dir)
    layout = nc.topomap(atlas, "act", method="pca")
    d = group_difference(atlas, "act", "colour", "red", permutations=1000)
    assert np.flatnonzero(d.significant).tolist() == [PLANTED]
    ax = plot_difference(layout, d).axes[0]
    image = np.asarray(ax.images[0].get_array(), dtype=np.float64)
    assert d.values.min() - 1e-6 <= np.nanmin(image) and np.nanmax(image) <= d.values.max() + 1e-6
    (dots,) = [c for c in ax.collections if type(c) is PathCollection]
    np.testing.assert_allclose(dots.get_offsets(), layout.layout[[PLANTED]])
    np.testing.assert_allclose(dots.get_array(), d.values[[PLANTED]])


def test_token_layer_selection_takes_every_token_row_of_the_selected_inputs(tmp_path, capsys):
    from test_capture import _tiny_bert

    _, _, bundle = _tiny_bert(hidden=16, layers=1, intermediate=24)
    texts = ["the cat sat", "a dog ran far away", "the sun", "birds sing at dawn", "the end of it", "rain"] * 3
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    layer = "encoder.layer.0.intermediate"
    atlas = nc.extract(bundle, f"text:{tmp_path / 't.txt'}", tmp_path / "a", layers=[layer], dtype="float32",
                       progress=False)
    code, out, err = run(capsys, "compare", tmp_path / "a", "--layer", layer, "--where", "line<=6",
                         "--vs", "line>12", "--permutations", "500", "--json")
    assert code == 0, err
    r = json.loads(out)
    tokens = atlas.row_table(layer)
    a, b = (tokens["line"] <= 6).to_numpy(), (tokens["line"] > 12).to_numpy()
    assert r["groups"]["a"] == {"where": "line<=6", "n_inputs": 6, "n_rows": int(a.sum()),
                                   "n_tested": int(a.sum())}
    assert r["groups"]["b"] == {"where": "line>12", "n_inputs": 6, "n_rows": int(b.sum()),
                                   "n_tested": int(b.sum())}
    assert int(a.sum()) == sum(len(atlas.tokens[atlas.tokens["input_id"] == i]) for i in range(6)) > 6
    x = atlas.activations(layer)[:]
    expected = x[a].mean(axis=0) - x[b].mean(axis=0)
    got = {n["neuron"]: n["difference"] for n in r["neurons"]}
    np.testing.assert_allclose([got[i] for i in range(x.shape[1])], expected, rtol=1e-5, atol=1e-6)
    # a token's own column selects single rows: every "the" against the other tokens
    code, out, _ = run(capsys, "compare", tmp_path / "a", "--layer", layer, "--where", "token=the",
                       "--permutations", "500", "--json")
    r = json.loads(out)
    the = int((tokens["token"] == "the").sum())
    assert code == 0 and r["groups"]["a"]["n_rows"] == the and r["groups"]["b"]["n_rows"] == len(tokens) - the


def test_a_summary_atlas_says_it_cannot_compare_selections(atlas_dir, tmp_path, capsys):
    summary = tmp_path / "summary"
    nc.extract("py:tiny_models:planted_net", f"npz:{atlas_dir.parent / 'data.npz'}", summary, layers=["act"],
               mode="summary", group_by=["colour"], progress=False)
    line = one_line_error(capsys, "compare", summary, "--layer", "act", "--where", "colour=red")
    assert "keeps only group summaries" in line


def test_too_many_rows_are_tested_on_a_seeded_subsample_and_say_so(atlas_dir):
    from neurocarta.methods.topomap.compare import compare

    atlas = nc.open_atlas(atlas_dir)
    c = compare(atlas, "act", "colour=red", max_rows=200)
    groups = c.summary()["groups"]
    assert c.subsampled and groups["a"]["n_rows"] + groups["b"]["n_rows"] == 400
    assert groups["a"]["n_tested"] + groups["b"]["n_tested"] <= 200
    # the share of each group is kept
    assert groups["a"]["n_tested"] == groups["a"]["n_rows"] // 2
    assert not compare(atlas, "act", "colour=red", permutations=500).subsampled
