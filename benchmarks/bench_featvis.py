"""Feature visualization: speed and the activation check of issue 18.

For each model, the synthesized image of every chosen channel is measured against the
channel's best dataset exemplar (the top inputs the atlas ranks, run through the model with
the same objective): the share of channels whose image reaches at least the exemplar's
activation, and the CPU seconds it took (process time, which a busy machine inflates less
than wall time; torch runs one thread, as BLAS spinning on a shared machine would count
spin time as work).

    .venv/bin/python benchmarks/bench_featvis.py --demo-atlas demo-atlas        # all 240 conv channels
    .venv/bin/python benchmarks/bench_featvis.py --efficientnet                  # a sample of channels

The demo atlas comes from `neurocarta demo --no-serve`; the EfficientNet-Lite0 atlas is
extracted here from shapes (500 images, resized to 224 px by the model's preprocessing), and
two channels are drawn (seeded) from each of five layers, early to the last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import neurocarta as nc
from neurocarta.featvis import Settings, visualize

EFFICIENTNET_SAMPLE = {"_blocks.2": 2, "_blocks.5": 2, "_blocks.9": 2, "_blocks.13": 2, "_conv_head": 2}
EFFICIENTNET_DATA = "shapes:n=500"


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def share_beating(runs) -> tuple[int, int]:
    recs = [r for run in runs for r in run.records() if r["beats_exemplar"] is not None]
    return sum(r["beats_exemplar"] for r in recs), len(recs)


def bench_demo(path: str, steps: int) -> dict:
    atlas = nc.open_atlas(path)
    convs = [l.name for l in atlas.layers if l.kind == "conv"]
    runs, cpu, wall = timed(lambda: visualize(atlas, convs, neurons=True, settings=Settings(steps=steps),
                                              device="cpu", progress=False))
    won, n = share_beating(runs)
    per_layer = {run.layer: share_beating([run]) for run in runs}
    return {"model": "demo-cnn", "channels": n, "steps": steps, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
            "beats_exemplar": won, "share": round(won / n, 3),
            "per_layer": {k: f"{a}/{b}" for k, (a, b) in per_layer.items()}}


def bench_efficientnet(steps: int, work: Path) -> dict:
    atlas_dir = work / "effnet-atlas"
    if not (atlas_dir / "manifest.json").exists():
        nc.extract("efficientnet-lite0", EFFICIENTNET_DATA, atlas_dir, layers=list(EFFICIENTNET_SAMPLE),
                   progress=False)
    atlas = nc.open_atlas(atlas_dir)
    rng = np.random.default_rng(0)
    runs, cpu, wall = [], 0.0, 0.0
    for layer, k in EFFICIENTNET_SAMPLE.items():
        chosen = sorted(rng.choice(atlas.manifest.layer(layer).n_neurons, size=k, replace=False).tolist())
        made, c, w = timed(lambda: visualize(atlas, [layer], neurons=chosen, settings=Settings(steps=steps),
                                             device="cpu", progress=False))
        runs += made
        cpu, wall = cpu + c, wall + w
    won, n = share_beating(runs)
    # one neuron of the deepest layer: the speed goal (a full forward and backward pass per step)
    _, one_cpu, one_wall = timed(lambda: visualize(atlas, ["_conv_head"], neurons=[0], settings=Settings(steps=steps),
                                                   device="cpu", progress=False))
    return {"model": "efficientnet-lite0", "channels": n, "steps": steps, "cpu_s": round(cpu, 1),
            "wall_s": round(wall, 1), "beats_exemplar": won, "share": round(won / n, 3),
            "one_neuron_conv_head_cpu_s": round(one_cpu, 1), "one_neuron_conv_head_wall_s": round(one_wall, 1),
            "per_layer": {run.layer: "{}/{}".format(*share_beating([run])) for run in runs}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo-atlas", default=None, help="a demo atlas (neurocarta demo --no-serve)")
    p.add_argument("--efficientnet", action="store_true")
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default=None, help="where the EfficientNet atlas is kept between runs")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    if a.demo_atlas:
        results.append(bench_demo(a.demo_atlas, a.steps))
        print(json.dumps(results[-1]), flush=True)
    if a.efficientnet:
        work = Path(a.work or tempfile.mkdtemp(prefix="bench-featvis-"))
        results.append(bench_efficientnet(a.steps, work))
        print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
