"""Feature visualizations and attributions in the viewer, in a real browser (issue 18).

One small atlas for the module: demo-cnn trained for one epoch on 400 shapes, two layers, a
Mapper graph of head.relu and concept groups; then a few feature visualizations (four
neurons per layer, every concept group and Mapper node, class 0's logit, 8 Adam steps: the test checks the
display, not their quality, which tests/test_featvis*.py check) and two attributions of one
input (saliency of the predicted class and of class 0). A text atlas of four sentences
(MiniLM) carries one token attribution. (The README's screenshots of both come from
benchmarks/shots_featvis.py, on an atlas whose visualizations are fully optimised.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The browser helpers of the image viewer's tests (same Chromium, same server in a thread).
from test_viewer_e2e import Page, api, browser, central_mapper_node, changed, pixels, serving  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.slow

LAYERS = ["features.block4", "head.relu"]
INPUT = 5  # the input given attributions
TEXT_LAYER = "encoder.layer.1.intermediate"


@pytest.fixture(scope="module")
def atlas_path(tmp_path_factory) -> Path:
    import neurocarta as nc
    from neurocarta.featvis import Settings, visualize
    from neurocarta.models.demo_cnn import load_demo_cnn
    from neurocarta.pipeline import build_concepts, build_mappers, build_topomaps

    source = nc.load_data("shapes:n=400,seed=0")
    bundle = load_demo_cnn(source, epochs=1, cache_dir=tmp_path_factory.mktemp("featvis-cache"), progress=False)
    path = tmp_path_factory.mktemp("featvis") / "atlas"
    atlas = nc.extract(bundle, source, path, layers=LAYERS, progress=False)
    build_topomaps(atlas, method="pca", seed=0, progress=False, formats=())
    build_mappers(atlas, layers=["head.relu"], progress=False, seed=0)
    build_concepts(atlas, progress=False, seed=0)
    for layer in LAYERS:  # Mapper nodes where the atlas has their graph; class 0's logit once
        last = layer == "head.relu"
        visualize(atlas, layers=[layer], neurons=[0, 1, 2, 3], concepts=True, mapper_nodes=last,
                  classes=[0] if last else None, settings=Settings(steps=8), device="cpu", progress=False)
    nc.attribute(atlas, [INPUT], device="cpu", progress=False)
    nc.attribute(atlas, [INPUT], target="class:0", device="cpu", progress=False)
    return path


@pytest.fixture(scope="module")
def server(atlas_path):
    with serving(atlas_path) as url:
        yield url


@pytest.fixture
def page(browser):
    p = Page(browser)
    yield p
    p.context.close()


def loaded_images(pg, selector: str) -> int:
    """How many images under ``selector`` have loaded (a broken one has no natural width)."""
    return pg.eval_on_selector_all(selector, "els => els.filter((e) => e.complete && e.naturalWidth > 0).length")


def shown(v: float) -> str:
    """A value as the caption writes it (FeatVis.svelte: three significant digits, whole from 100)."""
    return "0" if v == 0 else f"{v:.0f}" if abs(v) >= 100 else f"{v:#.3g}".rstrip(".")


def featvis_targets(server: str, layer: str, kind: str) -> dict[str, dict]:
    m = api(server, "/api/manifest")
    snap = next(s for s, layers in m["featvis"].items() if layer in layers)
    return {t["target"]: t for t in api(server, f"/api/featvis/{snap}/{layer}")["targets"] if t["kind"] == kind}


def test_feature_visualization_beside_a_neurons_exemplars(page, server):
    targets = featvis_targets(server, "features.block4", "neuron")
    assert set(targets) == {"0", "1", "2", "3"}
    pg = page.open(server + "#notour&sel=neuron%3Afeatures.block4%3A2")
    pg.wait_for_selector("[data-testid=inspector-body] [data-testid=featvis]")
    pg.wait_for_function("() => [...document.querySelectorAll('[data-testid=inspector-body] img')]"
                         ".every((e) => e.complete && e.naturalWidth > 0)")
    body = "[data-testid=inspector-body]"
    # the exemplar patches and, beside them, the neuron's visualization, captioned with the
    # activation it reached and its best exemplar's (the stored values, as the caption rounds them)
    assert loaded_images(pg, f"{body} img.patches") == 1
    assert loaded_images(pg, f"{body} [data-testid=featvis-image]") == 1
    t = targets["2"]
    caption = pg.inner_text(f"{body} [data-testid=featvis-caption]")
    assert f"reached {shown(t['activation'])} vs {shown(t['exemplar_activation'])} by the best exemplar" in caption
    assert f"input #{t['exemplar_input_id']}" in caption
    image = pixels(pg, f"{body} [data-testid=featvis-image]")
    assert image.std() > 5, "the visualization is blank"
    # a neuron without a visualization shows its patches alone, and nothing failed to load
    pg.evaluate("location.hash = '#notour&sel=neuron%3Afeatures.block4%3A9'")
    pg.wait_for_selector("text=Neuron 9 of features.block4")
    pg.wait_for_function("() => document.querySelectorAll('[data-testid=inspector-body] img.patches').length === 1")
    pg.wait_for_timeout(300)
    assert pg.locator(f"{body} [data-testid=featvis]").count() == 0
    assert page.errors == []


def test_mapper_tooltip_and_concept_graph_show_their_visualizations(page, server):
    nodes = featvis_targets(server, "head.relu", "mapper_node")
    assert len(nodes) == len(api(server, "/api/mapper/head.relu")["nodes"])
    pg = page.open(server + "#notour&mapperLayer=head.relu")
    # hover the saturated pixel (a class pie) nearest the Mapper canvas's centre
    canvas = pg.locator("[data-testid=mapper-canvas]")
    pg.wait_for_timeout(500)
    x, y = central_mapper_node(pg)
    box = canvas.bounding_box()
    pg.mouse.move(box["x"] + float(x), box["y"] + float(y))
    tip = "[data-testid=mapper-tooltip]"
    pg.wait_for_selector(f"{tip} [data-testid=featvis-image]")
    pg.wait_for_function(f"() => document.querySelector('{tip} [data-testid=featvis-image]').naturalWidth > 0")
    node = pg.inner_text(f"{tip} b").split()[-1]
    assert pg.get_attribute(f"{tip} [data-testid=featvis]", "data-target") == node
    caption = pg.inner_text(f"{tip} [data-testid=featvis-caption]")
    assert f"reaches {shown(nodes[node]['activation'])}" in caption
    # the concept graph: each drawn group with a stored visualization shows it beside its patches
    concepts = {**featvis_targets(server, "features.block4", "concept"), **featvis_targets(server, "head.relu", "concept")}
    assert concepts
    pg.wait_for_selector("[data-testid=graph-node]")
    drawn = pg.eval_on_selector_all("[data-testid=graph-node]", "els => els.map((e) => e.dataset.cluster)")
    pg.wait_for_function("(n) => document.querySelectorAll('[data-testid=graph-featvis]').length === n",
                         arg=sum(c in concepts for c in drawn))
    assert pg.locator("[data-testid=graph-featvis]").count() >= 1
    # the class shown (the first, by default) has its logit's visualization in the graph's corner
    pg.wait_for_function("() => document.querySelector('.classvis [data-testid=featvis-image]')?.naturalWidth > 0")
    assert pg.get_attribute(".classvis [data-testid=featvis]", "data-target") == "0"
    assert page.errors == []


def test_attribution_overlay_toggles_and_the_picker_switches_items(page, server):
    m = api(server, "/api/manifest")
    snap = next(s for s, ids in m["attributions"].items() if str(INPUT) in ids)
    items = api(server, f"/api/attributions/{snap}/{INPUT}")["items"]
    assert [(i["target_kind"], i["kind"]) for i in items] == [("predicted", "image"), ("class", "image")]
    pg = page.open(server + f"#notour&sel=input%3A{INPUT}")
    thumb = "[data-testid=attribution-thumb]"
    pg.wait_for_selector("[data-testid=attribution-overlay]")
    pg.wait_for_function("() => document.querySelector('[data-testid=attribution-overlay]').naturalWidth > 0")
    pg.wait_for_timeout(200)
    on = pixels(pg, thumb)
    # off: the bare thumbnail; on again: the same overlay
    pg.click("[data-testid=attribution-toggle]")
    assert pg.locator("[data-testid=attribution-overlay]").count() == 0
    off = pixels(pg, thumb)
    assert changed(on, off) > 0.02 * on.shape[0] * on.shape[1], "the overlay changes no pixel of the thumbnail"
    pg.click("[data-testid=attribution-toggle]")
    pg.wait_for_function("() => document.querySelector('[data-testid=attribution-overlay]')?.naturalWidth > 0")
    src = pg.get_attribute("[data-testid=attribution-overlay]", "src")
    assert src.endswith(f"/{INPUT}/{items[0]['index']}.png")
    # the picker names both items and shows the other one's overlay
    options = pg.eval_on_selector_all("[data-testid=attribution-pick] option", "els => els.map((e) => e.textContent)")
    assert len(options) == 2 and "predicted class" in options[0] and "class " + m["class_names"][0] in options[1]
    pg.select_option("[data-testid=attribution-pick]", value=str(items[1]["index"]))
    pg.wait_for_function("(s) => document.querySelector('[data-testid=attribution-overlay]').getAttribute('src') !== s",
                         arg=src)
    assert pg.get_attribute("[data-testid=attribution-overlay]", "src").endswith(f"/{INPUT}/{items[1]['index']}.png")
    # an input without attributions: its plain thumbnail, no toggle
    pg.evaluate(f"location.hash = '#notour&sel=input%3A{INPUT + 1}'")
    pg.wait_for_selector(f"text=Input #{INPUT + 1}")
    pg.wait_for_function(f"() => document.querySelector('{thumb} img')?.naturalWidth > 0")
    assert pg.locator("[data-testid=attribution-toggle]").count() == 0
    assert page.errors == []


def test_the_offline_export_shows_them_too(browser, atlas_path, tmp_path):
    from neurocarta.viewer.export import export_html

    out = export_html(atlas_path, tmp_path / "viewer.html")
    p = Page(browser)
    try:
        pg = p.open(out.as_uri() + "#notour&sel=neuron%3Afeatures.block4%3A1")
        pg.wait_for_selector("[data-testid=inspector-body] [data-testid=featvis-image]")
        pg.wait_for_function("() => document.querySelector('[data-testid=inspector-body] "
                             "[data-testid=featvis-image]').naturalWidth > 0")
        pg.evaluate(f"location.hash = '#notour&sel=input%3A{INPUT}'")
        pg.wait_for_function("() => document.querySelector('[data-testid=attribution-overlay]')?.naturalWidth > 0")
        assert p.errors == []
    finally:
        p.context.close()


# ---------------------------------------------------------------------------- text


@pytest.fixture(scope="module")
def text_server(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    import neurocarta as nc

    root = tmp_path_factory.mktemp("featvis-text")
    corpus = root / "sentences.txt"
    corpus.write_text("The river runs past the old oak tree\tnature\nStocks fell sharply on Monday\tfinance\n"
                      "Our team won the final match\tsports\nBirds sing in the green forest\tnature\n")
    atlas = nc.extract("minilm", f"text:{corpus}", root / "atlas", layers=[TEXT_LAYER], progress=False)
    nc.attribute(atlas, [1], target=f"neuron:{TEXT_LAYER}:7", device="cpu", progress=False)
    with serving(root / "atlas") as url:
        yield url


def test_text_tokens_are_coloured_by_their_signed_attribution(page, text_server):
    m = api(text_server, "/api/manifest")
    snap = next(s for s, ids in m["attributions"].items() if "1" in ids)
    (item,) = api(text_server, f"/api/attributions/{snap}/1")["items"]
    tokens = item["tokens"]
    assert item["kind"] == "tokens" and len(tokens) >= 5
    pg = page.page
    pg.goto(text_server + "#notour&sel=input%3A1")
    pg.wait_for_selector("[data-testid=attribution-tokens]")
    spans = pg.eval_on_selector_all("[data-testid=attribution-token]",
                                    "els => els.map((e) => [e.textContent, getComputedStyle(e).backgroundColor])")
    assert len(spans) == len(tokens)
    for (text, colour), t in zip(spans, tokens):
        assert text.strip() == t["token"].removeprefix("##")
        rgba = [float(x) for x in colour[colour.index("(") + 1:-1].split(",")]
        alpha = rgba[3] if len(rgba) == 4 else 1.0
        if abs(t["value"]) < 1e-3:
            continue
        # diverging and signed: red above zero, blue below, more opaque the larger |value|
        assert (rgba[0] > rgba[2]) == (t["value"] > 0), (t, colour)
        assert alpha == pytest.approx(min(1.0, abs(t["value"])) * 0.85, abs=0.01)
    assert "neuron 7" in pg.inner_text("[data-testid=inspector-body]")
    assert page.errors == []
