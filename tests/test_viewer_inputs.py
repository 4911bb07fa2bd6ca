"""The input projection view (issue 19) in a real browser: it draws every input, colours by an
attribute, searches, lassoes a set into the topographic map's group, rings the Mapper nodes the
lasso falls in, lights up a Mapper node's members, and logs no console errors.

The atlas is small and built once for the module: demo-cnn trained one epoch on 600 shapes, two
layers, PCA topomaps, Mapper graphs and the input projection (a few seconds). The browser and
page helpers come from tests/test_viewer_e2e.py.
"""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import quote

import pytest

from test_viewer_e2e import IMG, Page, api, browser, page, pixels, ink, serving, wait_drawn  # noqa: F401  (fixtures: browser, page)

pytestmark = pytest.mark.slow

LAYER = "head.relu"
#: a lasso around the left half of the unit square (the projection's coordinates)
LEFT_HALF = [-0.01, -0.01, 0.5, -0.01, 0.5, 1.01, -0.01, 1.01]


@pytest.fixture(scope="module")
def atlas_path(tmp_path_factory):
    import neurocarta as nc
    from neurocarta.models.demo_cnn import load_demo_cnn
    from neurocarta.pipeline import build_mappers, build_projections, build_topomaps

    source = nc.load_data("shapes:n=600,seed=0")
    bundle = load_demo_cnn(source, epochs=1, cache_dir=tmp_path_factory.mktemp("inputs-cache"), progress=False)
    path = tmp_path_factory.mktemp("inputs") / "atlas"
    atlas = nc.extract(bundle, source, path, layers=["features.block4", LAYER], progress=False)
    build_topomaps(atlas, method="pca", seed=0, progress=False)
    build_mappers(atlas, progress=False, seed=0)
    build_projections(atlas, progress=False, seed=0)
    return path


@pytest.fixture(scope="module")
def server(atlas_path):
    with serving(atlas_path) as url:
        yield url


def open_inputs(page: Page, url: str, hash_: str = ""):
    pg = page.page
    pg.goto(url + "#notour&view=inputs&inLayer=" + quote(LAYER) + hash_)
    wait_drawn(pg, "inputs-canvas")
    pg.wait_for_timeout(300)  # the WebGL frame after the draw
    return pg


def colours_of(image) -> set[tuple[int, ...]]:
    """The colours that cover more than 20 pixels (the points' colours and the background)."""
    import numpy as np

    colours, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    return {tuple(c) for c, n in zip(colours.tolist(), counts) if n > 20}


def lit(pg) -> int:
    return int(pg.get_attribute("[data-testid=inputs-canvas]", "data-lit") or 0)


def test_draws_every_input_and_colours_by_an_attribute(page, server):
    payload = api(server, f"/api/input-projection/{LAYER}")
    assert len(payload["x"]) == 600 and not payload["sampled"]
    pg = open_inputs(page, server)
    assert "600 inputs" in pg.inner_text("[data-testid=inputs-count]")
    image = pixels(pg, "[data-testid=inputs-canvas]")
    assert ink(image) / (image.shape[0] * image.shape[1]) > 0.005  # points on the canvas
    # by label: one legend line per class, counts summing to the inputs
    labels = {e.split()[0] for e in pg.locator("[data-testid=inputs-legend-entry]").all_inner_texts()}
    names = set(api(server, "/api/manifest")["class_names"])
    assert labels and labels <= names
    before = pixels(pg, "[data-testid=inputs-canvas]")
    drawn = wait_drawn(pg, "inputs-canvas")
    pg.select_option("[data-testid=inputs-color]", "colour")
    wait_drawn(pg, "inputs-canvas", drawn)
    pg.wait_for_timeout(300)
    entries = pg.locator("[data-testid=inputs-legend-entry]").all_inner_texts()
    inputs = api(server, "/api/inputs?format=json&limit=1000")
    colours = {r["colour"] for r in inputs}
    assert {e.split()[0] for e in entries} == colours
    assert sum(int(e.split()[-1].replace(",", "")) for e in entries) == 600
    after = pixels(pg, "[data-testid=inputs-canvas]")
    assert colours_of(after) != colours_of(before)  # the points are painted in other colours
    assert page.errors == []


def test_search_by_metadata_lights_up_the_matching_inputs(page, server):
    inputs = api(server, "/api/inputs?format=json&limit=1000")
    colour = inputs[0]["colour"]
    want = sum(r["colour"] == colour for r in inputs)
    pg = open_inputs(page, server)
    pg.fill("[data-testid=inputs-search]", f"colour={colour}")
    pg.wait_for_function(f"Number(document.querySelector('[data-testid=inputs-canvas]').dataset.lit) === {want}",
                         timeout=10_000)
    assert f"{want} match" in pg.inner_text("[data-testid=inputs-lit]")
    pg.fill("[data-testid=inputs-search]", "")
    pg.wait_for_function("Number(document.querySelector('[data-testid=inputs-canvas]').dataset.lit) === 0",
                         timeout=10_000)
    assert page.errors == []


def test_lasso_becomes_the_topomap_group_and_rings_mapper_nodes(page, server):
    payload = api(server, f"/api/input-projection/{LAYER}")
    inside = {i for i, x in enumerate(payload["x"]) if x < 0.5}
    ids = {payload["input_id"][i] for i in inside}
    members = api(server, f"/api/mapper/{LAYER}/members?format=json")
    want_nodes = sorted({n for n, i in zip(members["node"], members["input_id"]) if i in ids})
    polygon = ",".join(map(str, LEFT_HALF))
    # the server's map of the lasso against the rest: one value per neuron of the map's layer
    name = f"{LAYER}@label"
    sel = api(server, f"/api/topomap/{quote(name)}/selection/{LAYER}?polygon={polygon}")
    assert sel["n_inputs"] == len(ids) and sel["n_rest"] == 600 - len(ids)
    assert len(sel["values"]) == api(server, "/api/manifest")["layers"][1]["n_neurons"]
    pg = open_inputs(page, server, f"&mapperLayer={quote(LAYER)}&tm={quote(name)}")
    # draw the lasso with the mouse: the lasso button, then a drag around the left half
    box = pg.locator("[data-testid=inputs-canvas]").bounding_box()
    pg.click("[data-testid=inputs-lasso]")

    def at(u: float, v: float) -> tuple[float, float]:  # unit square -> screen (the view's 1.9 scale, y up)
        side = min(box["width"], box["height"])
        return (box["x"] + box["width"] / 2 + (u * 1.9 - 0.95) * side / 2,
                box["y"] + box["height"] / 2 - (v * 1.9 - 0.95) * side / 2)

    path = [(-0.02, -0.02), (0.5, -0.02), (0.5, 1.02), (-0.02, 1.02), (-0.02, 0.0)]
    pg.mouse.move(*at(*path[0]))
    pg.mouse.down()
    for a, b in zip(path, path[1:]):
        for t in range(1, 11):
            pg.mouse.move(*at(a[0] + (b[0] - a[0]) * t / 10, a[1] + (b[1] - a[1]) * t / 10))
    pg.mouse.up()
    pg.wait_for_function("new URLSearchParams(location.hash.slice(1)).get('sel')?.startsWith('inputs:')",
                         timeout=10_000)
    n_lit = lit(pg)
    assert abs(n_lit - len(inside)) <= max(3, 0.05 * len(inside))  # the drawn lasso: the left half, near enough
    # the inspector lists the lasso's inputs; the Mapper view rings the nodes they fall in
    title = pg.inner_text("[data-testid=inputs-detail-title]")
    assert title.startswith(f"{n_lit}") or "inputs lassoed" in title
    assert pg.locator("[data-testid=inputs-detail-list] button").count() == min(60, n_lit)
    pg.wait_for_function("document.querySelector('[data-testid=mapper-canvas]').dataset.holding !== ''",
                         timeout=10_000)
    ringed = pg.get_attribute("[data-testid=mapper-canvas]", "data-holding")
    assert set(map(int, ringed.split(","))) <= set(want_nodes) and ringed
    # the topographic map's group is the lasso against the rest
    label = pg.locator("[data-testid=topomap-group-label]")
    label.filter(has_text="lasso of").wait_for(timeout=20_000)
    assert "against the rest" in label.inner_text()
    IMG.mkdir(parents=True, exist_ok=True)
    pg.locator("[data-testid=view-inputs]").screenshot(path=str(IMG / "view-inputs.png"))
    assert page.errors == []


def test_a_deep_linked_lasso_selects_what_the_server_selects(page, server):
    payload = api(server, f"/api/input-projection/{LAYER}")
    inside = [i for i, x in enumerate(payload["x"]) if x < 0.5]
    pg = open_inputs(page, server, "&sel=" + quote(f"inputs:{LAYER}:" + ",".join(map(str, LEFT_HALF))))
    pg.locator("[data-testid=inputs-lit]").filter(has_text=f"lasso: {len(inside)} points").wait_for(timeout=10_000)
    # and the plot shows those points selected, after its first draw too (regl-scatterplot once
    # emptied the lit list in place when asked to select before any point was drawn)
    wait_drawn(pg, "inputs-canvas")
    pg.wait_for_function(f"Number(document.querySelector('[data-testid=inputs-canvas]').dataset.lit) === {len(inside)}",
                         timeout=10_000)
    assert page.errors == []


def test_a_mapper_node_lights_up_its_members(page, server):
    members = api(server, f"/api/mapper/{LAYER}/members?format=json")
    node = max(set(members["node"]), key=members["node"].count)
    want = len({i for n, i in zip(members["node"], members["input_id"]) if n == node})
    pg = open_inputs(page, server, "&sel=" + quote(f"node:{LAYER}:{node}"))
    pg.locator("[data-testid=inputs-lit]").filter(has_text=f"Mapper node {node} of {LAYER}: {want} points").wait_for(
        timeout=10_000)
    assert page.errors == []


def test_bad_polygons_are_one_line_errors(server):
    for polygon, status in (("1,2", 400), ("a,b,c,d,e,f", 400), ("5,5,6,5,6,6", 404)):
        try:
            urllib.request.urlopen(server + f"api/topomap/{quote(LAYER + '@label')}/selection/{LAYER}?polygon={polygon}")
        except urllib.error.HTTPError as e:
            assert e.code == status
            assert json.loads(e.read())["error"]
        else:
            raise AssertionError(f"polygon {polygon} was accepted")


def test_the_offline_export_carries_the_projections(atlas_path):
    from neurocarta.store import open_atlas
    from neurocarta.viewer.data import ViewerData
    from neurocarta.viewer.export import static_payloads

    import numpy as np

    out = static_payloads(ViewerData(open_atlas(atlas_path)), np.arange(10))
    assert out["/api/input-projection"] == ["features.block4", LAYER]
    assert out["/api/manifest"]["maps"]["inputs"] == ["features.block4", LAYER]
    assert len(out[f"/api/input-projection/{LAYER}"]["x"]) == 600  # every point, the sample's inputs or not
