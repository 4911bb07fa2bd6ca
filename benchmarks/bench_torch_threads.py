"""CPU time of demo-cnn training steps in several processes side by side, by torch thread count.

Why `make test` gives each xdist worker its share of the cores (tests/conftest.py): torch
starts one intra-op thread per core in every process, and OpenMP threads that outnumber the
cores spin while they wait for each other. Two processes, each training on one thread, do the
same steps for a fraction of the CPU that two processes with two threads each burn.

    .venv/bin/python benchmarks/bench_torch_threads.py --processes 2 --threads 2 1
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

STEPS = 40


def train_steps(threads: int, steps: int) -> None:
    """``steps`` demo-cnn training steps on a batch of 64 random images; prints CPU and wall seconds."""
    import torch

    from neurocarta.models.demo_cnn import DemoCNN

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = DemoCNN(8)
    opt = torch.optim.Adam(model.parameters())
    x, y = torch.randn(64, 3, 64, 64), torch.randint(0, 8, (64,))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{usage.ru_utime + usage.ru_stime - cpu0:.1f} {time.perf_counter() - wall0:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="processes training side by side")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch threads per process")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        train_steps(args.child, args.steps)
        return
    print("| torch threads per process | processes | CPU s per process | wall s |")
    print("|---|---|---|---|")
    for threads in args.threads:
        procs = [subprocess.Popen([sys.executable, __file__, "--child", str(threads), "--steps", str(args.steps)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(args.processes)]
        results = [tuple(map(float, p.communicate()[0].split())) for p in procs]
        cpu = " / ".join(f"{c:.1f}" for c, _ in results)
        wall = max(w for _, w in results)
        print(f"| {threads} | {args.processes} | {cpu} | {wall:.1f} |")


if __name__ == "__main__":
    main()
