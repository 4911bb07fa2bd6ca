"""The viewer in Jupyter (issue 19): ``nc.show`` serves the viewer on the loopback with a
token-protected state endpoint and reads the selection back; results display themselves; the
tour notebook runs under nbclient on the session's demo atlas and is committed without outputs."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neurocarta as nc
from neurocarta.errors import UserError
from neurocarta.methods.inputs_projection import InputProjection
from neurocarta.viewer.notebook import STATE_PATH, STATE_TOKEN_HEADER

TOUR = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "tour.ipynb"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def post_state(view, body: bytes, token: str | None) -> int:
    """POST ``body`` to the view's state endpoint; the HTTP status."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers[STATE_TOKEN_HEADER] = token
    request = urllib.request.Request(view.address.rstrip("/") + STATE_PATH, data=body, method="POST", headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code


def report(view, sel: str) -> None:
    """What the front end does when the selection changes (web/src/lib/notebook.ts)."""
    hash_text = f"view=inputs&{urllib.parse.urlencode({'sel': sel})}"
    assert post_state(view, json.dumps({"hash": hash_text}).encode(), view._token) == 204


@pytest.fixture(scope="module")
def view(demo_atlas_mapped):
    shown = nc.show(demo_atlas_mapped, view="mapper")
    yield shown
    shown.close()


def test_show_is_an_iframe_on_the_loopback_that_serves_the_atlas(view, demo_atlas_mapped):
    frame = view._repr_html_()
    assert frame.startswith('<iframe src="http://127.0.0.1:') and "notebook=" in frame and "view=mapper" in frame
    manifest = json.load(urllib.request.urlopen(view.address + "api/manifest", timeout=30))
    assert manifest["n_inputs"] == demo_atlas_mapped.n_inputs
    assert view.state == {} and list(view.selection.columns)[:1] == ["input_id"] and view.selection.empty


def test_the_selection_reads_back_as_the_inputs_or_neurons_it_holds(view, demo_atlas_mapped):
    report(view, "input:7")
    picked = view.selection
    assert picked["input_id"].tolist() == [7]
    assert picked["label_name"].iloc[0] == demo_atlas_mapped.inputs.set_index("input_id").loc[7, "label_name"]

    members = nc.load_mapper(demo_atlas_mapped, "head.relu").members()
    node = int(members["node"].value_counts().idxmax())
    report(view, f"node:head.relu:{node}")
    expected = np.unique(members.loc[members["node"] == node, "input_id"])
    assert view.state["sel"] == f"node:head.relu:{node}"
    assert view.selection["input_id"].tolist() == expected.tolist() and len(expected) > 10

    neurons = nc.load_concepts(demo_atlas_mapped).neurons
    cluster = int(neurons.loc[neurons["cluster"] >= 0, "cluster"].value_counts().idxmax())
    report(view, f"cluster:{cluster}")
    got = view.selection
    want = neurons[neurons["cluster"] == cluster]
    assert got[["layer", "unit"]].values.tolist() == want[["layer", "unit"]].values.tolist()

    report(view, "node:no.such.layer:3")
    with pytest.raises(UserError, match="no layer 'no.such.layer'"):
        view.selection


def test_a_lasso_on_the_input_projection_reads_back_the_inputs_inside_it(view, demo_atlas_mapped):
    """The lasso's inputs are the projection's points inside its polygon. The projection here
    is laid out by hand (the activations' first two principal axes, in [0, 1]) so the expected
    set is known without UMAP; the selection goes through the viewer's own polygon code."""
    acts = demo_atlas_mapped.activations("head.relu").to_numpy()
    centred = acts - acts.mean(axis=0)
    xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    xy = (xy - xy.min(axis=0)) / (xy.max(axis=0) - xy.min(axis=0))
    ids = demo_atlas_mapped.inputs["input_id"].to_numpy()
    points = pd.DataFrame({"row": np.arange(len(ids)), "input_id": ids, "x": xy[:, 0], "y": xy[:, 1]})
    projection = InputProjection("head.relu", demo_atlas_mapped.snapshots[-1], points, len(ids))
    view._data.projection_result = lambda layer: projection  # in memory: the shared atlas stays as it is
    # the points left of a cut near x = 0.5. A point on the lasso's edge is not inside it, and the
    # layout's extreme points lie on the unit square's edges (input 1428 at y = 1 made this test
    # fail), so the rectangle reaches beyond the square, and its right side runs midway through
    # the widest gap between points near x = 0.5
    xs = np.sort(xy[:, 0])
    middle = np.searchsorted(xs, 0.5)
    window = np.arange(max(1, middle - 50), min(len(xs), middle + 50))
    widest = window[np.argmax(xs[window] - xs[window - 1])]
    cut = float((xs[widest] + xs[widest - 1]) / 2)
    assert xs[widest] - cut > 1e-5  # the server rounds coordinates to 6 decimals
    report(view, f"inputs:head.relu:-1,-1,{cut!r},-1,{cut!r},2,-1,2")
    inside = np.sort(ids[xy[:, 0] < cut])
    assert view.selection["input_id"].tolist() == inside.tolist() and 0 < len(inside) < len(ids)


def test_the_page_in_a_notebook_frame_reports_its_selection_to_python(view):
    """The real front end, in an iframe as Jupyter shows it: its first state arrives after
    the page loads, and a selection made in the page (through its URL hash, as a deep link
    does) comes back as ``view.selection``."""
    import time

    from playwright.sync_api import sync_playwright
    from test_viewer_e2e import CHROMIUM, CHROMIUM_ARGS

    def wait_for(condition, what: str) -> None:
        for _ in range(300):
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"the page never reported {what}; last state: {view.state}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.set_content(f"<!doctype html><body>{view._repr_html_()}</body>")
            wait_for(lambda: view.state.get("view") == "mapper" and view.state.get("mapperLayer"), "its first state")
            frame = next(f for f in page.frames if f.url.startswith(view.address))
            # The page's own state write (history.replaceState) lands between the navigation and
            # its hashchange event, as when a view settles just then: the deep link still wins.
            frame.evaluate("location.hash = '#view=inputs&sel=input%3A7';"
                           "history.replaceState(null, '', '#view=mapper')")
            wait_for(lambda: view.state.get("sel") == "input:7", "the selection")
            assert view.selection["input_id"].tolist() == [7]
            assert not errors, errors
        finally:
            browser.close()


def test_the_state_endpoint_wants_the_token_and_serve_stays_read_only(view, demo_atlas_mapped):
    from fastapi.testclient import TestClient

    from neurocarta.viewer import create_app

    good = json.dumps({"hash": "sel=input%3A1"}).encode()
    assert post_state(view, good, None) == 403
    assert post_state(view, good, view._token + "x") == 403
    assert post_state(view, b"not json", view._token) == 400
    assert view.state.get("sel") != "input:1"
    with TestClient(create_app(demo_atlas_mapped)) as client:  # what `neurocarta serve` runs
        assert client.post(STATE_PATH, content=good, headers={STATE_TOKEN_HEADER: view._token}).status_code == 405


def test_show_refuses_an_unknown_view_in_one_line(demo_atlas_mapped):
    with pytest.raises(UserError, match=r"no view 'maps'; views: topomap, projection"):
        nc.show(demo_atlas_mapped, view="maps")


def test_the_committed_tour_has_no_outputs():
    import nbformat

    nb = nbformat.read(TOUR, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code), \
        "strip the outputs of docs/notebooks/tour.ipynb before committing it"


def test_the_tour_runs_and_its_results_display_themselves(demo_atlas_mapped, monkeypatch, tmp_path):
    """nbclient runs the tour on the session's demo atlas (about 10 s of kernel CPU): every cell
    succeeds, the three map results come out as PNG figures, and nc.show as an iframe."""
    import nbclient
    import nbformat

    monkeypatch.setenv("NEUROCARTA_TOUR_ATLAS", str(demo_atlas_mapped.root))
    nb = nbformat.read(TOUR, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    results = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "execute_result"]
    figures = {o.data["text/plain"].split()[0]: o.data["image/png"] for o in results if "image/png" in o.data}
    assert set(figures) == {"<TopoMapResult", "<MapperResult", "<ConceptResult"}
    assert all(base64.b64decode(png).startswith(PNG_MAGIC) for png in figures.values())
    frames = [o.data["text/html"] for o in results if o.data["text/plain"].startswith("<NotebookView")]
    assert len(frames) == 1 and '<iframe src="http://127.0.0.1:' in frames[0]
    printed = "".join(o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
                      if o.output_type == "stream" and o.name == "stdout")
    assert any(line.startswith("[") for line in printed.splitlines()), "the findings cell printed no finding"
