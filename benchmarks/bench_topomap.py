"""Topographic-map benchmarks (issue 3). So far: grid assignment.

    .venv/bin/python benchmarks/bench_topomap.py --grid

Grid assignment at 1k, 4k and 16k neurons on a UMAP-like clustered layout: neurocarta's
windowed approximation (used above 2,048 neurons) against SciPy's exact
``linear_sum_assignment`` on the full cost matrix, where that finishes. The goal is 4k in
5 s or less. The cost gap is the approximation's total squared displacement over the
optimum's.
"""

from __future__ import annotations

import argparse
import sys
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", action="store_true", help="grid assignment at 1k, 4k, 16k neurons")
    p.add_argument("--exact-up-to", type=int, default=4096, help="largest n solved exactly for the gap")
    a = p.parse_args()
    if a.grid or len(sys.argv) == 1:
        grid_bench([1024, 4096, 16384], a.exact_up_to)


if __name__ == "__main__":
    main()
