"""Mapper-graph benchmarks in the TopoAct setting: neurocarta's Mapper against KeplerMapper,
giotto-tda and tda-mapper on the same activations, lens, cover and clusterer.

    .venv/bin/python benchmarks/bench_mapper.py --topoact [--n 300000] [--json results-mapper.json]
    .venv/bin/python benchmarks/bench_mapper.py --topoact --n 20000            # quick check
    .venv/bin/python benchmarks/bench_mapper.py --topoact --peers kmapper      # one peer only
    .venv/bin/python benchmarks/bench_mapper.py --scale [--n 1000000] [--json results-mapper.json]
    .venv/bin/python benchmarks/bench_mapper.py --demo demo-atlas [--with-kmapper]

The setting (TopoAct, Rathore et al. 2021): one Mapper graph per layer from the activations
of N inputs, lens = the L2 norm of each activation vector (1-D), a cover of 70 intervals with
30 % overlap, DBSCAN in each interval.

Data: seeded synthetic "activations", N x 256 float32, 10 classes. Each class is its centre
(sparse, non-negative) plus an 8-dimensional gaussian latent mapped through its own random
256 x 8 matrix, plus isotropic noise, passed through ReLU (np.maximum(0, .)). The arrays go to
/tmp/mapperbench/ as .npy (kept and reused: x-N-seedS.npy, lens-N-seedS.npy) so that every
contender, each in its own process, loads the same bytes. The lens is computed once, in
float64 (chunked ``np.linalg.norm(x.astype(float64), axis=1)``), and given to kmapper and
tda-mapper as is; giotto-tda computes it inside its pipeline with the same function (checked
equal); neurocarta computes its own (``lens="l2"``).

DBSCAN: ``eps`` = 1.5 x the median distance to the 5th nearest neighbour within a seeded
sample of 5,000 rows (printed; --eps overrides), ``min_samples`` = 5. With these the graph
is neither all singletons nor one blob (every node one class at 20k and 300k rows).

Peers run in benchmarks/.peers/mapper, a venv this script creates once (a stamp file marks
it done) with kmapper, giotto-tda, tda-mapper and scikit-learn: giotto-tda pins
scikit-learn 1.3.2, numpy < 2 and networkx 2.8, so none of them may enter the project venv.
Each contender runs as a subprocess that times only its mapping call, reports its peak RSS
(VmHWM) and writes its nodes (member row indices) to an .npz that this process compares.

--topoact: every contender on the same data. Seconds, peer/neurocarta time ratios, nodes
(all, and distinct member sets), giotto-tda's noise nodes, edges (pairs of nodes sharing a
row, counted here from the nodes), rows covered, median node size, singleton nodes, peak RSS;
then each graph's node set (the set of frozensets of members) against KeplerMapper's, the
reference: identical nodes, nodes on one side only, the share that differ.

--scale: neurocarta only at 1,000,000 rows (1 GB of float32), in a fresh subprocess: seconds
and peak RSS (VmHWM) against the input array's size. Goals: 5 minutes or less, peak RSS at
most 3x the input.

--demo ATLAS: neurocarta's Mapper on every layer of an atlas (``a.activations(layer)[:]``),
eps picked per layer by the same rule; --with-kmapper adds KeplerMapper and the node
comparison.

How the peers' covers compare (kmapper's ``Cover(n_cubes=n, perc_overlap=p)`` is the
reference; lens range [m, M], R = M - m):
  * kmapper: centres m + (i + 1/2) R / n, i = 0..n-1, closed intervals of half-width
    R / (2 n (1 - p)): length R / (n (1 - p)), step R / n, so adjacent intervals share p of
    their length and the end intervals reach past m and M. Empty cubes are dropped before the
    cube ids are numbered; cubes with fewer points than min_samples are not clustered; DBSCAN
    noise (-1) is dropped; identical clusters from adjacent cubes stay separate nodes.
  * tda-mapper ``CubicalCover(n_intervals=n, overlap_frac=p, algorithm="standard")``: the
    same centres and half-widths, but open intervals, and only the intervals whose own cell
    [m + i R/n, m + (i+1) R/n) holds a point are used. Its default, algorithm="proximity",
    is another cover (a net of intervals), so "standard" is set here. Its members reach
    DBSCAN in tree order, not row order, which can move DBSCAN's border points. With
    n_jobs > 1 its threads share one DBSCAN object (tdamapper's clone() keeps the nested
    clusterer), so labels can mix up: --peer-jobs stays 1 by default.
  * giotto-tda ``CubicalCover(n_intervals=n, overlap_frac=p)`` ("uniform"): p is also the
    shared fraction of an interval's length, but the intervals tile [m, M] exactly: length
    R / (n - (n - 1) p), first starting at m, last ending at M, open intervals, the first and
    last unbounded. So its intervals are shorter and shifted against kmapper's: its nodes
    differ by construction. It also keeps DBSCAN noise: the noise points of each interval
    form a node (partial_cluster_label -1); these are counted apart and left out of the
    comparison. Duplicate intervals (same members) are clustered once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))

DATA = Path("/tmp/mapperbench")
PEER_VENV = HERE / ".peers" / "mapper"
PEER_PACKAGES = {"kmapper": "kmapper", "giotto-tda": "gtda", "tda-mapper": "tdamapper"}
PEER_ORDER = ["kmapper", "giotto-tda", "tda-mapper"]

DIMS, CLASSES, LATENT = 256, 10, 8
INTERVALS, OVERLAP = 70, 0.3
MIN_SAMPLES, EPS_SCALE, EPS_SAMPLE, EPS_K = 5, 1.5, 5000, 5
UNAVAILABLE = "neurocarta.methods.mapper not available yet"


# ----------------------------------------------------------------------------- data

def activations(n: int, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """Seeded ReLU-like activations with class structure, N x 256 float32 (built in chunks)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.0, 1.0, (CLASSES, DIMS)) * (rng.uniform(size=(CLASSES, DIMS)) < 0.5)
    mixing = rng.normal(0.0, 0.1, (CLASSES, LATENT, DIMS))
    labels = rng.integers(0, CLASSES, n)
    out = np.empty((n, DIMS), dtype=np.float32)
    for s in range(0, n, chunk):
        lab = labels[s:s + chunk]
        z = rng.normal(size=(len(lab), LATENT))
        x = centres[lab] + np.einsum("nl,nld->nd", z, mixing[lab]) + 0.05 * rng.normal(size=(len(lab), DIMS))
        out[s:s + chunk] = np.maximum(0.0, x)
    return out


def l2_lens(x: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """The lens: each row's L2 norm, computed in float64."""
    out = np.empty(len(x), dtype=np.float64)
    for s in range(0, len(x), chunk):
        out[s:s + chunk] = np.linalg.norm(np.asarray(x[s:s + chunk], dtype=np.float64), axis=1)
    return out


def pick_eps(x: np.ndarray, sample: int = EPS_SAMPLE, k: int = EPS_K, scale: float = EPS_SCALE,
             seed: int = 1) -> tuple[float, float]:
    """(eps, base): base = median distance to the k-th neighbour within a seeded sample of rows
    (zero distances, i.e. duplicate rows, left out); eps = scale x base."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), min(len(x), sample), replace=False))
    s = np.asarray(x[idx], dtype=np.float64)
    d, _ = NearestNeighbors(n_neighbors=min(k + 1, len(s))).fit(s).kneighbors(s)
    kth = d[:, -1]
    kth = kth[kth > 0]
    base = float(np.median(kth)) if len(kth) else 1e-6
    return scale * base, base


def dataset(n: int, seed: int) -> tuple[Path, Path, int]:
    """Paths of the cached activations and lens .npy (made on first use), and the input bytes."""
    DATA.mkdir(parents=True, exist_ok=True)
    xp, lp = DATA / f"x-{n}-seed{seed}.npy", DATA / f"lens-{n}-seed{seed}.npy"
    if not (xp.exists() and lp.exists()):
        t = time.perf_counter()
        x = activations(n, seed)
        np.save(xp, x)
        np.save(lp, l2_lens(x))
        print(f"data: {n} x {DIMS} float32 written to {xp} in {time.perf_counter() - t:.1f} s", flush=True)
        del x
    return xp, lp, n * DIMS * 4


# ----------------------------------------------------------------------------- contenders

COMMON = r"""
import json, sys, time
import numpy as np

def vmhwm():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    return 0

def l2_lens(x, chunk=65536):
    out = np.empty(len(x), dtype=np.float64)
    for s in range(0, len(x), chunk):
        out[s:s + chunk] = np.linalg.norm(np.asarray(x[s:s + chunk], dtype=np.float64), axis=1)
    return out

def save_nodes(path, nodes, **extra):
    nodes = [np.sort(np.asarray(m, dtype=np.int64)) for m in nodes]
    sizes = np.array([len(m) for m in nodes], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    indices = np.concatenate(nodes) if nodes else np.zeros(0, np.int64)
    np.savez(path, indptr=indptr, indices=indices, **extra)

a = json.loads(sys.argv[1])
X = np.load(a["x"])
lens = np.load(a["lens"])
rss_loaded = vmhwm()
"""

PEER = COMMON + r"""
from sklearn.cluster import DBSCAN
name, out = a["peer"], {}
clusterer = DBSCAN(eps=a["eps"], min_samples=a["min_samples"])
if name == "kmapper":
    import kmapper as km
    mapper = km.KeplerMapper(verbose=0)
    cover = km.Cover(n_cubes=a["intervals"], perc_overlap=a["overlap"])
    t = time.perf_counter()
    graph = mapper.map(lens[:, None], X, cover=cover, clusterer=clusterer)
    out["seconds"] = time.perf_counter() - t
    nodes = list(graph["nodes"].values())
    out["edges"] = sum(len(v) for v in graph["links"].values())
    out["node_ids"] = list(graph["nodes"].keys())[:3]
    save_nodes(a["nodes"], nodes)
elif name == "giotto-tda":
    from gtda.mapper import CubicalCover, make_mapper_pipeline
    from sklearn.preprocessing import FunctionTransformer
    out["lens_max_abs_diff"] = float(np.abs(l2_lens(X) - lens).max())
    pipe = make_mapper_pipeline(filter_func=FunctionTransformer(lambda x: l2_lens(x)[:, None]),
                                cover=CubicalCover(n_intervals=a["intervals"], overlap_frac=a["overlap"]),
                                clusterer=clusterer, n_jobs=a["jobs"])
    t = time.perf_counter()
    graph = pipe.fit_transform(X)
    out["seconds"] = time.perf_counter() - t
    noise = np.array([lab == -1 for lab in graph.vs["partial_cluster_label"]], dtype=bool)
    out["edges"] = graph.ecount()
    save_nodes(a["nodes"], list(graph.vs["node_elements"]), noise=noise)
elif name == "tda-mapper":
    from tdamapper.cover import CubicalCover
    from tdamapper.learn import MapperAlgorithm
    mapper = MapperAlgorithm(cover=CubicalCover(n_intervals=a["intervals"], overlap_frac=a["overlap"],
                                                algorithm="standard"),
                             clustering=clusterer, verbose=False, n_jobs=a["jobs"])
    t = time.perf_counter()
    graph = mapper.fit(X, lens).graph_
    out["seconds"] = time.perf_counter() - t
    out["edges"] = graph.number_of_edges()
    save_nodes(a["nodes"], [graph.nodes[v]["ids"] for v in graph.nodes])
out["rss_loaded"], out["rss_peak"] = rss_loaded, vmhwm()
print(json.dumps(out))
"""

OURS = COMMON + r"""
sys.path.insert(0, a["src"])
try:
    from neurocarta.methods.mapper import Mapper
except Exception as exc:  # not written yet, or mid-edit
    print(json.dumps({"unavailable": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
del lens  # neurocarta computes its own lens
t = time.perf_counter()
fit = Mapper(lens="l2", intervals=a["intervals"], overlap=a["overlap"], clusterer="dbscan",
             eps=a["eps"], min_samples=a["min_samples"]).fit(X)
out = {"seconds": time.perf_counter() - t}
g = fit.graph_
for attr in ("edges", "links"):
    e = getattr(g, attr, None)
    if e is not None:
        try:
            out["edges"] = int(len(e))
            break
        except TypeError:
            pass
out["rss_loaded"], out["rss_peak"] = rss_loaded, vmhwm()
save_nodes(a["nodes"], list(g.nodes))
print(json.dumps(out))
"""


def peer_python(base: str | None) -> tuple[Path, dict]:
    """The peers' venv (made once; the stamp records what installed and which versions)."""
    py, stamp = PEER_VENV / "bin" / "python", PEER_VENV / ".bench-mapper-installed.json"
    if stamp.exists():
        return py, json.loads(stamp.read_text())
    if not py.exists():
        print(f"creating {PEER_VENV} with {base or sys.executable} (once)", flush=True)
        subprocess.run([base or sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    if subprocess.run(pip + ["scikit-learn", *PEER_PACKAGES]).returncode != 0:
        for pkg in PEER_PACKAGES:  # find out which one fails; keep the rest
            r = subprocess.run(pip + ["scikit-learn", pkg], capture_output=True, text=True)
            if r.returncode:
                print(f"pip install {pkg} failed in {PEER_VENV}:\n{r.stderr[-2000:]}", flush=True)
    info = {"python": subprocess.run([str(py), "--version"], capture_output=True, text=True).stdout.strip()}
    for pkg, module in {**PEER_PACKAGES, "scikit-learn": "sklearn", "numpy": "numpy"}.items():
        r = subprocess.run([str(py), "-c", f"import {module}; from importlib.metadata import version; "
                            f"print(version({pkg!r}))"], capture_output=True, text=True)
        info[pkg] = r.stdout.strip() if r.returncode == 0 else None
        if r.returncode:
            print(f"{pkg} does not import in {PEER_VENV}: {r.stderr.strip().splitlines()[-1:]}", flush=True)
    stamp.write_text(json.dumps(info))
    return py, info


def run_contender(script: str, python: str | Path, args: dict, timeout: float | None) -> dict:
    """Run one contender in its own process; its JSON line, or {"error": ...}."""
    path = DATA / ("ours.py" if script is OURS else "peer.py")
    path.write_text(script)
    try:
        r = subprocess.run([str(python), str(path), json.dumps(args)], capture_output=True, text=True,
                           timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if r.returncode != 0:
        return {"error": (r.stderr.strip() or r.stdout.strip())[-1500:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def load_nodes(path: Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    z = np.load(path)
    p, i = z["indptr"], z["indices"]
    return [i[p[k]:p[k + 1]] for k in range(len(p) - 1)], (z["noise"] if "noise" in z.files else None)


def node_stats(nodes: list[np.ndarray], n: int) -> dict:
    covered = np.zeros(n, dtype=bool)
    for m in nodes:
        covered[m] = True
    sizes = np.array([len(m) for m in nodes]) if nodes else np.zeros(1, int)
    distinct = len({frozenset(m.tolist()) for m in nodes})
    return {"nodes": len(nodes), "distinct_nodes": distinct, "covered": float(covered.mean()),
            "median_size": float(np.median(sizes)), "max_size": int(sizes.max()),
            "singletons": int((sizes == 1).sum())}


def nerve_edges(nodes: list[np.ndarray]) -> int:
    """Edges of the graph the nodes span: distinct pairs of nodes that share a row."""
    if not nodes:
        return 0
    ids = np.repeat(np.arange(len(nodes)), [len(m) for m in nodes])
    rows = np.concatenate(nodes)
    order = np.lexsort((ids, rows))
    ids, rows = ids[order], rows[order]
    pairs = []
    for d in range(1, len(rows)):
        same = rows[d:] == rows[:-d]
        if not same.any():
            break
        pairs.append(np.stack([ids[:-d][same], ids[d:][same]], axis=1))
    return len(np.unique(np.concatenate(pairs), axis=0)) if pairs else 0


def compare(ours: list[np.ndarray], ref: list[np.ndarray]) -> dict:
    a, b = {frozenset(m.tolist()) for m in ours}, {frozenset(m.tolist()) for m in ref}
    union = len(a | b)
    return {"identical": len(a & b), "only_this": len(a - b), "only_kmapper": len(b - a),
            "share_differ": (len(a - b) + len(b - a)) / union if union else 0.0}


def _gb(b: float | None) -> str:
    return f"{b / 2**30:.2f}" if b else "-"


def mapping_args(xp: Path, lp: Path, eps: float, a: argparse.Namespace, tag: str) -> dict:
    return {"x": str(xp), "lens": str(lp), "eps": eps, "min_samples": a.min_samples,
            "intervals": INTERVALS, "overlap": OVERLAP, "jobs": a.peer_jobs, "src": str(SRC),
            "nodes": str(DATA / f"nodes-{tag}.npz")}


def run_all(xp: Path, lp: Path, n: int, eps: float, a: argparse.Namespace, peers: list[str],
            with_ours: bool = True) -> dict:
    """neurocarta and the given peers on one data set; returns {name: result}."""
    results: dict[str, dict] = {}
    if with_ours:
        print("running neurocarta ...", flush=True)
        results["neurocarta"] = run_contender(OURS, sys.executable, mapping_args(xp, lp, eps, a, "neurocarta"),
                                              a.peer_timeout)
        if "unavailable" in results["neurocarta"]:
            print(f"{UNAVAILABLE} ({results['neurocarta']['unavailable']})", flush=True)
    if peers:
        py, info = peer_python(a.peer_python)
        for name in peers:
            if not info.get(name):
                results[name] = {"error": f"{name} is not installed in {PEER_VENV}"}
                continue
            print(f"running {name} {info[name]} ...", flush=True)
            results[name] = run_contender(PEER, py, {**mapping_args(xp, lp, eps, a, name), "peer": name},
                                          a.peer_timeout)
    for name, r in results.items():
        if "seconds" in r:
            nodes, noise = load_nodes(Path(DATA / f"nodes-{name}.npz"))
            r["noise_nodes"] = int(noise.sum()) if noise is not None else 0
            r["_nodes"] = nodes if noise is None else [m for m, z in zip(nodes, noise) if not z]
            r.update(node_stats(r["_nodes"], n))
            r["edges_reported"], r["edges"] = r.get("edges"), nerve_edges(r["_nodes"])
        elif "error" in r:
            print(f"{name} failed: {r['error']}", flush=True)
    return results


def print_results(results: dict, n: int) -> list[dict]:
    ours = results.get("neurocarta", {})
    print(f"\n{'contender':<11} {'seconds':>8} {'peer/ours':>9} {'nodes':>6} {'distinct':>8} {'noise':>6} "
          f"{'edges':>6} {'covered':>8} {'med size':>8} {'singl':>6} {'RSS load GB':>11} {'RSS peak GB':>11}")
    rows = []
    for name, r in results.items():
        if "seconds" not in r:
            why = "not available yet" if "unavailable" in r else "failed"
            print(f"{name:<11} {why}")
            rows.append({"contender": name, **{k: v for k, v in r.items() if not k.startswith("_")}})
            continue
        ratio = f"{r['seconds'] / ours['seconds']:.1f}x" if name != "neurocarta" and "seconds" in ours else "-"
        print(f"{name:<11} {r['seconds']:>8.2f} {ratio:>9} {r['nodes']:>6} {r['distinct_nodes']:>8} "
              f"{r['noise_nodes'] or '-':>6} {r.get('edges', '-'):>6} {r['covered']:>8.3f} {r['median_size']:>8.0f} "
              f"{r['singletons']:>6} {_gb(r['rss_loaded']):>11} {_gb(r['rss_peak']):>11}", flush=True)
        rows.append({"contender": name, **{k: v for k, v in r.items() if not k.startswith("_")}})
    if not getattr(print_results, "noted", False):
        print_results.noted = True
        print("edges: pairs of nodes sharing a row, counted here from each contender's nodes (giotto-tda's noise "
              "nodes left out); the tools' own counts are edges_reported in the JSON")
    ref = results.get("kmapper", {})
    if "_nodes" in ref:
        others = [k for k in results if k != "kmapper" and "_nodes" in results[k]]
        if others:
            print(f"\nnode sets (set of frozensets of member rows) against kmapper's "
                  f"({ref['distinct_nodes']} distinct of {ref['nodes']} nodes)")
            print(f"{'contender':<11} {'identical':>9} {'only this':>9} {'only kmapper':>12} {'share differ':>12}")
        for name in others:
            c = compare(results[name]["_nodes"], ref["_nodes"])
            results[name]["vs_kmapper"] = c
            next(r for r in rows if r["contender"] == name)["vs_kmapper"] = c
            print(f"{name:<11} {c['identical']:>9} {c['only_this']:>9} {c['only_kmapper']:>12} "
                  f"{c['share_differ']:>12.4f}", flush=True)
        if "_nodes" not in ours and "unavailable" in ours:
            print(f"neurocarta: {UNAVAILABLE}, no comparison")
    return rows


# ----------------------------------------------------------------------------- modes

def topoact_bench(a: argparse.Namespace) -> list[dict]:
    n = a.n or 300_000
    xp, lp, nbytes = dataset(n, a.seed)
    x = np.load(xp, mmap_mode="r")
    eps, base = (a.eps, None) if a.eps else pick_eps(x)
    lens = np.load(lp)
    peers = PEER_ORDER if a.peers is None else [p for p in a.peers.split(",") if p]
    print(f"\nTopoAct setting: {n} x {DIMS} float32 ({nbytes / 2**20:.0f} MiB), {CLASSES} classes; "
          f"lens L2 norm in [{lens.min():.3f}, {lens.max():.3f}]; cover {INTERVALS} intervals, "
          f"{OVERLAP:.0%} overlap")
    print(f"DBSCAN eps = {eps!r}" + (f" ({EPS_SCALE} x median {EPS_K}-NN distance {base:.4f} in a "
                                     f"{EPS_SAMPLE}-row sample)" if base else " (--eps)")
          + f", min_samples = {a.min_samples}; peers' n_jobs = {a.peer_jobs}", flush=True)
    if peers:
        _, info = peer_python(a.peer_python)
        print("peer venv: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    if a.peer_jobs > 1 and "tda-mapper" in peers:
        print("note: tda-mapper 0.12 with n_jobs > 1 shares one DBSCAN object between its threads (its clone() "
              "keeps nested estimators), so its labels can mix up: its nodes are not reliable here", flush=True)
    results = run_all(xp, lp, n, eps, a, peers)
    if "lens_max_abs_diff" in results.get("giotto-tda", {}):
        print(f"giotto-tda's in-pipeline lens against the saved lens: max abs diff "
              f"{results['giotto-tda']['lens_max_abs_diff']:.3g}")
    rows = print_results(results, n)
    return [{"topoact": {"n": n, "dims": DIMS, "eps": eps, "min_samples": a.min_samples,
                         "intervals": INTERVALS, "overlap": OVERLAP, "rows": rows}}]


def scale_bench(a: argparse.Namespace) -> list[dict]:
    n = a.n or 1_000_000
    xp, lp, nbytes = dataset(n, a.seed)
    eps, base = (a.eps, None) if a.eps else pick_eps(np.load(xp, mmap_mode="r"))
    print(f"\nscale: neurocarta Mapper on {n} x {DIMS} float32 (input {nbytes / 2**30:.2f} GiB), "
          f"eps = {eps!r}, min_samples = {a.min_samples}, in a fresh subprocess", flush=True)
    r = run_all(xp, lp, n, eps, a, peers=[])["neurocarta"]
    if "seconds" not in r:
        print(UNAVAILABLE if "unavailable" in r else "neurocarta failed")
        return [{"scale": {"n": n, "input_bytes": nbytes, **r}}]
    rss_ratio = r["rss_peak"] / nbytes
    goal = r["seconds"] <= 300 and rss_ratio <= 3.0
    print(f"{'rows':>9} {'seconds':>8} {'nodes':>6} {'RSS after load GB':>17} {'peak RSS GB':>11} "
          f"{'peak/input':>10} {'goal':>5}")
    print(f"{n:>9} {r['seconds']:>8.1f} {r['nodes']:>6} {_gb(r['rss_loaded']):>17} {_gb(r['rss_peak']):>11} "
          f"{rss_ratio:>9.2f}x {'met' if goal else 'NOT':>5}")
    print("goals: 300 s or less, peak RSS (VmHWM of the whole process, the loaded input included) at most 3x the input")
    return [{"scale": {"n": n, "input_bytes": nbytes, "eps": eps, "peak_over_input": rss_ratio, "goal_met": goal,
                       **{k: v for k, v in r.items() if not k.startswith("_")}}}]


def demo_bench(a: argparse.Namespace) -> list[dict]:
    import neurocarta as nc

    atlas = nc.open_atlas(a.demo)
    peers = ["kmapper"] if a.with_kmapper else []
    print(f"\nMapper on every layer of {a.demo}: lens L2, {INTERVALS} intervals, {OVERLAP:.0%} overlap, "
          f"DBSCAN min_samples {a.min_samples}, eps {EPS_SCALE} x median {EPS_K}-NN distance per layer")
    out = []
    for layer in atlas.layer_names:
        x = atlas.activations(layer)[:]
        eps, _ = (a.eps, None) if a.eps else pick_eps(x)
        tag = layer.replace("/", "_")
        xp, lp = DATA / f"demo-{tag}.npy", DATA / f"demo-{tag}-lens.npy"
        DATA.mkdir(parents=True, exist_ok=True)
        np.save(xp, x)
        np.save(lp, l2_lens(x))
        print(f"\n{layer}: {x.shape[0]} x {x.shape[1]} {x.dtype}, eps = {eps:.4g}", flush=True)
        results = run_all(xp, lp, len(x), eps, a, peers)
        rows = print_results(results, len(x))
        out.append({"layer": layer, "shape": list(x.shape), "dtype": str(x.dtype), "eps": eps, "rows": rows})
    return [{"demo": out}]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topoact", action="store_true", help="neurocarta against kmapper, giotto-tda, tda-mapper")
    p.add_argument("--scale", action="store_true", help="neurocarta alone at 1M rows: time and peak RSS")
    p.add_argument("--demo", metavar="ATLAS", default=None, help="neurocarta on every layer of this atlas")
    p.add_argument("--with-kmapper", action="store_true", help="--demo: also kmapper, and compare the nodes")
    p.add_argument("--n", type=int, default=None, help="rows (default 300,000 for --topoact, 1,000,000 for --scale)")
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--eps", type=float, default=None, help="DBSCAN eps (default: picked from the data, printed)")
    p.add_argument("--min-samples", type=int, default=MIN_SAMPLES, help="DBSCAN min_samples")
    p.add_argument("--peers", default=None, help=f"comma list out of {','.join(PEER_ORDER)} (default all; '' none)")
    p.add_argument("--peer-jobs", type=int, default=1, help="n_jobs for giotto-tda and tda-mapper (kmapper has none)")
    p.add_argument("--peer-timeout", type=float, default=1800, help="seconds before a contender is given up")
    p.add_argument("--peer-python", default=None,
                   help="interpreter to create the peers' venv with (default: this one), e.g. /usr/bin/python3.11")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    a = p.parse_args()
    if not (a.topoact or a.scale or a.demo):
        p.error("choose --topoact, --scale or --demo ATLAS")
    results: list[dict] = []
    if a.topoact:
        results += topoact_bench(a)
    if a.scale:
        results += scale_bench(a)
    if a.demo:
        results += demo_bench(a)
    if a.json:
        merged = {k: v for part in results for k, v in part.items()}
        a.json.write_text(json.dumps(merged, indent=1))


if __name__ == "__main__":
    main()
