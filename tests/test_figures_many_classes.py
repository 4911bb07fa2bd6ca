"""Figures and labels that hold many classes (issue 15): one glasbey palette and one legend rule
(every class up to 30, else the largest plus a counted "other"), a 21-class atlas's Mapper
figure and viewer manifest listing all 21, concept groups named by an attribute only when it
beats same-size random groups, and a projection figure with a legend and labels that do not
overlap.

The 21-class atlas is small and fast (a folder of 504 8x8 images, an untrained seeded MLP, one layer: a few
seconds); tests/test_viewer_mapper_legend.py serves the same atlas in a browser.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest


#: 21 classes: one more than the 20 a legend must at least hold.
CLASS_NAMES = ["airplane", "apple", "banana", "bicycle", "bird", "boat", "bus", "cactus", "castle", "cat", "chair",
               "cloud", "dog", "flower", "guitar", "horse", "house", "lamp", "mountain", "tree", "umbrella"]


def write_class_folder(root: Path, per_class: int = 24, size: int = 8, seed: int = 0) -> Path:
    """A photo folder as a user has one: one subfolder per class (21), ``per_class`` small
    PNGs in each, noisy copies of one random colour pattern per class, so that every class
    reaches the Mapper graph and its legend must hold all 21."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    centres = rng.uniform(60, 196, (len(CLASS_NAMES), size, size, 3))
    for c, name in enumerate(CLASS_NAMES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(centres[c] + rng.normal(0, 25, centres[c].shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


def build_many_class_atlas(path: Path):
    """A 21-class atlas of a class-per-subfolder folder, with the Mapper graph of its one layer
    (``"2"``, the MLP's ReLU) saved."""
    import torch
    from torch import nn

    import neurocarta as nc
    from neurocarta.methods.mapper import mapper

    torch.manual_seed(0)
    folder = write_class_folder(path.parent / "photos")
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 48), nn.ReLU(), nn.Linear(48, len(CLASS_NAMES)))
    atlas = nc.extract(model, f"folder:{folder}", path, layers=["2"], progress=False)
    return atlas, mapper(atlas, "2", save=True)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    return build_many_class_atlas(tmp_path_factory.mktemp("many") / "atlas")


def lab(colours) -> np.ndarray:
    from matplotlib.colors import to_rgb
    from skimage.color import rgb2lab

    return rgb2lab(np.array([to_rgb(c) for c in colours])[None])[0]


# ---------------------------------------------------------------------------- palette and legend


def test_palette_is_colorcet_glasbey_and_its_first_30_are_far_apart_and_never_grey():
    import colorcet

    from neurocarta.render.palette import MAX_ENTRIES, OTHER_COLOUR, palette

    assert list(palette()) == [c.lower() for c in colorcet.glasbey]
    first = lab(palette()[:MAX_ENTRIES])
    dist = np.linalg.norm(first[:, None] - first[None], axis=-1)[np.triu_indices(MAX_ENTRIES, 1)]
    assert dist.min() > 20  # CIELAB units: clearly different colours, not shades of one
    chroma = np.hypot(first[:, 1], first[:, 2])
    assert chroma.min() > 15  # no palette colour reads as the grey of "other"
    assert np.hypot(*lab([OTHER_COLOUR])[0, 1:]) < 1


def test_legend_lists_every_class_up_to_30_then_the_largest_and_a_counted_other():
    from neurocarta.render.palette import OTHER_COLOUR, make_legend

    names = [f"c{i}" for i in range(30)]
    every = make_legend(names, list(range(30)))
    assert [n for n, _ in every.labels()] == names and not every.other
    assert len({c for _, c in every.labels()}) == 30

    names = [f"c{i}" for i in range(34)]
    counts = [100] * 29 + [3, 5, 7, 9, 11]  # the last five are the smallest
    legend = make_legend(names, counts)
    assert [n for n, _ in legend.entries] == names[:29]
    assert legend.labels()[-1] == ("other: 5 classes, 35 inputs", OTHER_COLOUR)
    assert legend.colour("c31") == OTHER_COLOUR and legend.colour("c0") != OTHER_COLOUR
    one = make_legend([f"g{i}" for i in range(31)], list(range(31, 0, -1)), noun="groups", unit="neurons")
    assert one.other_label == "other: 2 groups, 3 neurons"  # 29 shown, never a lone "other"


def test_a_class_keeps_its_colour_in_every_figure_and_the_viewer(many):
    from neurocarta.render.palette import category_colour, class_legend
    from neurocarta.viewer.data import ViewerData

    atlas, _ = many
    legend = class_legend(atlas)
    assert [n for n, _ in legend.entries] == CLASS_NAMES  # label order, all 21
    assert [c for _, c in legend.entries] == [category_colour(i) for i in range(21)]
    manifest = ViewerData(atlas).manifest()
    assert manifest["class_legend"] == legend.to_json() and manifest["class_legend"]["other"] is None
    assert manifest["palette"][:21] == [category_colour(i) for i in range(21)]


# ---------------------------------------------------------------------------- the Mapper figure


def legend_of(fig) -> tuple[list[str], list[tuple]]:
    leg = fig.axes[0].get_legend()
    # a patch's face colour is one RGBA, a scatter's an array of one row
    return [t.get_text() for t in leg.get_texts()], [tuple(np.ravel(h.get_facecolor())[:4]) for h in leg.legend_handles]


def test_the_mapper_figure_of_21_classes_shows_all_21_in_distinct_colours(many):
    from matplotlib.patches import Wedge

    from neurocarta.render import plot_mapper

    atlas, result = many
    assert {c for h in result.nodes["classes"] for c in h} == set(CLASS_NAMES)
    for legend in ("from the nodes", "the atlas's"):
        if legend == "from the nodes":
            fig = plot_mapper(result)
        else:
            from neurocarta.render.palette import class_legend

            fig = plot_mapper(result, legend=class_legend(atlas))
        texts, colours = legend_of(fig)
        assert sorted(texts) == sorted(CLASS_NAMES)  # 21 entries: none dropped at 12
        assert len(set(colours)) == 21  # none repeated past 20
        wedges = {tuple(p.get_facecolor()) for p in fig.axes[0].patches if isinstance(p, Wedge)}
        assert wedges <= set(colours) and len(wedges) == 21


def test_a_mapper_figure_of_many_classes_folds_the_smallest_into_a_counted_other(many):
    from neurocarta.render import plot_mapper

    _, result = many
    texts, colours = legend_of(plot_mapper(result, max_legend=10))
    assert len(texts) == 10 and len(set(colours)) == 10
    assert texts[-1].startswith("other: 12 classes, ") and texts[-1].endswith(" node members")


# ---------------------------------------------------------------------------- concept group names


def planted_groups(seed: int = 0):
    """Exemplar sets (k=40) of 300 neurons over 3,000 inputs of 10 balanced classes and a
    two-valued colour: neurons 0-5 fire only for red inputs (any class), every other neuron for
    random inputs."""
    from neurocarta.methods.concepts.estimator import as_sets

    rng = np.random.default_rng(seed)
    n, k = 3000, 40
    table = pd.DataFrame({"input_id": np.arange(n), "label": rng.integers(0, 10, n),
                          "colour": rng.choice(["red", "blue"], n)})
    table["label_name"] = "class " + table["label"].astype(str)
    red = np.flatnonzero(table["colour"] == "red")
    sets = [rng.choice(red, k, replace=False) for _ in range(6)] + [rng.choice(n, k, replace=False)
                                                                     for _ in range(294)]
    indptr, indices = as_sets(sets)
    return table, indptr, indices


def test_a_group_is_named_by_an_attribute_only_beyond_random_groups_of_its_size():
    from neurocarta.methods.concepts.result import describe_clusters

    table, indptr, indices = planted_groups()
    red_group, random_group = np.arange(6), np.arange(6, 12)
    named = describe_clusters([red_group, random_group], indptr, indices, table, ["label", "colour"])
    # the red detectors: named by colour, with random groups' mean coherence (a balanced
    # two-valued attribute: a little above 0.5)
    attr, rest = named[0].split(" (")
    assert attr == "colour=red"
    share, rnd = (float(v) for v in rest.removesuffix(" random)").split(" vs "))
    assert share == 1.0 and 0.5 < rnd < 0.7
    # random neurons: their top class holds ~10-15% of their exemplars, as in random groups:
    # named by their top classes, never "class=... (0.13)"
    assert named[1].startswith("top classes: class ") and named[1].count("%") == 2


def test_random_groups_rarely_get_an_attribute_name():
    """The test's level holds: of 80 groups of random neurons, at most 5% are named by an
    attribute (1 here; the old rule named every one)."""
    from neurocarta.methods.concepts.result import describe_clusters

    table, indptr, indices = planted_groups(seed=1)
    rng = np.random.default_rng(2)
    groups = [rng.choice(np.arange(6, 300), size, replace=False) for size in rng.integers(2, 9, 80)]
    named = describe_clusters(groups, indptr, indices, table, ["label", "colour"])
    by_attribute = [t for t in named if not t.startswith("top classes: ")]
    assert len(by_attribute) <= 4, by_attribute


def test_a_large_group_is_not_named_by_a_tiny_significant_difference():
    """60 neurons whose exemplars are 57% red where random groups hold 52%: beyond every
    random group of that size (the test alone would name it "colour=red"), but under a small
    effect (Cohen's h 0.11 < 0.2), so no colour name."""
    from neurocarta.methods.concepts.estimator import as_sets
    from neurocarta.methods.concepts.result import describe_clusters

    table, _, _ = planted_groups()
    rng = np.random.default_rng(3)
    red = np.flatnonzero(table["colour"] == "red")
    blue = np.flatnonzero(table["colour"] == "blue")
    leaning = [np.concatenate([rng.choice(red, 23, replace=False), rng.choice(blue, 17, replace=False)])
               for _ in range(60)]
    neutral = [rng.choice(len(table), 40, replace=False) for _ in range(400)]
    indptr, indices = as_sets(leaning + neutral)
    named = describe_clusters([np.arange(60)], indptr, indices, table, ["label", "colour"])
    assert named[0].startswith("top classes: "), named


def test_concept_findings_read_the_new_names():
    from neurocarta.findings.maps import _DESCRIBE

    m = _DESCRIBE.match("colour=cyan blue (0.95 vs 0.57 random)")
    assert (m["attr"], m["value"], m["share"]) == ("colour", "cyan blue", "0.95")
    assert _DESCRIBE.match("top classes: star 41%, circle 22%") is None


# ---------------------------------------------------------------------------- findings


def test_the_classes_that_separate_at_a_layer_are_one_finding_naming_them_all(many):
    """Regression (issue 16): a 21-class folder's findings were one near-identical line per
    class, "Class X separates from the others at layer 2". Now one line per layer names the
    first three, counts the rest, and holds every class in its evidence and selection."""
    from neurocarta.findings import findings
    from neurocarta.methods.mapper.analysis import separation_layers

    atlas, result = many
    want = sorted(c for c, layer in separation_layers([result]).items() if layer == "2")
    assert len(want) > 3  # enough classes separate for the merge to matter
    (sep,) = [f for f in findings(atlas) if f["kind"] == "separation"]
    e, s = sep["evidence"], sep["selection"]
    assert sorted(e["classes"]) == want and sorted(s["classes"]) == want and "class" not in s
    named = ", ".join(e["classes"][:3])
    assert sep["text"].startswith(f"{len(want)} classes separate from the others at layer 2 ({named} and "
                                  f"{len(want) - 3} more): each one's inputs form their own group")
    for c in want:  # each region as the rule requires, its nodes in the selection
        region = e["regions"][c]
        assert region["purity"] >= 0.9 and region["share"] >= 0.5 and set(region["nodes"]) <= set(s["nodes"])
    assert "Mapper view of 2" in sep["check"] and sep["confidence"] == {}


def test_the_findings_command_prints_each_finding_with_its_check_and_confidence(many, capsys):
    """`neurocarta findings` (piped): "[kind] sentence" on one line, the check line and the p/q
    indented under it; --json keeps every field of the list the Python API returns."""
    import json

    from neurocarta.cli import main
    from neurocarta.findings import findings, short_confidence

    atlas, _ = many
    found = findings(atlas)
    assert main(["findings", str(atlas.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == found
    assert all({"kind", "text", "view", "selection", "score", "evidence", "confidence", "check"} <= set(f)
               for f in found)
    assert main(["findings", str(atlas.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for f in found:
        at = lines.index(f"[{f['kind']}] {f['text']}")
        assert lines[at + 1] == f"    check: {f['check']}"
        if short_confidence(f["confidence"]):
            assert lines[at + 2].startswith(f"    confidence: {short_confidence(f['confidence'])}")


# ---------------------------------------------------------------------------- the projection figure


def crowded_projection(n_groups: int = 8):
    """A concept result whose 8 groups sit close together, so their centred labels would overlap."""
    rng = np.random.default_rng(0)
    xy, cluster, members = [], [], []
    for g in range(n_groups):
        centre = np.array([g * 0.05, (g % 2) * 0.05])
        xy.append(centre + rng.normal(0, 0.02, (10, 2)))
        cluster += [g] * 10
        members.append(np.arange(g * 10, g * 10 + 10))
    xy.append(rng.normal(0, 1.0, (40, 2)))  # ungrouped neurons around them
    cluster += [-1] * 40
    xy = np.concatenate(xy)
    neurons = pd.DataFrame({"layer": "fc", "unit": np.arange(len(xy)), "cluster": cluster, "silent": False,
                            "x": xy[:, 0], "y": xy[:, 1]})
    clusters = pd.DataFrame({"cluster": np.arange(n_groups), "layer": "fc", "size": 10, "members": members,
                             "describe": [f"top classes: kind {g} 41%, kind {g + 1} 22%" for g in range(n_groups)]})
    return SimpleNamespace(neurons=neurons, clusters=clusters, layers=["fc"])


def test_the_projection_has_a_legend_and_labels_that_do_not_overlap():
    from neurocarta.render import plot_projection

    fig = plot_projection(crowded_projection())
    ax = fig.axes[0]
    texts, colours = legend_of(fig)
    assert texts[0] == "no group: 40 neurons" and texts[1:] == [f"c{g}: 10 neurons" for g in range(8)]
    assert len(set(colours[1:])) == 8
    fig.draw_without_rendering()  # the layout as it is saved
    boxes = [t.get_window_extent() for t in ax.texts if t.get_text().startswith("c")]
    assert len(boxes) == 8
    overlaps = [(i, j) for i in range(8) for j in range(i + 1, 8) if boxes[i].overlaps(boxes[j])]
    assert overlaps == []
