"""Text in the viewer: a neuron's exemplars as tokens marked in their sentences, and an input's
per-token activation of a neuron or concept cluster, through the API and in a real browser.

A small atlas of MiniLM (the offline BERT) over 30 short sentences of three topics, one MLP
layer, with a PCA topographic map, a Mapper graph and concept clusters (no class graphs:
those need one row per input).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

# The browser helpers of the image viewer's tests (same Chromium, same server in a thread).
from test_viewer_e2e import Page, browser, serving  # noqa: F401  (browser is a fixture)
# MiniLM's tokenizer, offline (the fixture of the token-table tests)
from test_sentences import tokenizer  # noqa: F401

pytestmark = pytest.mark.slow

LAYER = "encoder.layer.1.intermediate"
TOPICS = {
    "nature": ["The river runs past the old oak tree", "Birds sing in the green forest", "Snow covers the quiet mountain",
               "A fox hides under the fallen leaves", "Rain falls on the wide meadow", "The sun sets over the calm lake",
               "Wolves howl across the frozen valley", "Flowers bloom along the sunny hill",
               "The wind shakes the tall pines", "A deer drinks from the cold stream"],
    "finance": ["The bank raised its interest rates", "Stocks fell sharply on Monday", "Investors sold their shares quickly",
                "The company reported record profits", "Inflation hurt the savings of families",
                "Bond yields climbed again today", "The market rallied after the report", "Traders bought gold and silver",
                "The loan was repaid in full", "Taxes rose for small businesses"],
    "sports": ["The striker scored a late goal", "Our team won the final match", "She ran the marathon in record time",
               "The coach praised his young players", "Fans cheered as the ball flew",
               "He swam four laps before breakfast", "The referee blew the whistle twice",
               "They lost the game by one point", "The boxer trained every morning",
               "A cyclist crossed the finish line first"],
}


@pytest.fixture(scope="module")
def text_atlas(tmp_path_factory) -> Path:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import neurocarta as nc
    from neurocarta.pipeline import build_concepts, build_mappers, build_topomaps

    root = tmp_path_factory.mktemp("text-viewer")
    corpus = root / "sentences.txt"
    corpus.write_text("".join(f"{s}\t{topic}\n" for topic, lines in TOPICS.items() for s in lines))
    atlas = nc.extract("minilm", f"text:{corpus}", root / "atlas", layers=[LAYER], progress=False)
    build_topomaps(atlas, method="pca", seed=0, progress=False, formats=())
    build_mappers(atlas, progress=False, seed=0)
    build_concepts(atlas, progress=False, seed=0, k=5, class_graphs=False)
    return root / "atlas"


@pytest.fixture(scope="module")
def client(text_atlas):
    from neurocarta.viewer.app import create_app

    return TestClient(create_app(text_atlas))


def test_text_exemplars_come_from_the_stored_top_k(client, text_atlas, tokenizer):
    import neurocarta as nc

    atlas = nc.open_atlas(text_atlas)
    top = atlas.topk(LAYER)
    tokens = atlas.tokens
    snap = atlas.snapshots[-1]
    for unit in (0, 7, 1535):
        r = client.get(f"/api/exemplars/{snap}/{LAYER}/{unit}?k=9")
        assert r.status_code == 200, r.text
        p = r.json()
        assert p["kind"] == "text" and len(p["items"]) == min(9, top.values.shape[0])
        values = [it["value"] for it in p["items"]]
        assert values == sorted(values, reverse=True)
        for j, it in enumerate(p["items"]):
            row = int(top.rows[j, unit])
            assert it["row"] == row and it["input_id"] == int(top.input_ids[j, unit])
            assert it["value"] == pytest.approx(float(top.values[j, unit]))
            mine = tokens[tokens["input_id"] == it["input_id"]]
            assert it["tokens"] == mine["token"].tolist()
            assert it["tokens"][it["index"]] == tokens["token"].iat[row]
            assert it["position"] == int(tokens["position"].iat[row])
            assert it["text"] == atlas.inputs["text"].iat[it["input_id"]]
            # the characters the viewer marks: the tokenizer's own offsets of the token, which
            # slice the token out of its sentence (text files keep every token's offsets)
            offsets = tokenizer(it["text"], return_offsets_mapping=True)["offset_mapping"]
            assert (it["start"], it["end"]) == tuple(offsets[it["position"]])
            assert it["text"][it["start"]:it["end"]].lower() == it["tokens"][it["index"]].removeprefix("##")
    # bad requests: one clear line each
    assert client.get(f"/api/exemplars/{snap}/{LAYER}/1536").status_code == 404
    assert client.get(f"/api/exemplars/{snap}/{LAYER}/0?k=0").status_code == 400
    assert client.get(f"/api/exemplars/{snap}/nope/0").status_code == 404
    assert client.get(f"/api/exemplars/nope/{LAYER}/0").status_code == 404


def test_an_inputs_tokens_by_a_neuron_or_a_cluster(client, text_atlas):
    import numpy as np

    import neurocarta as nc

    atlas = nc.open_atlas(text_atlas)
    tokens = atlas.tokens
    rows = np.flatnonzero(tokens["input_id"].to_numpy() == 3)
    acts = atlas.activations(LAYER)[rows]
    r = client.get(f"/api/tokens/3?layer={LAYER}&neuron=11")
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["tokens"] == tokens["token"].iloc[rows].tolist()
    assert np.allclose(p["values"], acts[:, 11], atol=1e-4)
    assert p["max"] == pytest.approx(float(atlas.topk(LAYER).values[0, 11]))

    concepts = client.get(f"/api/concepts/{atlas.maps('concepts')[-1]}").json()
    cluster = concepts["clusters"][0]
    units = sorted(concepts["neurons"][i]["unit"] for i in cluster["members"])
    r = client.get(f"/api/tokens/3?layer={LAYER}&cluster={cluster['cluster']}")
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["n_units"] == len(units)
    assert np.allclose(p["values"], acts[:, units].mean(axis=1), atol=1e-4)

    assert client.get(f"/api/tokens/3?layer={LAYER}").status_code == 400  # neither neuron nor cluster
    assert client.get(f"/api/tokens/3?layer={LAYER}&neuron=1&cluster=0").status_code == 400
    assert client.get(f"/api/tokens/30?layer={LAYER}&neuron=1").status_code == 404
    assert client.get(f"/api/tokens/3?layer={LAYER}&neuron=1536").status_code == 404
    assert client.get(f"/api/tokens/3?layer={LAYER}&cluster=100000").status_code == 404


def test_findings_on_token_rows_are_served(client, text_atlas):
    """Regression (issue 14, bug 3): findings crashed on token atlases (token rows repeat
    input_id), and the viewer said "no findings". Each rule reads token rows as what they
    are: the Mapper graph's regions are made of tokens, input-level findings name inputs."""
    import json

    import neurocarta as nc
    from neurocarta.findings import findings

    atlas = nc.open_atlas(text_atlas)
    found = findings(atlas)
    r = client.get("/api/findings")
    assert r.status_code == 200 and r.json() == json.loads(json.dumps(found))
    # the MLP neurons' top tokens share their sentence's topic: concept clusters per topic
    concepts = [f for f in found if f["kind"] == "concept"]
    clusters = [c for f in concepts for c in f["evidence"]["clusters"]]  # one finding per layer, merged
    assert clusters and all(c["attribute"] == "class" for c in clusters)
    assert {c["value"] for c in clusters} <= set(TOPICS)
    for f in found:  # input-level selections name inputs (0..29), never token rows
        assert set(f["selection"].get("inputs", [])) <= set(range(30))


def test_browser_shows_a_text_exemplar_with_its_token_marked(browser, text_atlas):  # noqa: F811
    import neurocarta as nc

    atlas = nc.open_atlas(text_atlas)
    unit = 7
    with serving(text_atlas) as url:
        p = Page(browser)
        try:
            page = p.open(url + f"#notour&view=inspector&sel=neuron%3A{LAYER}%3A{unit}")
            page.wait_for_selector("[data-testid=inspector-body] [data-testid=exemplar-token]", timeout=30_000)
            marks = page.locator("[data-testid=inspector-body] [data-testid=exemplar-token]")
            assert marks.count() == min(9, atlas.topk(LAYER).values.shape[0])
            top = atlas.topk(LAYER)
            for j in range(marks.count()):
                token = atlas.tokens["token"].iat[int(top.rows[j, unit])]
                assert marks.nth(j).inner_text().strip().lower() == token.removeprefix("##")
                assert marks.nth(j).get_attribute("data-token") == token
            # an input's page colours its tokens by the neuron selected last
            page.fill("[data-testid=inspector-goto]", "3")
            page.press("[data-testid=inspector-goto]", "Enter")
            page.wait_for_selector("[data-testid=token-activation]", timeout=30_000)
            spans = page.locator("[data-testid=token-activation]")
            mine = atlas.tokens[atlas.tokens["input_id"] == 3]["token"].tolist()
            assert [spans.nth(i).inner_text().strip() for i in range(spans.count())] == mine
            page.wait_for_timeout(500)
            assert p.errors == []
        finally:
            p.context.close()
