"""Topographic-map benchmarks (issue 3). So far: grid assignment, the SOM and the refinement.

    .venv/bin/python benchmarks/bench_topomap.py --grid
    .venv/bin/python benchmarks/bench_topomap.py --som    # MiniSom runs in its own venv
    .venv/bin/python benchmarks/bench_topomap.py --refine

Grid assignment at 1k, 4k and 16k neurons on a UMAP-like clustered layout: neurocarta's
windowed approximation (used above 2,048 neurons) against SciPy's exact
``linear_sum_assignment`` on the full cost matrix, where that finishes. The goal is 4k in
5 s or less. The cost gap is the approximation's total squared displacement over the
optimum's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from neurocarta.methods.topomap.grid import assignment_cost, cell_centres, grid_assign  # noqa: E402


def clustered_layout(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(size=(20, 2))
    return centres[rng.integers(0, 20, n)] + 0.05 * rng.normal(size=(n, 2))


def grid_bench(sizes: list[int], exact_up_to: int) -> None:
    print(f"{'neurons':>8} {'approx s':>9} {'exact s':>8} {'cost gap':>9}")
    for n in sizes:
        y = clustered_layout(n)
        t = time.perf_counter()
        approx, shape = grid_assign(y, exact_limit=0)
        t_approx = time.perf_counter() - t
        centres = cell_centres(*shape, y.min(0), y.max(0))
        if n <= exact_up_to:
            t = time.perf_counter()
            exact, _ = grid_assign(y, exact_limit=n)
            t_exact = time.perf_counter() - t
            gap = assignment_cost(y, centres, approx) / assignment_cost(y, centres, exact)
            print(f"{n:>8} {t_approx:>9.2f} {t_exact:>8.2f} {gap:>9.3f}", flush=True)
        else:
            print(f"{n:>8} {t_approx:>9.2f} {'-':>8} {'-':>9}", flush=True)


MINISOM = r"""
import json, math, sys, time, numpy as np
from minisom import MiniSom
x = np.load(sys.argv[1]); n = len(x)
side = int(math.floor(math.sqrt(n))) + 1
som = MiniSom(side, side, x.shape[1], sigma=1.0, learning_rate=0.5, random_seed=0)
t = time.perf_counter()
som.train_random(x, 10 * n)  # the original's settings: sigma 1, lr 0.5, 10 n iterations
print(json.dumps({"seconds": time.perf_counter() - t, "qe": float(som.quantization_error(x))}))
"""


def som_bench(sizes: list[int]) -> None:
    from neurocarta.methods.topomap.som import BatchSOM

    here = Path(__file__).resolve().parent
    venv = here / ".peers" / "minisom"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "minisom", "numpy"], check=True)
    print(f"{'profiles':>8} {'MiniSom s':>10} {'MiniSom QE':>11} {'batch s':>8} {'batch QE':>9} {'speed-up':>9}")
    for n in sizes:
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(12, 10))
        x = centres[rng.integers(0, 12, n)] + 0.3 * rng.normal(size=(n, 10))
        x /= np.linalg.norm(x, axis=1, keepdims=True)  # cosine profiles, as the layout uses them
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "x.npy", x)
            (Path(tmp) / "peer.py").write_text(MINISOM)
            r = subprocess.run([str(py), str(Path(tmp) / "peer.py"), str(Path(tmp) / "x.npy")],
                               capture_output=True, text=True, check=True)
        peer = json.loads(r.stdout)
        t = time.perf_counter()
        som = BatchSOM(seed=0).fit(x)
        ours = time.perf_counter() - t
        print(f"{n:>8} {peer['seconds']:>10.2f} {peer['qe']:>11.4f} {ours:>8.2f} {som.quantization_error_:>9.4f} "
              f"{peer['seconds'] / ours:>8.1f}x", flush=True)


def refine_bench(sizes: list[int]) -> None:
    """Time of the O(n k) refinement (200 steps, k = 15 + 5 random) from a random start."""
    from neurocarta.methods.topomap.refine import refine

    print(f"{'neurons':>8} {'refine s':>9}")
    for n in sizes:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(n, 20))
        t = time.perf_counter()
        refine(rng.uniform(size=(n, 2)), x, steps=200)
        print(f"{n:>8} {time.perf_counter() - t:>9.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", action="store_true", help="grid assignment at 1k, 4k, 16k neurons")
    p.add_argument("--som", action="store_true", help="batch SOM vs MiniSom (own venv) at 256, 1k, 4k profiles")
    p.add_argument("--refine", action="store_true", help="refinement time at 1k, 4k, 16k neurons")
    p.add_argument("--exact-up-to", type=int, default=4096, help="largest n solved exactly for the gap")
    a = p.parse_args()
    everything = not (a.grid or a.som or a.refine)
    if a.grid or everything:
        grid_bench([1024, 4096, 16384], a.exact_up_to)
    if a.som or everything:
        som_bench([256, 1024, 4096])
    if a.refine or everything:
        refine_bench([1024, 4096, 16384])


if __name__ == "__main__":
    main()
