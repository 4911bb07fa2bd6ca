"""The findings runner and the map rules (issue 16, wording): reading order by kind, one cause
one line (repeats on the same inputs folded), concept findings merged per layer with a
permutation p-value and named only where the concept label names an attribute, the
separation sentence of one value and of many, and the terminal form of a finding.

Small fixtures only (synthetic findings, planted exemplar sets): a few seconds in all. The
merge of separation findings on a real 21-class atlas is in tests/test_figures_many_classes.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from neurocarta.findings import KINDS, REPEAT_SHARE, fold_repeats, ordered, short_confidence
from neurocarta.findings.common import make_finding, name_list


def finding(kind: str, strength: float, inputs=None, text: str | None = None) -> dict:
    selection = {"layer": "fc"} if inputs is None else {"layer": "fc", "inputs": list(inputs)}
    return make_finding(kind, text or f"{kind} at {strength}.", "inspector", selection, strength, {})


# ---------------------------------------------------------------------------- order and repeats


def test_findings_are_ordered_by_kind_then_strength_and_the_score_agrees():
    """Problems to act on first, then confusion, hygiene, descriptions; within a kind the
    strongest first. The weakest shortcut comes before the strongest mislabel finding and the
    weakest outlier before the strongest separation (the old score bases put separation, 0.5 +
    0.2, above outlier, 0.4 + 0.2)."""
    rng = np.random.default_rng(0)
    found = [finding(kind, s) for kind in KINDS for s in (0.0, 1.0, float(rng.uniform()))]
    found = [found[i] for i in rng.permutation(len(found))]
    out = ordered(found)
    kinds = [f["kind"] for f in out]
    assert kinds == sorted(kinds, key=KINDS.index)
    for kind in KINDS:
        scores = [f["score"] for f in out if f["kind"] == kind]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3
    scores = [f["score"] for f in out]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert min(f["score"] for f in out if f["kind"] == "outlier") > max(
        f["score"] for f in out if f["kind"] == "separation")


def test_a_finding_on_the_same_inputs_as_an_earlier_one_is_folded_into_it():
    shortcut = finding("shortcut", 0.5, range(100), "Inputs with noise background push the model toward circle.")
    repeat = finding("mislabels", 1.0, range(10, 60), "These 50 inputs labelled star look like class circle.")
    partly = finding("confusion", 1.0, range(90, 140))  # 10 of its 50 inputs are the shortcut's: its own cause
    outlier = finding("outlier", 0.2, range(95, 137))  # 37 of its 42 inputs are the confusion's (88%)
    described = finding("separation", 1.0)  # no inputs: never folded
    out = fold_repeats(ordered([described, outlier, partly, repeat, shortcut]))
    assert [f["kind"] for f in out] == ["shortcut", "confusion", "separation"]
    assert out[0]["evidence"]["folded"] == [{"kind": "mislabels", "text": repeat["text"], "n_inputs": 50}]
    assert out[1]["evidence"]["folded"][0]["kind"] == "outlier" and 37 / 42 >= REPEAT_SHARE
    assert "folded" not in out[2]["evidence"]


def test_short_confidence_and_name_lists():
    assert short_confidence({"test": "Fisher exact", "p": 2.1e-9, "q": 4.6e-8}) == "p = 2e-9, q = 5e-8"
    assert short_confidence({"p": 0.0031}) == "p = 0.0031"
    assert short_confidence({}) == "" and short_confidence({"draws": 199}) == ""
    assert name_list(["a"]) == "a" and name_list(["a", "b"]) == "a and b"
    assert name_list(list("abcdefg")) == "a, b, c and 4 more"


def test_the_terminal_form_shows_kind_text_check_and_confidence():
    from neurocarta.cli import _format_finding

    f = make_finding("shortcut", "Inputs with noise background push the model toward class circle: " * 3, "topomap",
                     {}, 1.0, {}, confidence={"test": "Fisher exact, BH over 96 tests", "p": 1e-9, "q": 2e-8},
                     check="Open the topomap of head.relu grouped by background and pick noise.")
    lines = _format_finding(f, 80).splitlines()
    assert lines[0].startswith("[shortcut] Inputs with noise background") and all(len(x) <= 80 for x in lines)
    assert lines[1].startswith("    ")  # the text wraps under its kind
    assert "    check: Open the topomap of head.relu grouped by background and pick noise." in lines
    assert "    confidence: p = 1e-9, q = 2e-8 (Fisher exact, BH over 96 tests)" in lines
    assert _format_finding(f).splitlines()[0] == f"[shortcut] {f['text']}"  # piped: one line each, unwrapped
    described = _format_finding(make_finding("training", "Rose.", "topomap", {}, 0.5, {}, check="Look."), 80)
    assert described == "[training] Rose.\n    check: Look."  # no p or q: no confidence line


# ---------------------------------------------------------------------------- separation wording


def fake_atlas(rows: str = "input", **more) -> SimpleNamespace:
    return SimpleNamespace(manifest=SimpleNamespace(layer=lambda name: SimpleNamespace(rows=rows)), **more)


def test_one_separating_value_keeps_its_sentence_and_selects_it():
    from neurocarta.findings.maps import _separation_finding

    f = _separation_finding(fake_atlas("token"), "category", "enc.3", ["enc.1", "enc.3"],
                            {"noun": ([4, 2], 0.97, 0.8)}, n_values=5)
    assert f["text"] == ("Category noun separates from the others at layer enc.3: its tokens form their own group "
                         "in the Mapper graph, a region that holds 80% of them and is 97% noun, at mapped layer 2 "
                         "of 2: no earlier mapped layer separates it.")
    assert f["selection"] == {"layer": "enc.3", "nodes": [2, 4], "groups": ["noun"], "group_by": "category",
                              "group": "noun"}
    assert f["confidence"] == {} and "Mapper view of enc.3" in f["check"] and "coloured by category" in f["check"]


def test_many_separating_classes_are_one_line_with_every_class_in_evidence():
    from neurocarta.findings.maps import _separation_finding

    regions = {f"c{i}": ([i], 1.0 - i / 100, 0.5 + i / 100) for i in range(8)}
    f = _separation_finding(fake_atlas(), "label_name", "fc", ["fc", "out"], regions, n_values=10)
    # the best separated (largest share in its region) first
    assert f["text"].startswith("8 classes separate from the others at layer fc (c7, c6, c5 and 5 more): ")
    assert "at least 50% of them and at least 93% that class, already at the first of the 2 mapped layers." in f["text"]
    assert f["selection"]["classes"] == [f"c{i}" for i in range(7, -1, -1)] and "class" not in f["selection"]
    assert f["selection"]["nodes"] == list(range(8)) and set(f["evidence"]["regions"]) == set(regions)
    assert f["score"] == pytest.approx(0.3 + 0.09 * 0.8)
    whole = _separation_finding(fake_atlas(), "label_name", "out", ["fc", "out"],
                                {"a": ([0], 1.0, 1.0), "b": ([1], 1.0, 1.0)}, n_values=2)
    assert ("a region holding all of them and entirely that class, at mapped layer 2 of 2: no earlier mapped "
            "layer separates them.") in whole["text"]


# ---------------------------------------------------------------------------- concepts


def concept_fixture():
    """One layer of 300 neurons over 3,000 inputs (tests/test_figures_many_classes.py's planted
    sets: neurons 0-5 fire only for red inputs): clusters 0 and 1 are three red detectors each,
    cluster 2 six random neurons, all named by the real concept labels."""
    from test_figures_many_classes import planted_groups

    from neurocarta.methods.concepts.result import describe_clusters

    table, indptr, indices = planted_groups()
    groups = [np.arange(3), np.arange(3, 6), np.arange(6, 12)]
    describe = describe_clusters(groups, indptr, indices, table, ["label", "colour"])
    k = 40
    rows = indices.reshape(300, k).T  # stored top-k: k x neurons, best first
    top = SimpleNamespace(rows=rows, values=np.ones(rows.shape, np.float32), k=k)
    atlas = fake_atlas(topk=lambda layer, snap: top, row_table=lambda layer, snap: table)
    c = SimpleNamespace(clusters=pd.DataFrame({"cluster": [0, 1, 2], "layer": "fc", "size": [3, 3, 6],
                                               "members": groups, "describe": describe}),
                        neurons=pd.DataFrame({"layer": "fc", "unit": np.arange(300)}), layers=["fc"],
                        snapshot="final", params={"k": k})
    return atlas, c, describe


def test_concept_clusters_of_a_layer_are_one_finding_with_a_permutation_p():
    from neurocarta.findings.maps import CONCEPT_DRAWS, _coherent_clusters, _concept_finding

    atlas, c, describe = concept_fixture()
    assert describe[0].startswith("colour=red (1.00 vs ") and describe[2].startswith("top classes: ")
    found = _coherent_clusters(atlas, c, "fc", 40)
    assert [f["cluster"] for f in found] == [0, 1]  # the random cluster has no attribute name: no finding
    for f in found:
        assert f["coherence"] == 1.0 and 0.5 < f["random_coherence"] < 0.75
        assert f["p"] == pytest.approx(1 / (CONCEPT_DRAWS + 1))  # no random group of 3 is all red
    f = _concept_finding(atlas, c, "fc", found)
    rnd = f"{found[0]['random_coherence']:.2f}"  # the same random groups for the same size
    assert f["text"] == ("2 neuron clusters in fc respond to one value: clusters 0 and 1 (6 neurons) to colour red "
                         f"(coherence 1.00, random groups of their sizes {rnd}).")
    assert f["selection"]["clusters"] == [0, 1] and f["selection"]["neurons"] == list(range(6))
    assert [x["cluster"] for x in f["evidence"]["clusters"]] == [0, 1]
    assert f["confidence"]["p"] == pytest.approx(0.005) and f["confidence"]["draws"] == CONCEPT_DRAWS
    assert "select cluster 0" in f["check"] and describe[0] in f["check"]


def test_clusters_of_several_values_are_one_clause_per_value_strongest_first():
    from neurocarta.findings.maps import _concept_finding

    def cluster(i: int, value: str, coherence: float, size: int = 4) -> dict:
        return {"cluster": i, "size": size, "attribute": "class", "value": value, "coherence": coherence,
                "random_coherence": 0.1 + i / 100, "p": 0.005, "draws": 199,
                "neurons": np.arange(i * 10, i * 10 + size),
                "describe": f"class={value} ({coherence:.2f} vs 0.10 random)"}

    found = [cluster(1, "ring", 0.9), cluster(2, "star", 0.8), cluster(3, "ring", 0.7, size=6),
             cluster(4, "cross", 0.6), cluster(5, "square", 0.5)]
    f = _concept_finding(fake_atlas(), SimpleNamespace(snapshot="s"), "fc", found)
    assert f["text"] == ("5 neuron clusters in fc respond to 4 values: clusters 1 and 3 (10 neurons) to class ring "
                         "(coherence 0.70 to 0.90, random groups of their sizes 0.11 to 0.13); cluster 2 (4 neurons) "
                         "to class star (coherence 0.80, random groups of its size 0.12); cluster 4 (4 neurons) to "
                         "class cross (coherence 0.60, random groups of its size 0.14); and 1 more.")
    assert [c["value"] for c in f["evidence"]["clusters"]] == ["ring", "star", "ring", "cross", "square"]


def test_one_coherent_cluster_keeps_its_numbers_at_the_top_of_the_evidence():
    from neurocarta.findings.maps import _coherent_clusters, _concept_finding

    atlas, c, _ = concept_fixture()
    f = _concept_finding(atlas, c, "fc", _coherent_clusters(atlas, c, "fc", 40)[:1])
    assert f["text"].startswith("Cluster 0 (3 neurons in fc) responds to colour red: 100% of its neurons' top "
                                "inputs have that value (coherence 1.00; random groups of its size: 0.")
    e = f["evidence"]
    assert (e["attribute"], e["value"], e["size"], e["coherence"]) == ("colour", "red", 3, 1.0)
