"""Layer comparison benchmarks (issue 19), in CPU seconds (the machine is shared: wall time lies).

1. The minibatch CKA pass alone on synthetic representations: R representations of N inputs
   (widths cycling 64..512), every pair's unbiased HSIC summed over minibatches of --batch;
   CPU seconds, and how far the minibatch estimate lies from the full-batch unbiased CKA of the
   same data (what batching costs in accuracy; a 4,000-input full Gram keeps memory small).
2. With --atlas A [--other B]: `compare_atlases` end to end (reading the layers, CKA, concept
   matching), with the CPU seconds of each part.

    .venv/bin/python benchmarks/bench_comparison.py
    .venv/bin/python benchmarks/bench_comparison.py --atlas runs/shapes [--other runs/other]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neurocarta.methods.comparison import linear_cka
from neurocarta.methods.comparison.layers import minibatch_cka


def synthetic(n: int, r: int, seed: int = 0) -> list[np.ndarray]:
    """A chain of representations: each a noisy random linear map of the one before, ReLU'd, so
    neighbours are similar and far ones less so (as layers of a network are)."""
    rng = np.random.default_rng(seed)
    widths = [64, 128, 256, 512]
    x = rng.normal(size=(n, 64)).astype(np.float32)
    out = []
    for i in range(r):
        w = widths[i % len(widths)]
        x = np.maximum(0, x @ rng.normal(size=(x.shape[1], w)).astype(np.float32) / np.sqrt(x.shape[1])
                       + 0.3 * rng.normal(size=(n, w)).astype(np.float32))
        out.append(x)
    return out


def cka_pass(reps: list[np.ndarray], batch: int, seed: int = 0) -> tuple[np.ndarray, float]:
    t = time.process_time()
    matrix, _ = minibatch_cka(reps, batch, seed)
    return matrix, time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=24, help="representations (e.g. 6 layers x 4 snapshots)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--atlas", default=None)
    ap.add_argument("--other", default=None)
    a = ap.parse_args()

    reps = synthetic(a.inputs, a.reps)
    matrix, cpu = cka_pass(reps, a.batch)
    print(f"minibatch CKA, {a.reps} representations x {a.inputs:,} inputs, batch {a.batch}: {cpu:.2f} CPU s "
          f"({a.reps * (a.reps + 1) // 2} pairs)")
    small = synthetic(4000, 6, seed=1)
    mini, _ = cka_pass(small, a.batch)
    full = np.array([[linear_cka(x, y) for y in small] for x in small])
    off = ~np.eye(6, dtype=bool)
    print(f"4,000 inputs, 6 representations: |minibatch - full-batch unbiased CKA| max "
          f"{np.abs(mini - full)[off].max():.4f}, mean {np.abs(mini - full)[off].mean():.4f} "
          f"(CKA values {full[off].min():.2f}..{full[off].max():.2f})")

    if a.atlas:
        import neurocarta as nc
        from neurocarta.methods.comparison import compare_concepts, layer_similarity

        atlas = nc.open_atlas(a.atlas)
        other = nc.open_atlas(a.other) if a.other else None
        t = time.process_time()
        sim = layer_similarity(atlas, other)
        t1 = time.process_time()
        match = compare_concepts(atlas, other)
        t2 = time.process_time()
        print(f"{atlas.url}{' vs ' + other.url if other else ''}: {len(sim.representations)} representations on "
              f"{sim.params['n_inputs']:,} inputs: CKA {t1 - t:.2f} CPU s; concept matching {t2 - t1:.2f} CPU s "
              f"(concept atlases computed when not stored) -> {match!r}")


if __name__ == "__main__":
    main()
