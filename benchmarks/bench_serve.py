"""Load test of ``neurocarta serve``: many concurrent clients against the local server.

Starts ``neurocarta serve ATLAS`` on a free port of 127.0.0.1 as a subprocess, primes it with
one request per endpoint kind (the cold latencies are printed separately), then runs
``--clients`` concurrent clients for ``--duration`` seconds. Each client keeps one
connection open, as a browser tab does, and loops over a mix like a viewer session's:
manifest, Mapper graphs, topographic maps, thumbnails of random inputs, exemplar patches,
concept atlas and input-table pages. No conditional requests: every answer is a full body.

Reports requests/s, errors (any status but 200, and transport failures) and p50/p95/p99
latency, overall and per kind. Goal: 0 errors with 200 clients for 30 s.

    .venv/bin/python benchmarks/bench_serve.py demo-atlas [--clients 200] [--duration 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np

# kind -> weight of the request mix
MIX = {"manifest": 10, "mapper": 15, "topomap": 15, "thumbnail": 40, "patches": 10, "concepts": 5, "inputs": 5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(atlas: str, port: int) -> subprocess.Popen:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "neurocarta", "serve", atlas, "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read()}")
        try:
            r = httpx.get(base + "/api/manifest", timeout=5)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        if time.time() > deadline:
            raise SystemExit("the server did not answer within 60 s")
        time.sleep(0.2)


def paths_of(manifest: dict) -> dict[str, list[str]]:
    """Request paths per kind, from what the atlas holds."""
    q = lambda name: quote(name, safe="@.,_-")  # noqa: E731
    n = manifest["n_inputs"]
    maps = manifest["maps"]
    out = {"manifest": ["/api/manifest"],
           "mapper": [f"/api/mapper/{q(l)}" for l in maps["mapper"]],
           "topomap": [f"/api/topomap/{q(t)}" for t in maps["topomap"]],
           "concepts": [f"/api/concepts/{q(s)}" for s in maps["concepts"]],
           "inputs": [f"/api/inputs?offset={o}&limit=1000&format=arrow" for o in range(0, n, 1000)]}
    if manifest["has_thumbnails"]:
        out["thumbnail"] = [f"/api/thumbnail/{i}.png" for i in range(n)]
    sizes = {l["name"]: l["n_neurons"] for l in manifest["layers"]}
    out["patches"] = [f"/api/patches/{q(s)}/{q(l)}/{u}.png" for s, ls in manifest.get("patches", {}).items()
                      for l in ls for u in range(sizes[l])]
    return {k: v for k, v in out.items() if v}


async def client(base: str, paths: dict[str, list[str]], stop: float, seed: int, out: dict) -> None:
    rng = random.Random(seed)
    kinds = list(paths)
    weights = [MIX.get(k, 1) for k in kinds]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # verify=False: plain http; without it every client would load the CA bundle (~50 ms of CPU each)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60, verify=False) as http:
        while time.perf_counter() < stop:
            kind = rng.choices(kinds, weights)[0]
            path = rng.choice(paths[kind])
            t0 = time.perf_counter()
            try:
                r = await http.get(path)
                ok = r.status_code == 200 and len(r.content) > 0
            except httpx.HTTPError:
                ok = False
            dt = time.perf_counter() - t0
            out["latency"][kind].append(dt)
            if not ok:
                out["errors"][kind] += 1


def table(latency: dict[str, list[float]], errors: dict[str, int], seconds: float) -> list[dict]:
    rows = []
    every = [x for v in latency.values() for x in v]
    for kind, values in [("all", every)] + sorted(latency.items()):
        v = np.asarray(values) * 1000
        errs = sum(errors.values()) if kind == "all" else errors.get(kind, 0)
        rows.append({"kind": kind, "requests": len(v), "req_per_s": len(v) / seconds, "errors": errs,
                     "p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
                     "p99_ms": float(np.percentile(v, 99)), "max_ms": float(v.max())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("atlas", nargs="?", default="demo-atlas")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(a.atlas, port)
    try:
        manifest = wait_ready(base, proc)
        paths = paths_of(manifest)
        cold = {}
        for kind, ps in paths.items():  # first request per kind: loads results from disk
            t0 = time.perf_counter()
            status = httpx.get(base + ps[0], timeout=120).status_code
            cold[kind] = ((time.perf_counter() - t0) * 1000, status)
        # The viewer loads a result once per server; prime the few map payloads so the run
        # measures the steady state. Thumbnails and patches (thousands) stay cold.
        for kind in ("manifest", "mapper", "topomap", "concepts", "inputs"):
            for p in paths.get(kind, []):
                httpx.get(base + p, timeout=120)
        out = {"latency": defaultdict(list), "errors": defaultdict(int)}

        async def run() -> float:
            t0 = time.perf_counter()
            stop = t0 + a.duration
            await asyncio.gather(*(client(base, paths, stop, i, out) for i in range(a.clients)))
            return time.perf_counter() - t0

        seconds = asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    rows = table(out["latency"], out["errors"], seconds)
    print(f"atlas {a.atlas}: {manifest['n_inputs']} inputs, {len(manifest['layers'])} layers; "
          f"{a.clients} clients for {seconds:.1f} s on 127.0.0.1, {os.cpu_count()} CPU cores (server and clients)")
    print("cold first request per kind: " + ", ".join(f"{k} {ms:.0f} ms ({s})" for k, (ms, s) in cold.items()))
    print(f"{'kind':<10} {'requests':>9} {'req/s':>8} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in rows:
        print(f"{r['kind']:<10} {r['requests']:>9} {r['req_per_s']:>8.1f} {r['errors']:>7} {r['p50_ms']:>8.1f} "
              f"{r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"atlas": a.atlas, "clients": a.clients, "seconds": seconds,
                                            "cold_ms": {k: v[0] for k, v in cold.items()}, "rows": rows}, indent=1))
    if rows[0]["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
