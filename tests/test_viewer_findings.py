"""The viewer's findings panel in a real browser (issue 16): every kind, new ones included
(confusion, underperforming, outlier, duplicate), shows a kind badge, its confidence in short
("q = 2e-9") and its check line, in the server's reading order; clicking a finding selects
what it is about, and a finding about inputs lists them, each a click from the inspector.

The atlas is the small 21-class one (tests/test_figures_many_classes.py: a few seconds), served
by tests/test_viewer_mapper_legend.py's fixtures; the browser comes from tests/test_viewer_e2e.py.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from test_viewer_e2e import api, browser  # noqa: F401  (browser: a fixture)
from test_viewer_mapper_legend import mapper_page, server  # noqa: F401  (fixtures: the 21-class atlas served, a page)

from neurocarta.findings import KINDS
from neurocarta.findings.common import make_finding

pytestmark = pytest.mark.slow


def panel_items(pg) -> list[dict]:
    """Each finding of the panel: its badge, confidence, text and check line, as shown."""
    pg.locator("[data-testid=finding]").first.wait_for(timeout=20_000)
    return pg.evaluate("""() => [...document.querySelectorAll('[data-testid=findings] li')].map((li) => ({
        kind: li.querySelector('[data-testid=finding-kind]').textContent.trim(),
        confidence: li.querySelector('[data-testid=finding-confidence]')?.textContent.trim() ?? '',
        text: li.querySelector('[data-testid=finding]').textContent,
        check: li.querySelector('[data-testid=finding-check]')?.textContent.trim() ?? '',
        inputs: li.querySelectorAll('[data-testid=finding-inputs] button').length }))""")


def hash_param(pg, key: str) -> str | None:
    return pg.evaluate(f"new URLSearchParams(location.hash.slice(1)).get({key!r})")


def test_the_atlas_findings_are_shown_in_reading_order_with_badge_and_check(mapper_page, server):
    want = api(server, "/api/findings")
    assert any(f["kind"] == "separation" for f in want)  # the 21-class atlas's merged separation line
    pg = mapper_page.page
    pg.goto(server + "#notour")  # no topomap in this atlas: nothing to wait for but the panel
    shown = panel_items(pg)
    assert [s["kind"] for s in shown] == [f["kind"] for f in want]  # the server's order, every finding
    for s, f in zip(shown, want):
        assert f["text"] in s["text"] and s["check"] == f["check"]
    sep = next(i for i, f in enumerate(want) if f["kind"] == "separation")
    pg.locator("[data-testid=finding]").nth(sep).click()
    pg.wait_for_function("new URLSearchParams(location.hash.slice(1)).get('view') === 'mapper'", timeout=5000)
    assert hash_param(pg, "mapperLayer") == want[sep]["selection"]["layer"]
    assert mapper_page.errors == []


def synthetic_findings() -> list[dict]:
    """One finding of every kind, in reading order, the problems backed by a test."""
    out = []
    for i, kind in enumerate(KINDS):
        confidence = {"test": "Fisher exact, BH over 96 tests", "p": 1e-10, "q": 2.1e-9} if i < 6 else {}
        selection = {"layer": "2", "inputs": list(range(10 * i, 10 * i + 12))} if i < 6 else {"layer": "2"}
        out.append(make_finding(kind, f"A {kind} finding.", "inspector", selection, 0.5, {},
                                confidence=confidence, check=f"Check the {kind} finding in the inspector."))
    return out


def test_every_kind_has_a_badge_its_confidence_and_inputs_to_select(mapper_page, server):
    found = synthetic_findings()
    pg = mapper_page.page
    pg.route("**/api/findings", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=json.dumps(found)))
    pg.goto(server + "#notour")
    shown = panel_items(pg)
    assert [s["kind"] for s in shown] == list(KINDS)
    for s, f in zip(shown, found):
        assert s["check"] == f["check"] and f["text"] in s["text"]
        assert s["confidence"] == ("q = 2e-9" if f["confidence"] else "")
        assert s["inputs"] == (8 if "inputs" in f["selection"] else 0)  # the first 8 of 12, the rest counted
    # the new kinds' badges are told apart by colour group: problems, errors, hygiene, descriptions
    colours = pg.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-testid=findings] li')]
        .map((li) => [li.dataset.kind, getComputedStyle(li.querySelector('[data-testid=finding-kind]')).color]))""")
    assert colours["shortcut"] == colours["mislabels"] != colours["confusion"] == colours["underperforming"]
    assert colours["outlier"] == colours["duplicate"] != colours["separation"] == colours["concept"]
    assert len({colours[k] for k in ("shortcut", "confusion", "outlier", "separation")}) == 4
    # a finding about inputs selects the first of them in the inspector
    outlier = list(KINDS).index("outlier")
    pg.locator("[data-testid=finding]").nth(outlier).click()
    pg.wait_for_function("new URLSearchParams(location.hash.slice(1)).get('sel') === 'input:40'", timeout=5000)
    assert hash_param(pg, "view") == "inspector"
    # and each listed input is a click away
    pg.locator("[data-testid=findings] li").nth(outlier).locator("[data-testid=finding-inputs] button").nth(3).click()
    pg.wait_for_function("new URLSearchParams(location.hash.slice(1)).get('sel') === 'input:43'", timeout=5000)
    assert unquote(pg.url).count("input:43") == 1
    assert "+4 more" in pg.locator("[data-testid=findings] li").nth(outlier).inner_text()
    assert mapper_page.errors == []
