"""The viewer's Mapper panel on a 21-class atlas, in a real browser: a class legend that lists
all 21 classes in distinct colours (the manifest's, so the figures' too), pies drawn in those
colours, and a KeplerMapper-style tooltip per node (size, top 3 classes with shares, lens,
accuracy).

The atlas (tests/test_figures_many_classes.py: a folder of 504 images in 21 class subfolders, a seeded MLP, one layer, a few
seconds) is served by the real app; the browser, the page recorder and the server come from
tests/test_viewer_e2e.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from test_figures_many_classes import CLASS_NAMES, build_many_class_atlas
from test_viewer_e2e import Page, browser, pixels, serving  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("many-e2e") / "atlas"
    build_many_class_atlas(path)
    with serving(path) as url:
        yield url


@pytest.fixture
def mapper_page(browser):  # noqa: F811  (the fixture imported above)
    p = Page(browser)
    yield p
    p.context.close()


def rgb(css: str) -> tuple[int, ...]:
    """``rgb(r, g, b)`` or ``#rrggbb`` as a tuple of ints."""
    if css.startswith("#"):
        return tuple(int(css[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def test_the_mapper_legend_lists_all_21_classes_and_nodes_have_tooltips(mapper_page, server):
    pg = mapper_page.page
    pg.goto(server + "#notour&mapperLayer=1&mapperColor=pie")
    entries = pg.locator("[data-testid=view-mapper] [data-testid=class-legend-entry]")
    entries.first.wait_for(timeout=20_000)
    assert entries.all_inner_texts() == CLASS_NAMES  # all 21, in label order: nothing folded
    assert pg.locator("[data-testid=class-legend-other]").count() == 0
    swatches = [rgb(pg.evaluate("e => getComputedStyle(e).backgroundColor", e.locator(".sw").element_handle()))
                for e in entries.all()]
    assert len(set(swatches)) == 21
    assert swatches == [rgb(c) for c in entries.evaluate_all("es => es.map((e) => e.dataset.colour)")]

    # the pies use the legend's colours: every saturated pixel of the graph is near one of them
    pg.wait_for_timeout(500)
    image = pixels(pg, "[data-testid=mapper-canvas]")
    saturation = image.max(axis=2) - image.min(axis=2)
    ys, xs = np.nonzero(saturation > 80)
    box = pg.locator("[data-testid=mapper-canvas]").bounding_box()
    legend_left = pg.locator("[data-testid=class-legend]").bounding_box()["x"] - box["x"]
    ys, xs = ys[xs < legend_left - 2], xs[xs < legend_left - 2]  # the legend floats over the canvas
    assert len(xs) > 200, "no Mapper node drawn"
    palette = np.array(swatches)
    nearest = np.abs(image[ys, xs][:, None, :] - palette[None]).sum(axis=2).min(axis=1)
    assert np.mean(nearest < 30) > 0.9  # anti-aliased edges aside

    # hovering a node shows its tooltip
    k = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
    pg.mouse.move(box["x"] + float(xs[k]), box["y"] + float(ys[k]))
    tip = pg.locator("[data-testid=mapper-tooltip]")
    tip.wait_for(timeout=5_000)
    text = tip.inner_text()
    assert re.search(r"node \d+ · \d+ inputs", text), text
    shares = re.findall(r"([a-z]+) (\d+)%", pg.inner_text("[data-testid=tooltip-classes]"))
    assert 1 <= len(shares) <= 3 and all(name in CLASS_NAMES for name, _ in shares)
    assert sum(int(s) for _, s in shares) <= 101 and int(shares[0][1]) >= int(shares[-1][1])
    assert re.search(r"lens \(mean\): -?\d", text) and re.search(r"accuracy: \d+%", text), text
    assert mapper_page.errors == []
