"""Viewer benchmarks in headless Chromium (Debian's, driven by Playwright).

1. First paint of an atlas (default: the demo atlas): the time from navigation start until the
   topographic map's first drawing with values (a ``performance.mark`` the front end sets),
   plus until every view has drawn. Goal: 2 s or less. Best and median of --runs cold loads
   (a new browser context each, so no HTTP cache).
2. The neuron projection with --points synthetic neurons (default 100,000): the real built
   front end over a synthetic API (a manifest and a concept atlas of N neurons in 50 clusters,
   the other endpoints empty); a mouse-drag pan of the WebGL scatter, with the frame times of
   requestAnimationFrame during the drag.
3. The input projection (view 6) with --points synthetic inputs: the same pan, over a stored
   projection of N points in 50 blobs.

    .venv/bin/python benchmarks/bench_viewer.py                      # demo-atlas, 100k points
    .venv/bin/python benchmarks/bench_viewer.py --atlas runs/shapes --points 1000000

Headless Chromium renders WebGL on the CPU here (SwiftShader, no GPU), so the pan frame times
are an upper bound for a desktop browser with a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1600, "height": 1000}
NO_TOUR = "try { localStorage.setItem('nc-tour-done', '1') } catch (e) {}"


def serve(app) -> tuple[str, object, threading.Thread]:
    import uvicorn

    from neurocarta.viewer.app import bind_socket, url_of

    sock = bind_socket("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    time.sleep(0.5)
    return url_of(sock), srv, thread


def first_paint(browser, url: str, runs: int) -> dict:
    out = {"map_ms": [], "all_views_ms": []}
    for _ in range(runs):
        ctx = browser.new_context(viewport=VIEWPORT)
        ctx.add_init_script(NO_TOUR)
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_function("() => performance.getEntriesByName('nc-paint-topomap-canvas').length > 0", timeout=60_000)
        page.wait_for_selector("[data-testid=graph-node]", timeout=60_000)
        page.wait_for_function("() => { const c = document.querySelector('[data-testid=mapper-canvas]');"
                               " return c && c.width > 10; }", timeout=60_000)
        t_map = page.evaluate("performance.getEntriesByName('nc-paint-topomap-canvas')[0].startTime")
        t_all = page.evaluate("performance.now()")
        out["map_ms"].append(round(t_map, 1))
        out["all_views_ms"].append(round(t_all, 1))
        ctx.close()
    return out


def synthetic_app(n: int, clusters: int = 50, seed: int = 0):
    """The built front end over a synthetic API: N concept neurons in `clusters` blobs."""
    from fastapi import FastAPI
    from fastapi.responses import FileResponse, Response

    from neurocarta.viewer.app import STATIC

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, 2)) * 4
    label = rng.integers(0, clusters, n)
    xy = centres[label] + rng.normal(size=(n, 2))
    layers = [f"layer{i}" for i in range(4)]
    per = -(-n // len(layers))
    neurons = [{"id": i, "layer": layers[i // per], "unit": i % per, "cluster": int(label[i]), "silent": False,
                "x": round(float(xy[i, 0]), 4), "y": round(float(xy[i, 1]), 4)} for i in range(n)]
    concepts = json.dumps({"snapshot": "s", "layers": layers, "neurons": neurons, "coherence": [],
                           "clusters": [{"cluster": k, "layer": layers[0], "size": int((label == k).sum()),
                                         "members": [], "describe": f"synthetic {k}"} for k in range(clusters)],
                           "graphs": {}}).encode()
    manifest = {"name": f"synthetic-{n}", "model": "none", "data": "synthetic", "n_inputs": 0, "class_names": ["a"],
                "snapshots": ["s"], "modality": "image",
                "layers": [{"name": l, "kind": "dense", "n_neurons": per, "rows": "input", "spatial": None,
                            "receptive_field": None} for l in layers],
                "maps": {"topomap": [], "mapper": [], "concepts": ["s"], "inputs": [layers[0]]},
                "has_thumbnails": False, "patches": {}}
    # the same blobs as an input projection of N inputs (view 6), in the unit square
    unit = (xy - xy.min(axis=0)) / (xy.max(axis=0) - xy.min(axis=0)).max()
    projection = json.dumps({"layer": layers[0], "snapshot": "s", "n_rows": n, "sampled": False, "params": {},
                             "x": np.round(unit[:, 0], 5).tolist(), "y": np.round(unit[:, 1], 5).tolist(),
                             "input_id": list(range(n)), "row": list(range(n)), "tokens": None,
                             "token_columns": {}}).encode()
    app = FastAPI()
    app.get(f"/api/input-projection/{layers[0]}")(lambda: Response(projection, media_type="application/json"))
    app.get("/api/manifest")(lambda: manifest)
    app.get("/api/concepts/s")(lambda: Response(concepts, media_type="application/json"))
    app.get("/api/findings")(lambda: [])
    app.get("/api/inputs")(lambda: [])
    app.get("/")(lambda: FileResponse(STATIC / "index.html"))
    app.get("/assets/{name}")(lambda name: FileResponse(STATIC / "assets" / Path(name).name))
    return app


PAN = """async ([steps, testid]) => {
  const canvas = document.querySelector(`[data-testid=${testid}]`);
  const r = canvas.getBoundingClientRect();
  const times = [];
  let last = performance.now(), done = false;
  const tick = (t) => { times.push(t - last); last = t; if (!done) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const ev = (type, x, y, buttons) => canvas.dispatchEvent(new MouseEvent(type, {
    clientX: x, clientY: y, buttons, bubbles: true, view: window }));
  const x0 = r.left + r.width / 2, y0 = r.top + r.height / 2;
  ev('mousedown', x0, y0, 1);
  for (let i = 1; i <= steps; i++) {
    window.dispatchEvent(new MouseEvent('mousemove', { clientX: x0 + i * 3, clientY: y0 + i, buttons: 1, bubbles: true }));
    await new Promise((ok) => requestAnimationFrame(ok));
  }
  window.dispatchEvent(new MouseEvent('mouseup', { clientX: x0 + steps * 3, clientY: y0 + steps, bubbles: true }));
  done = true;
  return times.slice(2);
}"""


def pan_frames(browser, url: str, n: int, steps: int = 60, testid: str = "projection-canvas",
               ready: str = "() => /[0-9] neurons/.test(document.body.innerText)") -> dict:
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(NO_TOUR)
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_function(ready, timeout=120_000)
    page.wait_for_timeout(1500)  # the first draw of N points
    ready_s = time.perf_counter() - t0
    view_before = page.locator(f"[data-testid={testid}]").screenshot()
    # the same frames with nothing moving: the page's own cost on this (software) renderer
    idle = page.evaluate("""async () => { const t = []; let last = performance.now();
      for (let i = 0; i < 30; i++) { await new Promise((ok) => requestAnimationFrame(ok));
        const now = performance.now(); t.push(now - last); last = now; } return t.slice(2); }""")
    frames = page.evaluate(PAN, [steps, testid])
    view_after = page.locator(f"[data-testid={testid}]").screenshot()
    ctx.close()
    frames = [f for f in frames if f > 0]
    return {"points": n, "load_s": round(ready_s, 2), "frames": len(frames),
            "frame_ms_median": round(statistics.median(frames), 1),
            "frame_ms_p95": round(float(np.percentile(frames, 95)), 1),
            "fps_median": round(1000 / statistics.median(frames), 1),
            "idle_frame_ms_median": round(statistics.median(idle), 1),
            "panned": view_before != view_after}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atlas", default=str(ROOT / "demo-atlas"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    a = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from neurocarta.viewer.app import create_app

    results: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        url, srv, thread = serve(create_app(a.atlas))
        fp = first_paint(browser, url + "#notour", a.runs)
        srv.should_exit = True
        thread.join(5)
        results["first_paint"] = {"atlas": Path(a.atlas).name, "runs": a.runs,
                                  "map_ms_best": min(fp["map_ms"]), "map_ms_median": statistics.median(fp["map_ms"]),
                                  "all_views_ms_median": statistics.median(fp["all_views_ms"]), "raw": fp}
        print(f"first paint ({Path(a.atlas).name}): topographic map {results['first_paint']['map_ms_median']:.0f} ms "
              f"median (best {results['first_paint']['map_ms_best']:.0f}), all views "
              f"{results['first_paint']['all_views_ms_median']:.0f} ms; goal <= 2000 ms")
        inputs_ready = "() => Number(document.querySelector('[data-testid=inputs-canvas]')?.dataset.draws) > 0"
        # the neuron projection and the input projection, each panned over the same synthetic points
        for key, label, view, extra in (("projection_pan", "projection", "projection", {}),
                                        ("inputs_pan", "input projection", "inputs",
                                         {"testid": "inputs-canvas", "ready": inputs_ready})):
            url, srv, thread = serve(synthetic_app(a.points))
            pan = pan_frames(browser, url + f"#notour&view={view}", a.points, **extra)
            srv.should_exit = True
            thread.join(5)
            results[key] = pan
            print(f"{label}, {a.points:,} points: ready in {pan['load_s']} s; pan frame time median "
                  f"{pan['frame_ms_median']} ms (p95 {pan['frame_ms_p95']} ms, {pan['fps_median']} fps) over "
                  f"{pan['frames']} frames (idle page: {pan['idle_frame_ms_median']} ms); view moved: {pan['panned']}")
        browser.close()
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
