"""Time ``neurocarta demo`` with a fresh cache: each stage's wall and CPU seconds, and how long
until the viewer answers (HTTP 200 on the manifest) - issue 17's "demo in <= 60 s, viewer up
within 30 s".

    .venv/bin/python benchmarks/bench_demo.py                 # the shapes demo, fresh cache
    .venv/bin/python benchmarks/bench_demo.py --data shapes:n=3000 --epochs 3
    .venv/bin/python benchmarks/bench_demo.py --json
    .venv/bin/python benchmarks/bench_demo.py --epoch-cpu     # demo-cnn's training recipes, CPU per epoch

The demo runs as the user runs it (a subprocess of ``python -m neurocarta demo``, serving),
with ``NEUROCARTA_CACHE`` pointing at an empty folder so demo-cnn is trained. Every line the
demo prints is stamped with the wall time since its start and the CPU seconds (user + sys,
all its threads) it had used by then, read from ``/proc/<pid>/stat`` (Linux); a stage's
figures are the differences between its line and the one before. A thread polls the
viewer's manifest from the moment the demo prints its URL. The run ends when the demo says
every map is built; the server is then stopped.

On a busy machine wall times stretch with the load while CPU seconds much less so: judge a
change by the CPU column there, and take wall figures from a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

#: the demo's lines that end a stage (stderr), and the stage each ends
STAGE_LINES = [
    ("train", re.compile(r"demo-cnn (trained|loaded)")),
    ("capture", re.compile(r"atlas written in")),
    ("topomap", re.compile(r"topographic maps (built|drawn) in")),
    ("mapper", re.compile(r"Mapper graphs built in")),
    ("concepts", re.compile(r"concept atlas built in")),
    ("findings", re.compile(r"\d+ findings in")),
]
FINDINGS = re.compile(r"\d+ findings in")
ALL_BUILT = re.compile(r"every map is built")
URL = re.compile(r"viewer at (http://\S+)")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def wait_for_viewer(url: str, t0: float, out: dict, deadline: float) -> None:
    """Poll ``url``'s manifest until it answers 200; record when (seconds since ``t0``)."""
    target = url.split("?")[0].rstrip("/") + "/api/manifest"
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(target, timeout=5) as r:
                if r.status == 200:
                    out["viewer_up_s"] = round(time.time() - t0, 1)
                    return
        except OSError:
            pass
        time.sleep(0.1)


def run(data: str, epochs: int, timeout: float, until_all: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        env = {**os.environ, "NEUROCARTA_CACHE": str(Path(tmp) / "cache"), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "neurocarta", "demo", "--data", data, "--epochs", str(epochs),
               "--out", str(Path(tmp) / "atlas"), "--quiet"]
        t0 = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        result: dict = {"command": " ".join(["neurocarta", *cmd[3:]]), "stages": []}
        lines: list[tuple[float, float, str]] = []
        watchers: list[threading.Thread] = []
        done = threading.Event()

        def read(stream) -> None:
            for line in stream:
                try:
                    cpu = cpu_seconds(proc.pid)
                except (OSError, IndexError):
                    cpu = float("nan")
                lines.append((time.time() - t0, cpu, line.rstrip()))
                m = URL.search(line)
                if m and not watchers:
                    w = threading.Thread(target=wait_for_viewer, args=(m.group(1), t0, result, t0 + timeout))
                    w.start()
                    watchers.append(w)
                if FINDINGS.search(line):
                    result["findings_s"] = round(time.time() - t0, 1)
                    if not until_all:
                        done.set()
                if ALL_BUILT.search(line):
                    result["all_built_s"] = round(time.time() - t0, 1)
                    done.set()

        readers = [threading.Thread(target=read, args=(s,), daemon=True) for s in (proc.stdout, proc.stderr)]
        for r in readers:
            r.start()
        finished = done.wait(timeout)
        for w in watchers:
            w.join(max(1.0, timeout - (time.time() - t0)))
        proc.terminate()  # the demo serves until stopped
        proc.wait(30)
        if not finished:
            tail = "\n".join(l for _, _, l in lines[-20:])
            raise SystemExit(f"the demo did not finish within {timeout:.0f} s; its last lines:\n{tail}")
        previous_wall, previous_cpu = 0.0, 0.0
        for wall, cpu, line in sorted(lines):
            stage = next((name for name, pattern in STAGE_LINES if pattern.search(line)), None)
            if stage is None:
                continue
            result["stages"].append({"stage": stage, "wall_s": round(wall - previous_wall, 1),
                                     "cpu_s": round(cpu - previous_cpu, 1), "line": line})
            previous_wall, previous_cpu = wall, cpu
            if stage == "capture":
                result["atlas_written_s"] = round(wall, 1)
        training = next(Path(tmp, "cache").glob("demo-cnn-*/training.json"), None)
        if training:
            record = json.loads(training.read_text())
            result["epoch_seconds"] = [h.get("epoch_seconds") for h in record["history"]]
            result["test_accuracy"] = record["test_accuracy"]
            result["training_data_seconds"] = record.get("data_seconds")
        result["total_cpu_s"] = round(previous_cpu, 1)
        return result


def epoch_cpu(threads: int = 1, images: int = 1024, repeats: int = 3) -> dict[str, float]:
    """CPU seconds per 8,000-image demo-cnn training epoch (batch 64, Adam), for the recipe
    before issue 17 (ReLU then pool, contiguous tensors) and its parts: pool before ReLU
    (the same function), channels_last memory order, both (the recipe now). Random inputs of
    the demo's size; the variants interleaved ``repeats`` times, the least CPU of each kept
    (other processes only ever add)."""
    import resource
    from collections import OrderedDict

    import torch
    import torch.nn.functional as F
    from torch import nn

    from neurocarta.models.demo_cnn import DemoCNN

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def model(relu_first: bool, channels_last: bool) -> nn.Module:
        torch.manual_seed(0)
        m = DemoCNN(8)
        if relu_first:  # the blocks as they were: conv, bn, relu, pool
            for name, block in m.features.named_children():
                parts = dict(block.named_children())
                setattr(m.features, name, nn.Sequential(OrderedDict((k, parts[k]) for k in ("conv", "bn", "relu", "pool"))))
        return m.to(memory_format=torch.channels_last) if channels_last else m

    torch.set_num_threads(threads)
    x, y = torch.randn(images, 3, 64, 64), torch.randint(0, 8, (images,))
    variants = {"relu, pool; contiguous (before)": (True, False), "pool, relu; contiguous": (False, False),
                "relu, pool; channels_last": (True, True), "pool, relu; channels_last (now)": (False, True)}
    best = {name: float("inf") for name in variants}
    for _ in range(repeats):
        for name, (relu_first, channels_last) in variants.items():
            m = model(relu_first, channels_last).train()
            xx = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            opt = torch.optim.Adam(m.parameters(), lr=2e-3)
            c0 = cpu()
            for s in range(0, images, 64):
                loss = F.cross_entropy(m(xx[s:s + 64]), y[s:s + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
            best[name] = min(best[name], (cpu() - c0) / images * 8000)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="shapes")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    p.add_argument("--all", action="store_true", help="wait for the stages the demo runs after its findings "
                   "(after_viewer: input projection, feature visualization) too; by default the run ends "
                   "at the findings, once the three maps are built")
    p.add_argument("--json", action="store_true")
    p.add_argument("--epoch-cpu", action="store_true", help="instead: CPU seconds per training epoch of "
                   "demo-cnn's recipes, one thread")
    a = p.parse_args()
    if a.epoch_cpu:
        for name, seconds in epoch_cpu().items():
            print(f"{name:<34} {seconds:5.1f} CPU-s per 8,000-image epoch")
        return
    r = run(a.data, a.epochs, a.timeout, a.all)
    if a.json:
        print(json.dumps(r, indent=1))
        return
    print(f"{r['command']}  (fresh cache; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end)")
    print(f"{'stage':<10} {'wall s':>7} {'CPU s':>7}")
    for s in r["stages"]:
        print(f"{s['stage']:<10} {s['wall_s']:>7.1f} {s['cpu_s']:>7.1f}")
    end = "every map is built" if a.all else "the findings are printed: train, capture, three maps"
    print(f"{'total':<10} {r.get('all_built_s', r['findings_s']):>7.1f} {r['total_cpu_s']:>7.1f}   (until {end})")
    print(f"atlas written at {r.get('atlas_written_s', float('nan')):.1f} s; "
          f"viewer answering (manifest 200) at {r.get('viewer_up_s', float('nan')):.1f} s")
    if r.get("epoch_seconds"):
        print(f"training: {r['training_data_seconds']} s rendering the images, epochs of "
              f"{', '.join(map(str, r['epoch_seconds']))} s; test accuracy {r['test_accuracy']:.3f}")


if __name__ == "__main__":
    main()
