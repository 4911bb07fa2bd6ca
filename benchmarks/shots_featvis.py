"""The README's screenshots of issue 18 in the viewer, in headless Chromium (Debian's, driven
by Playwright), from an atlas that has feature visualizations and attributions:

- docs/img/featvis-exemplars.png: a neuron's exemplar patches in the inspector with its feature
  visualizations beside them and their caption (the activation reached against the best
  exemplar's); the neuron is given, or else the one whose images beat its best exemplar by
  the largest ratio;
- docs/img/attribution-overlay.png: the inspector on an input with its attribution overlaid
  on the thumbnail (the input is given, or else the first with an image attribution).

    .venv/bin/neurocarta visualize ATLAS --layers features.block4 --neurons 0-7 --images 3
    .venv/bin/neurocarta attribute ATLAS --inputs 3
    .venv/bin/python benchmarks/shots_featvis.py ATLAS [--layer L --neuron N] [--input ID]

(The browser tests, tests/test_viewer_featvis.py, check the same display on a small atlas whose
visualizations get only a few optimisation steps: too rough for the README.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_viewer import ARGS, CHROMIUM, NO_TOUR, ROOT, VIEWPORT, serve  # noqa: E402

IMG = ROOT / "docs" / "img"


def best_neuron(data) -> tuple[str, int]:
    """The visualised neuron whose images beat its best exemplar by the largest ratio."""
    best, pick = -1.0, None
    for snap, layers in data.manifest().get("featvis", {}).items():
        for layer in layers:
            for t in data.featvis(snap, layer)["targets"]:
                e = t["exemplar_activation"]
                if t["kind"] == "neuron" and e and e > 0 and t["activation"] / e > best:
                    best, pick = t["activation"] / e, (layer, int(t["target"]))
    if pick is None:
        sys.exit("no visualised neuron with a positive exemplar activation: run neurocarta visualize first")
    return pick


def first_attributed(data) -> int:
    for snap, ids in data.manifest().get("attributions", {}).items():
        for i in ids:
            if any(item["kind"] == "image" for item in data.attributions(snap, int(i))["items"]):
                return int(i)
    sys.exit("no input with an image attribution: run neurocarta attribute first")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("atlas")
    ap.add_argument("--layer")
    ap.add_argument("--neuron", type=int)
    ap.add_argument("--input", type=int)
    a = ap.parse_args()

    import playwright.sync_api as playwright_api

    from neurocarta.viewer.app import create_app

    app = create_app(a.atlas)
    data = app.state.data
    layer, neuron = (a.layer, a.neuron) if a.layer and a.neuron is not None else best_neuron(data)
    input_id = a.input if a.input is not None else first_attributed(data)
    url, srv, thread = serve(app)
    IMG.mkdir(parents=True, exist_ok=True)
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=2)
            ctx.add_init_script(NO_TOUR)
            page = ctx.new_page()
            loaded = "() => [...document.querySelectorAll('[data-testid=inspector-body] img')].every((e) => e.complete && e.naturalWidth > 0)"
            page.goto(f"{url}#notour&sel=neuron%3A{layer}%3A{neuron}")
            page.wait_for_selector("[data-testid=inspector-body] [data-testid=featvis-image]", timeout=60_000)
            page.wait_for_function(loaded, timeout=60_000)
            page.locator("[data-testid=inspector-body] .patches-row").first.screenshot(path=str(IMG / "featvis-exemplars.png"))
            page.goto(f"{url}#notour&sel=input%3A{input_id}")
            page.wait_for_selector("[data-testid=attribution-overlay]", timeout=60_000)
            page.wait_for_function(loaded, timeout=60_000)
            page.locator("[data-testid=inspector-body] .row").first.screenshot(path=str(IMG / "attribution-overlay.png"))
            browser.close()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
    print(f"wrote {IMG / 'featvis-exemplars.png'} ({layer} neuron {neuron}) and "
          f"{IMG / 'attribution-overlay.png'} (input {input_id})")


if __name__ == "__main__":
    main()
