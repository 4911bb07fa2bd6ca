"""Scale benchmarks (issue 7): ImageNet-sized streams in bounded memory, and Dask workers.

    .venv/bin/python benchmarks/bench_scale.py --scaling [--sizes 10000,100000,1200000]
    .venv/bin/python benchmarks/bench_scale.py --workers [--n 60000]
    .venv/bin/python benchmarks/bench_scale.py --scaling --workers --json benchmarks/results-scale.json

(a) --scaling: a seeded synthetic input stream of N inputs (64 floats each, generated from the
    input id by a counter hash, so any shard can make any input and nothing is held in memory;
    every input belongs to one of 64 planted concepts, its label is the concept mod 10) through a
    deterministic stand-in model (an MLP 64 -> 512 -> 512 -> 10 with seeded weights; both hidden
    ReLU layers captured, 1,024 neurons) in ``--mode summary`` (top-100 per neuron, group sums by
    label and prediction, a 50,000-row sample), then the concept pipeline (``nc.concepts``:
    MinHash, LSH, Leiden, PPMI + SVD, UMAP, coherence). Each N runs in a fresh process. Reported
    per N: seconds for extraction and for concepts, inputs/s, peak RSS (VmHWM), and the time
    ratio against proportional, (t_N / t_first) / (N / N_first). Goals: time within 1.3x of
    proportional; peak RSS within 1.5x from 1e5 to 1.2e6.
(b) --workers: the same stream through a compute-bound stand-in (64 -> 2048 -> 2048 -> 256 -> 10,
    the 256-unit bottleneck captured, summary mode: the 2048 x 2048 product dominates) on a local Dask cluster of 1 worker and of 2 workers,
    one thread each (this machine has 2 cores), same atlas settings, passed as ``scheduler=``;
    the row sample keeps ImageNet's share (50,000 of 1.2M, 4 %), since the coordinator writes it.
    Reported: seconds of ``extract`` each (the cluster's start-up apart; the workers' model
    loading included) and the speed-up. Goal: >= 1.6x. Both atlases' top-k are checked equal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DIM = 64
CONCEPTS = 64


def peak_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 ** 2
    return float("nan")


def _hash_uniform(ids: np.ndarray, width: int, seed: int) -> np.ndarray:
    """Uniform [0, 1) floats from (id, column) by a splitmix64 counter hash: any input, any time."""
    with np.errstate(over="ignore"):
        z = (ids.astype(np.uint64)[:, None] * np.uint64(width) + np.arange(width, dtype=np.uint64)[None, :])
        z = z + np.uint64(0x9E3779B97F4A7C15) * np.uint64(seed + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def make_source(n: int, seed: int = 0):
    from neurocarta.data.base import DataSource

    class SyntheticStream(DataSource):
        """N inputs made from their ids: a planted concept's prototype plus hashed noise."""

        modality = "array"

        def __init__(self) -> None:
            self.n, self.seed = n, seed
            self.spec = f"synthetic:n={n},seed={seed}"
            self.class_names = [str(i) for i in range(10)]
            self.prototypes = np.random.default_rng(seed).normal(size=(CONCEPTS, DIM)).astype(np.float32)

        def concept(self, ids: np.ndarray) -> np.ndarray:
            return (_hash_uniform(ids, 1, self.seed + 7)[:, 0] * CONCEPTS).astype(np.int64)

        def table(self) -> pd.DataFrame:
            ids = np.arange(self.n, dtype=np.int64)
            c = self.concept(ids)
            return pd.DataFrame({"input_id": ids, "label": c % 10, "concept": c})

        def get(self, indices):
            ids = np.asarray(indices, dtype=np.int64)
            x = self.prototypes[self.concept(ids)] + 0.7 * (_hash_uniform(ids, DIM, self.seed) - 0.5)
            return list(x)

        def __len__(self) -> int:
            return self.n

    return SyntheticStream()


def make_model(width: int, seed: int = 0, bottleneck: int | None = None):
    """MLP stand-in: DIM -> width -> width [-> bottleneck] -> 10, seeded, ReLU after each hidden layer."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    from collections import OrderedDict

    layers = [("fc1", nn.Linear(DIM, width)), ("act1", nn.ReLU()), ("fc2", nn.Linear(width, width)),
              ("act2", nn.ReLU())]
    last = width
    if bottleneck:
        layers += [("fc3", nn.Linear(width, bottleneck)), ("act3", nn.ReLU())]
        last = bottleneck
    return nn.Sequential(OrderedDict(layers + [("head", nn.Linear(last, 10))])).eval()


SUMMARY = dict(mode="summary", topk=100, group_by=["label", "pred"], sample_size=50_000, batch_size=1024,
               chunk_size=8192, progress=False)


def child_scaling(n: int, out: str) -> dict:
    import neurocarta as nc

    t0 = time.perf_counter()
    atlas = nc.extract(make_model(512), make_source(n), out, layers=["act1", "act2"], overwrite=True, **SUMMARY)
    t_extract = time.perf_counter() - t0
    rss_extract = peak_gb()
    t1 = time.perf_counter()
    result = nc.concepts(atlas, class_graphs=False, attributes=["concept"], draws=5)
    t_concepts = time.perf_counter() - t1
    coherence = result.coherence
    return {"n": n, "extract_s": t_extract, "concepts_s": t_concepts, "total_s": t_extract + t_concepts,
            "inputs_per_s": n / t_extract, "peak_rss_gb_extract": rss_extract, "peak_rss_gb": peak_gb(),
            "n_groups": int(len(result.clusters)),
            "coherence": coherence.to_dict(orient="records") if hasattr(coherence, "to_dict") else None}


def child_workers(n: int, workers: int, out: str) -> dict:
    import logging

    from distributed import Client, LocalCluster

    import neurocarta as nc

    # the sample keeps ImageNet's share: 50,000 of 1.2M inputs (4 %); the coordinator writes it
    kw = dict(SUMMARY, chunk_size=2048, batch_size=512, sample_size=max(1, round(n * 50_000 / 1_200_000)))
    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        atlas = nc.extract(make_model(2048, bottleneck=256), make_source(n), out, layers=["act3"], overwrite=True,
                           scheduler=client, **kw)
        seconds = time.perf_counter() - t1
    return {"n": n, "workers": workers, "seconds": seconds, "cluster_startup_s": startup,
            "topk_sum": float(atlas.topk("act3").values.astype(np.float64).sum())}


def run_child(args: list[str], timeout: int = 3000) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if r.returncode:
        sys.exit(f"child {args} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--sizes", default="10000,100000,1200000")
    ap.add_argument("--workers", action="store_true")
    ap.add_argument("--n", type=int, default=60_000, help="--workers: inputs")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind == "scaling":
            print(json.dumps(child_scaling(int(rest[0]), rest[1])))
        else:
            print(json.dumps(child_workers(int(rest[0]), int(rest[1]), rest[2])))
        return
    report: dict = {"cores": os.cpu_count()}
    tmp = Path(tempfile.mkdtemp(prefix="nc-scale-"))
    try:
        if a.scaling:
            rows = []
            for n in [int(s) for s in a.sizes.split(",")]:
                r = run_child(["--child", "scaling", str(n), str(tmp / f"scale-{n}")])
                shutil.rmtree(tmp / f"scale-{n}", ignore_errors=True)
                rows.append(r)
                base = rows[0]
                r["vs_proportional"] = (r["total_s"] / base["total_s"]) / (n / base["n"])
                r["extract_vs_proportional"] = (r["extract_s"] / base["extract_s"]) / (n / base["n"])
                print(f"N={n:>9,}: extract {r['extract_s']:7.1f} s ({r['inputs_per_s']:,.0f} inputs/s), concepts "
                      f"{r['concepts_s']:5.1f} s, total {r['total_s']:7.1f} s = {r['vs_proportional']:.2f}x "
                      f"proportional (extraction alone {r['extract_vs_proportional']:.2f}x), peak RSS "
                      f"{r['peak_rss_gb']:.2f} GB", flush=True)
            report["scaling"] = rows
            by_n = {r["n"]: r for r in rows}
            if 100_000 in by_n and 1_200_000 in by_n:
                report["rss_ratio_1e5_to_1.2e6"] = by_n[1_200_000]["peak_rss_gb"] / by_n[100_000]["peak_rss_gb"]
                print(f"peak RSS 1.2e6 / 1e5: {report['rss_ratio_1e5_to_1.2e6']:.2f}x (goal <= 1.5x)")
        if a.workers:
            runs = {}
            for w in (1, 2):
                runs[w] = run_child(["--child", "workers", str(a.n), str(w), str(tmp / f"workers-{w}")])
                print(f"{w} worker(s): {runs[w]['seconds']:.1f} s for {a.n:,} inputs (cluster start-up "
                      f"{runs[w]['cluster_startup_s']:.1f} s apart)", flush=True)
            speedup = runs[1]["seconds"] / runs[2]["seconds"]
            same = runs[1]["topk_sum"] == runs[2]["topk_sum"]
            print(f"2 workers vs 1: {speedup:.2f}x (goal >= 1.6x); same top-k: {same}")
            report["workers"] = {"n": a.n, "one_s": runs[1]["seconds"], "two_s": runs[2]["seconds"],
                                 "speedup": speedup, "same_topk": same}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
