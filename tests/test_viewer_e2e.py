"""The viewer in a real browser: Debian's headless Chromium driven by Python Playwright.

A small atlas is built once for the module (demo-cnn trained for two epochs on 1,200 shapes, so
there are two snapshots for the slider; three layers; every map) and served by the real
FastAPI app on a free port in a thread. Each view is checked on pixels (a screenshot of its
drawing, counted against the panel's background), and a screenshot of each view is written to
docs/img/ for the README.

Needs /usr/bin/chromium (``make browser``), the ``playwright`` package (the dev extra; its own
browser download is never used) and the built front end (``make web``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
VIEWPORT = {"width": 1600, "height": 1000}

# A missing browser, Playwright or build is a set-up defect: fail loudly, never skip (CI
# installs all three through `make test`: the dev extra, `make browser` and `make web`).
import playwright.sync_api as playwright_api  # noqa: E402  (pip install -e '.[dev]')

if not Path(CHROMIUM).exists():
    raise RuntimeError(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")

from neurocarta.viewer.app import STATIC, bind_socket, create_app, url_of  # noqa: E402

if not (STATIC / "index.html").is_file():
    raise RuntimeError("the web assets are not built: run `make web`")


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def atlas_path(tmp_path_factory) -> Path:
    import neurocarta as nc
    from neurocarta.models.demo_cnn import load_demo_cnn
    from neurocarta.pipeline import build_concepts, build_mappers, build_projections, build_topomaps

    source = nc.load_data("shapes:n=1200,seed=0")
    bundle = load_demo_cnn(source, epochs=2, cache_dir=tmp_path_factory.mktemp("e2e-cache"), progress=False)
    path = tmp_path_factory.mktemp("e2e") / "atlas"
    atlas = nc.extract(bundle, source, path, layers=["features.block3", "features.block4", "head.relu"],
                       snapshots=bundle.info["checkpoints"], progress=False)
    # PCA layouts: the viewer does not care how the layout was made, and it spares UMAP's JIT.
    build_topomaps(atlas, method="pca", grid=True, snapshots=True, seed=0, progress=False)
    build_mappers(atlas, progress=False, seed=0)
    build_concepts(atlas, progress=False, snapshots=True, seed=0)
    build_projections(atlas, layers=["head.relu"], progress=False, seed=0)  # view 6, one layer (UMAP: ~2 s)
    return path


@pytest.fixture(scope="module")
def server(atlas_path):
    with serving(atlas_path) as url:
        yield url


@contextmanager
def serving(atlas_path, **options):
    """The viewer of ``atlas_path`` on a free port of 127.0.0.1, in a thread; yields its URL.
    ``options`` go to ``create_app`` (e.g. ``compare=`` a second atlas)."""
    import uvicorn

    sock = bind_socket("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(create_app(atlas_path, **options), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = url_of(sock)
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "api/manifest", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A fresh page that records console errors and uncaught exceptions."""

    def __init__(self, browser, tour: bool = False):
        self.context = browser.new_context(viewport=VIEWPORT)
        if not tour:
            self.context.add_init_script("try { localStorage.setItem('nc-tour-done', '1') } catch (e) {}")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, url: str):
        self.page.goto(url)
        wait_drawn(self.page, "topomap-canvas")
        return self.page


@pytest.fixture
def page(browser):
    p = Page(browser)
    yield p
    p.context.close()


def api(server: str, path: str):
    return json.loads(urllib.request.urlopen(server + path.lstrip("/"), timeout=30).read())


def wait_drawn(page, testid: str, more_than: int = 0, timeout: float = 30_000) -> int:
    """Wait until the canvas ``testid`` has been drawn more than ``more_than`` times."""
    page.wait_for_function(
        "([id, n]) => { const c = document.querySelector(`[data-testid=\"${id}\"]`);"
        " return c && Number(c.dataset.draws || 0) > n; }", arg=[testid, more_than], timeout=timeout)
    return draws(page, testid)


def draws(page, testid: str) -> int:
    return int(page.get_attribute(f"[data-testid={testid}]", "data-draws") or 0)


def pixels(page, selector: str) -> np.ndarray:
    from PIL import Image

    png = page.locator(selector).first.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def central_mapper_node(page) -> tuple[int, int]:
    """The saturated pixel (a class pie) nearest the centre of the Mapper canvas, in canvas pixels."""
    image = pixels(page, "[data-testid=mapper-canvas]")
    saturation = image.max(axis=2) - image.min(axis=2)
    ys, xs = np.nonzero(saturation > 80)
    assert len(xs), "no Mapper node drawn"
    h, w = saturation.shape
    k = int(np.argmin((xs - w / 2) ** 2 + (ys - h / 2) ** 2))
    return int(xs[k]), int(ys[k])


def ink(image: np.ndarray) -> int:
    """Pixels that differ from the background (the most common colour) by more than a little."""
    flat = image.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return int((np.abs(flat - background).sum(axis=1) > 30).sum())


def changed(a: np.ndarray, b: np.ndarray) -> int:
    return int((np.abs(a - b).sum(axis=2) > 30).sum())


def save(page, selector: str, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    page.locator(selector).first.screenshot(path=str(IMG / name))


# ---------------------------------------------------------------------------- tests


def test_loads_with_no_console_errors(browser, server):
    p = Page(browser, tour=True)  # a first visit: the tour opens too
    try:
        page = p.open(server)
        wait_drawn(page, "topomap-canvas")
        page.wait_for_selector("[data-testid=graph-node]")
        page.wait_for_selector("[data-testid=tour]")
        page.wait_for_timeout(1000)  # late fetches (findings, inputs, concepts) settle
        assert p.errors == []
        # the tour is dismissible and stays dismissed
        page.click("[data-testid=tour-close]")
        assert page.locator("[data-testid=tour]").count() == 0
        page.reload()
        wait_drawn(page, "topomap-canvas")
        assert page.locator("[data-testid=tour]").count() == 0
    finally:
        p.context.close()


def test_each_view_renders_non_empty(page, server):
    pg = page.open(server + "#notour")
    pg.wait_for_selector("[data-testid=graph-node]")
    wait_drawn(pg, "inputs-canvas")
    pg.wait_for_timeout(800)  # the WebGL scatter draws on the next frames
    area = {}
    for view, selector in [("topomap", "[data-testid=topomap-canvas]"),
                           ("projection", "[data-testid=projection-canvas]"),
                           ("graph", "[data-testid=graph-svg]"),
                           ("mapper", "[data-testid=mapper-canvas]"),
                           ("inputs", "[data-testid=inputs-canvas]")]:
        image = pixels(pg, selector)
        area[view] = ink(image) / (image.shape[0] * image.shape[1])
    # an input selected: the inspector shows its thumbnail, prediction and activation map
    input_id = api(server, "/api/mapper/head.relu/members?format=json")["input_id"][0]
    pg.fill("[data-testid=inspector-goto]", str(input_id))
    pg.keyboard.press("Enter")
    wait_drawn(pg, "inspector-topomap")
    pg.wait_for_timeout(500)
    assert f"Input #{input_id}" in pg.inner_text("[data-testid=inspector-body]")
    image = pixels(pg, "[data-testid=inspector-body]")
    area["inspector"] = ink(image) / (image.shape[0] * image.shape[1])
    for view, share in area.items():
        assert share > 0.01, f"{view} looks empty: {share:.2%} of its pixels drawn"
    for view in ("topomap", "projection", "graph", "mapper", "inspector"):
        save(pg, f"[data-testid=view-{view}]", f"view-{view}.png")
    pg.screenshot(path=str(IMG / "viewer.png"))
    assert page.errors == []


def test_clicking_a_concept_cluster_highlights_its_neurons_on_the_map(page, server):
    concepts = api(server, "/api/concepts/" + api(server, "/api/manifest")["maps"]["concepts"][-1])
    # a cluster in the class graphs with several members in a mapped layer
    cls, node = max(((c, n) for c, g in concepts["graphs"].items() for n in g["nodes"]),
                    key=lambda cn: cn[1]["n_members"])
    layer = node["layer"]
    pg = page.open(server + f"#notour&cls={cls}&tm={layer}%40label&contours=false")
    pg.wait_for_selector("[data-testid=graph-node]")
    n = wait_drawn(pg, "topomap-canvas")
    pg.wait_for_timeout(300)
    before = pixels(pg, "[data-testid=topomap-canvas]")
    pg.click(f"[data-testid=graph-node][data-cluster='{node['cluster']}']")
    wait_drawn(pg, "topomap-canvas", n)
    after = pixels(pg, "[data-testid=topomap-canvas]")
    assert f"sel=cluster%3A{node['cluster']}" in pg.url
    # every member is ringed: about 2 x 2 pi r pixels each
    assert changed(before, after) > 20 * node["n_members"]
    # the cascade lights up in the graph, and the selection reaches the projection's list
    assert pg.locator("[data-testid=graph-node].lit").count() >= 1
    assert page.errors == []


def test_a_deep_linked_cluster_keeps_its_members_lit_in_the_projection(page, server):
    """regl-scatterplot splices the points it cannot select (all of them before its first draw) out
    of the array it is given: handed the concept payload's member list itself, a cluster selected
    before the neuron projection first drew lost every member, in every view."""
    concepts = api(server, "/api/concepts/" + api(server, "/api/manifest")["maps"]["concepts"][-1])
    cluster = max(concepts["clusters"], key=lambda k: len(k["members"]))
    n = len(cluster["members"])
    assert n > 1
    pg = page.open(server + f"#notour&sel=cluster%3A{cluster['cluster']}")
    wait_drawn(pg, "projection-canvas")
    pg.wait_for_function(f"Number(document.querySelector('[data-testid=projection-canvas]').dataset.selected) === {n}",
                         timeout=10_000)
    # and the list stays whole for the next draw too (a colour change redraws and selects again)
    drawn = draws(pg, "projection-canvas")
    pg.select_option("[data-testid=projection-color]", value="layer")
    wait_drawn(pg, "projection-canvas", drawn)
    assert pg.get_attribute("[data-testid=projection-canvas]", "data-selected") == str(n)
    assert page.errors == []


def test_the_snapshot_slider_changes_the_map(page, server):
    pg = page.open(server + "#notour&tm=head.relu%40label")
    assert pg.inner_text("[data-testid=snapshot-name]") == "epoch2"
    n = wait_drawn(pg, "topomap-canvas")
    before = pixels(pg, "[data-testid=topomap-canvas]")
    pg.focus("[data-testid=snapshot-slider]")
    pg.keyboard.press("Home")
    wait_drawn(pg, "topomap-canvas", n)
    assert pg.inner_text("[data-testid=snapshot-name]") == "epoch1"
    after = pixels(pg, "[data-testid=topomap-canvas]")
    assert changed(before, after) > 0.02 * before.shape[0] * before.shape[1]
    assert "snap=epoch1" in pg.url
    # play steps on by itself
    n = draws(pg, "topomap-canvas")
    pg.click("[data-testid=snapshot-play]")
    wait_drawn(pg, "topomap-canvas", n, timeout=5000)
    pg.click("[data-testid=snapshot-play]")
    assert pg.inner_text("[data-testid=snapshot-name]") == "epoch2"


def test_selecting_a_mapper_node_changes_the_topomap_group(page, server):
    pg = page.open(server + "#notour&tm=head.relu%40label&mapperLayer=head.relu")
    pg.wait_for_timeout(500)
    label = pg.inner_text("[data-testid=topomap-group-label]")
    n = draws(pg, "topomap-canvas")
    before = pixels(pg, "[data-testid=topomap-canvas]")
    x, y = central_mapper_node(pg)
    pg.click("[data-testid=mapper-canvas]", position={"x": x, "y": y})
    pg.wait_for_function("() => /Mapper node/.test(document.querySelector('[data-testid=topomap-group-label]').textContent)")
    wait_drawn(pg, "topomap-canvas", n)
    assert pg.inner_text("[data-testid=topomap-group-label]") != label
    assert "groupMode=node" in pg.url and "sel=node%3Ahead.relu" in pg.url
    after = pixels(pg, "[data-testid=topomap-canvas]")
    assert changed(before, after) > 0.02 * before.shape[0] * before.shape[1]
    # the inspector shows the node's members
    pg.wait_for_selector("[data-testid=node-members] img")
    assert page.errors == []


def test_painting_the_map_by_correct_and_wrong(page, server):
    """Any categorical input column paints the map (correct/wrong here), not only the stored grouping."""
    pg = page.open(server + "#notour&tm=head.relu%40label")
    pg.wait_for_timeout(500)
    n = draws(pg, "topomap-canvas")
    before = pixels(pg, "[data-testid=topomap-canvas]")
    pg.select_option("[data-testid=topomap-group]", value="__col:correct=False")
    pg.wait_for_function("() => /correct = False \\(\\d+ inputs\\)/.test("
                         "document.querySelector('[data-testid=topomap-group-label]').textContent)")
    wait_drawn(pg, "topomap-canvas", n)
    assert "groupMode=column" in pg.url
    after = pixels(pg, "[data-testid=topomap-canvas]")
    assert changed(before, after) > 0.02 * before.shape[0] * before.shape[1]
    assert page.errors == []


def test_deep_link_keyboard_and_theme(page, server):
    pg = page.open(server + "#notour&sel=input%3A7&grid=true")
    pg.wait_for_selector("text=Input #7")
    assert pg.get_attribute("[data-testid=grid-toggle]", "class").split().count("on") == 1
    pg.click("h1")
    pg.keyboard.press("t")
    assert pg.get_attribute("html", "data-theme") == "dark"
    pg.keyboard.press("Escape")
    # the hash follows the selection asynchronously: wait for it (fails after 5 s)
    pg.wait_for_function("!location.hash.includes('sel=')", timeout=5000)
    assert "sel=" not in pg.url
    # a finding selects what it is about and focuses its view
    findings = api(server, "/api/findings")
    if findings:
        pg.locator("[data-testid=finding]").first.click()
        view = pg.evaluate("new URLSearchParams(location.hash.slice(1)).get('view')")
        assert view in ("topomap", "projection", "graph", "mapper", "inspector")
        pg.wait_for_timeout(500)
    assert page.errors == []


def test_a_failing_read_shows_its_reason_in_its_panel(page, server):
    """A read that fails says so where its content would be, with the server's reason, never an
    empty state: findings that fail are not "No findings for this atlas" (issue 14, bug 3)."""
    def fail(route, reason: str):
        # the server's error shape (see the real 404 below): a non-2xx status, {"error": reason}
        route.fulfill(status=500, content_type="application/json", body=json.dumps({"error": reason}))

    pg = page.page
    pg.route("**/api/findings", lambda route: fail(route, "boom: a findings rule failed"))
    pg.route("**/api/mapper/head.relu", lambda route: fail(route, "boom: no graph today"))
    # input 5000 does not exist (1,200 inputs): the real server answers its map with a 404
    page.open(server + "#notour&mapperLayer=head.relu&sel=input%3A5000")
    findings = pg.locator("[data-testid=findings]")
    findings.locator("[data-testid=findings-error]").wait_for(timeout=10_000)
    assert "Could not load the findings: boom: a findings rule failed" in findings.inner_text()
    assert "No findings" not in findings.inner_text()
    mapper = pg.locator("[data-testid=view-mapper] [data-testid=mapper-error]")
    mapper.wait_for(timeout=10_000)
    assert mapper.inner_text() == "Could not load the Mapper graph of head.relu: boom: no graph today"
    inspector = pg.locator("[data-testid=inspector-body] [data-testid=inspector-error]").first
    inspector.wait_for(timeout=10_000)
    assert inspector.inner_text() == "Could not load its activation map: input_id 5000 is out of range 0..1199"
    # the failed responses are logged by the browser; nothing may throw
    assert [e for e in page.errors if e.startswith("uncaught")] == []


@pytest.mark.slow
def test_the_demo_atlas_loads_without_console_errors(browser, demo_atlas_mapped):
    """The demo's own model and data (the session's demo_atlas: 10,000 images, 6 layers), mapped
    as `neurocarta map` maps it (PCA layouts here, to spare UMAP's JIT in this process; the maps
    are conftest's demo_atlas_mapped, built once for this test and the demo's findings)."""
    with serving(demo_atlas_mapped.root) as url:
        p = Page(browser)
        try:
            pg = p.open(url + "#notour")
            pg.wait_for_selector("[data-testid=graph-node]")
            pg.wait_for_timeout(800)
            assert_views_drawn(p, pg)
        finally:
            p.context.close()


def assert_views_drawn(p: "Page", pg) -> None:
    """Every drawing view holds ink (1% of its pixels or more), and nothing was logged as an error."""
    for selector in ("[data-testid=topomap-canvas]", "[data-testid=projection-canvas]",
                     "[data-testid=graph-svg]", "[data-testid=mapper-canvas]"):
        image = pixels(pg, selector)
        assert ink(image) > 0.01 * image.shape[0] * image.shape[1], selector
    assert p.errors == []


def test_static_export_opens_from_file(browser, atlas_path, tmp_path):
    out = tmp_path / "viewer.html"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    run = subprocess.run([sys.executable, "-m", "neurocarta", "export", str(atlas_path), "--html", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    p = Page(browser)
    try:
        pg = p.open(out.as_uri() + "#notour")
        pg.wait_for_selector("[data-testid=graph-node]")
        pg.wait_for_timeout(800)
        assert "offline export" in pg.inner_text("[data-testid=atlas-title]")
        assert_views_drawn(p, pg)
    finally:
        p.context.close()
