"""Concept-atlas benchmarks (issue 5): grouping neurons by the overlap of their exemplar sets.

    .venv/bin/python benchmarks/bench_concepts.py --compare [--n 10000] [--json results-concepts.json]
    .venv/bin/python benchmarks/bench_concepts.py --scale [--scale-n 10000,100000]
    .venv/bin/python benchmarks/bench_concepts.py --compare --scale --json benchmarks/results-concepts.json
    .venv/bin/python benchmarks/bench_concepts.py --imagenet [--n 1200000] [--neurons 2048]

(a) --compare: similar pairs of neurons (Jaccard of their top-k exemplar sets >= 0.5) found by
    neurocarta's ``similar_pairs`` (MinHash signatures -> LSH candidates -> exact Jaccard
    verification), against datasketch's ``MinHash(num_perm=128)`` per set plus
    ``MinHashLSH(threshold=0.5, num_perm=128)`` insert and query of every set, and against exact
    all-pairs Jaccard (the sparse incidence matrix times its transpose, scipy), which is also
    the ground truth. Reported: seconds per contender (best of --repeats, each contender in its
    own process, after one untimed warm-up run that also loads numba's compiled kernels),
    neurocarta's stages apart, speed-ups, candidate pairs, and the candidates' recall of all
    pairs at or above the threshold. Goals: neurocarta >= 20x faster than datasketch, recall
    >= 0.95.
(b) --scale: neurocarta alone at 10k and 100k neurons with the same per-neuron structure, each
    size in a fresh process. Goal: time ratio <= 12x for 10x the neurons (linear is 10x).
(c) --imagenet: end to end at ImageNet size, in one fresh process: a seeded synthetic stream of
    N = 1,200,000 inputs x 2,048 neurons (float32, generated a batch of 8,192 inputs at a time,
    never the whole matrix) -> per-neuron top-100 with ``neurocarta.streaming.TopKAccumulator``
    fed batch by batch -> ``ConceptAtlas(k=100, threshold=0.2, seed=0).fit(input_ids.T)``
    (MinHash + LSH + exact Jaccard, Leiden, PPMI + SVD embedding, seeded UMAP). Reported:
    seconds per stage (generation apart: it stands in for the model's forward pass), peak RSS
    (VmHWM of the process, after each stage), and recovery of the planted concepts: adjusted
    Rand index between found groups and planted concepts over the planted neurons (a neuron
    left ungrouped counts as a group of its own), and the share of planted concepts with at
    least 80 % of their members in one found group. Goals: neurocarta's time (top-k + fit)
    <= 20 minutes, peak RSS < 3 GB, ARI >= 0.9.

Data for (a) and (b): seeded synthetic exemplar sets, one per neuron, of k = 200 input ids out of 1,200,000
inputs (ImageNet-train sized), written to /tmp/conceptsbench/sets-N-seedS.npz (CSR, reused) so
that every contender loads the same sets. 30 % of the neurons sit in planted groups of 2 to 8
neurons. Each group has a core of 200 ids; a member keeps a random share q ~ U(0.6, 1) of the
core and fills the rest with random ids, so two members share about 200 q1 q2 ids, i.e. a
Jaccard of about 0.22 to 1, spread across the threshold. The other neurons draw 200 random ids
(duplicates dropped, so a few sets hold 199). Threshold 0.5 for every contender.

datasketch runs in benchmarks/.peers/concepts, a venv this script creates once (a stamp file
marks it done) with ``pip install datasketch``. Two configurations, each in its own process:
  * datasketch: the default MinHash (scheme affine32, SHA-1 of each value), on ids given as
    ready-made 4-byte strings (encoding them is not timed);
  * datasketch-int: its fastest CPU path for integer ids, ``hashfunc=int`` on Python ints
    (no SHA-1; the list conversion is not timed).
Both build the MinHashes with ``MinHash.bulk`` and fill ``MinHashLSH`` inside an
``insertion_session``; their candidates are the pairs each query returns (no verification:
datasketch has none). MinHashLSH picks its own bands and rows (equal weights); neurocarta
uses ``lsh_params``' recall-favouring defaults.

Data for (c): activations x[i, j] ~ N(0, 1) for every input i and neuron j (background noise,
so that each neuron has top inputs of its own). 64 planted concepts (fewer when --neurons <
2,048: neurons // 32) of 12 to 20 neurons each (about 16: 1,029 of 2,048 at seed 0), the
rest pure noise. A concept fires on each input with a probability of its own, U(0.8 %, 1.2 %);
where it fires, each member j adds g_j * a_i, with a_i = 2 + 2 Exp(1) shared by the concept's
members and a gain g_j ~ U(0.7, 1.3) per neuron. Members' top-100 sets then overlap with a
Jaccard index of 0.29 to 0.79, median 0.55 (seed 0, full size: above the 0.2 threshold, far
from trivially 1); noise neurons' top-100 sets are random among 1.2M inputs. Batch b draws from default_rng([seed, b]), so the
stream is the same on every run and no state is kept between batches.
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

DATA = Path("/tmp/conceptsbench")
PEER_VENV = HERE / ".peers" / "concepts"
PEER_PACKAGES = {"datasketch": "datasketch"}

K, UNIVERSE, N_HASHES, THRESHOLD = 200, 1_200_000, 128, 0.5
GROUP_SHARE, GROUP_SIZES, KEEP_RANGE = 0.3, (2, 8), (0.6, 1.0)
UNAVAILABLE = "neurocarta.methods.concepts not available yet"


# ----------------------------------------------------------------------------- data

def exemplar_sets(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded exemplar sets with planted groups: (indptr, indices, group), group -1 = none."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, UNIVERSE, (n, K), dtype=np.int64)
    group = np.full(n, -1, dtype=np.int64)
    sizes, total = [], 0
    while total < GROUP_SHARE * n:
        sizes.append(int(rng.integers(GROUP_SIZES[0], GROUP_SIZES[1] + 1)))
        total += sizes[-1]
    members = rng.permutation(n)[:min(total, n)]
    group[members] = np.repeat(np.arange(len(sizes)), sizes)[:len(members)]
    cores = rng.integers(0, UNIVERSE, (len(sizes), K), dtype=np.int64)
    keep = np.round(rng.uniform(*KEEP_RANGE, len(members)) * K).astype(np.int64)
    perm = np.argsort(rng.random((len(members), K)), axis=1)  # which core ids each member keeps
    core_ids = np.take_along_axis(cores[group[members]], perm, axis=1)
    ids[members] = np.where(np.arange(K)[None, :] < keep[:, None], core_ids, ids[members])
    ids.sort(axis=1)
    fresh = np.ones_like(ids, dtype=bool)
    fresh[:, 1:] = ids[:, 1:] != ids[:, :-1]
    indptr = np.concatenate([[0], np.cumsum(fresh.sum(axis=1))]).astype(np.int64)
    return indptr, ids[fresh], group


def dataset(n: int, seed: int) -> Path:
    """Path of the cached sets (made on first use)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"sets-{n}-seed{seed}.npz"
    if not path.exists():
        t = time.perf_counter()
        indptr, indices, group = exemplar_sets(n, seed)
        np.savez(path, indptr=indptr, indices=indices, group=group)
        print(f"data: {n} sets, {len(indices)} ids, written to {path} in {time.perf_counter() - t:.1f} s", flush=True)
    return path


# ----------------------------------------------------------------------------- contenders

COMMON = r"""
import json, sys, time
import numpy as np

a = json.loads(sys.argv[1])
z = np.load(a["data"])
indptr, indices = z["indptr"], z["indices"]
n = len(indptr) - 1

def best_of(fn, repeats):
    fn()  # warm-up, untimed: numba loads its cached kernels, caches fill
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out

def save_pairs(path, pairs):
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    np.save(path, pairs)
"""

OURS = COMMON + r"""
sys.path.insert(0, a["src"])
try:
    from neurocarta.methods.concepts.lsh import candidate_pairs, lsh_params, similar_pairs
    from neurocarta.methods.concepts.minhash import exact_jaccard, minhash_signatures
except Exception as exc:  # not written yet, or mid-edit
    print(json.dumps({"unavailable": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
t0 = time.perf_counter()
similar_pairs(indptr, indices, a["threshold"], n_hashes=a["n_hashes"])
out = {"first_call": time.perf_counter() - t0}
bands, rows = lsh_params(a["threshold"], a["n_hashes"])
out["bands"], out["rows"] = bands, rows
out["seconds"], (pairs, jac) = best_of(lambda: similar_pairs(indptr, indices, a["threshold"], n_hashes=a["n_hashes"]),
                                       a["repeats"])
if a.get("stages"):
    out["t_signatures"], sig = best_of(lambda: minhash_signatures(indptr, indices, a["n_hashes"]), a["repeats"])
    out["t_candidates"], cand = best_of(lambda: candidate_pairs(sig, bands, rows), a["repeats"])
    out["t_verify"], _ = best_of(lambda: exact_jaccard(indptr, indices, cand), a["repeats"])
    out["candidates"] = len(cand)
    save_pairs(a["candidates_out"], cand)
out["pairs"] = len(pairs)
print(json.dumps(out))
"""

PEER = COMMON + r"""
from datasketch import MinHash, MinHashLSH
from importlib.metadata import version
sets = [indices[indptr[i]:indptr[i + 1]] for i in range(n)]
if a["peer"] == "datasketch":  # default: SHA-1 of bytes; encoding not timed
    values = [[int(x).to_bytes(4, "little") for x in s] for s in sets]
    kwargs = {}
else:  # datasketch-int: hashfunc=int on Python ints, its fastest CPU path
    values = [s.tolist() for s in sets]
    kwargs = {"hashfunc": int}

def minhashes():
    return MinHash.bulk(values, num_perm=a["n_hashes"], **kwargs)

def lsh_insert(mh):
    lsh = MinHashLSH(threshold=a["threshold"], num_perm=a["n_hashes"])
    with lsh.insertion_session() as session:
        for i, m in enumerate(mh):
            session.insert(i, m)
    return lsh

def lsh_query(lsh, mh):
    pairs = []
    for i, m in enumerate(mh):
        pairs.extend((i, j) for j in lsh.query(m) if j > i)
    return pairs

out = {"version": version("datasketch")}
out["t_signatures"], mh = best_of(minhashes, a["repeats"])
out["t_insert"], lsh = best_of(lambda: lsh_insert(mh), a["repeats"])
out["t_query"], cand = best_of(lambda: lsh_query(lsh, mh), a["repeats"])
out["seconds"] = out["t_signatures"] + out["t_insert"] + out["t_query"]
out["bands"], out["rows"] = lsh.b, lsh.r
out["candidates"] = len(cand)
save_pairs(a["candidates_out"], cand)
print(json.dumps(out))
"""

EXACT = COMMON + r"""
import scipy.sparse as sp

def all_pairs(chunk=2000):
    # intersections = X X^T on the 0/1 incidence matrix, a row block at a time (upper triangle)
    x = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n, int(indices.max()) + 1))
    xt = x.T.tocsc()
    size = np.diff(indptr)
    found = []
    for s in range(0, n, chunk):
        inter = (x[s:s + chunk] @ xt).tocoo()
        i, j, c = inter.row + s, inter.col, inter.data
        up = j > i
        i, j, c = i[up], j[up], c[up]
        jac = c / (size[i] + size[j] - c)
        keep = jac >= a["threshold"]
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(found)

out = {}
out["seconds"], pairs = best_of(all_pairs, a["repeats"])
out["pairs"] = len(pairs)
save_pairs(a["candidates_out"], pairs)
print(json.dumps(out))
"""

SCRIPTS = {"neurocarta": OURS, "peer": PEER, "exact": EXACT}


def peer_python(base: str | None) -> tuple[Path, dict]:
    """The peers' venv (made once; the stamp records what installed and which versions)."""
    py, stamp = PEER_VENV / "bin" / "python", PEER_VENV / ".bench-concepts-installed.json"
    if stamp.exists():
        return py, json.loads(stamp.read_text())
    if not py.exists():
        print(f"creating {PEER_VENV} with {base or sys.executable} (once)", flush=True)
        subprocess.run([base or sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES], capture_output=True, text=True)
    if r.returncode:
        print(f"pip install {' '.join(PEER_PACKAGES)} failed in {PEER_VENV}:\n{r.stderr[-2000:]}", flush=True)
    info = {"python": subprocess.run([str(py), "--version"], capture_output=True, text=True).stdout.strip()}
    for pkg, module in {**PEER_PACKAGES, "numpy": "numpy"}.items():
        r = subprocess.run([str(py), "-c", f"import {module}; from importlib.metadata import version; "
                            f"print(version({pkg!r}))"], capture_output=True, text=True)
        info[pkg] = r.stdout.strip() if r.returncode == 0 else None
    if info.get("datasketch"):
        stamp.write_text(json.dumps(info))
    return py, info


def run_contender(kind: str, python: str | Path, args: dict, timeout: float | None, live: bool = False) -> dict:
    """Run one contender in its own process; its JSON line, or {"error": ...}. ``live``: its
    stderr (progress) goes straight to ours instead of being captured."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"{kind}.py"
    path.write_text(SCRIPTS[kind])
    try:
        r = subprocess.run([str(python), str(path), json.dumps(args)], stdout=subprocess.PIPE,
                           stderr=None if live else subprocess.PIPE, text=True,
                           timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if r.returncode != 0:
        return {"error": ((r.stderr or "").strip() or r.stdout.strip() or f"exit status {r.returncode}")[-1500:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def contender_args(data: Path, a: argparse.Namespace, tag: str, **extra) -> dict:
    return {"data": str(data), "threshold": a.threshold, "n_hashes": N_HASHES, "repeats": a.repeats,
            "src": str(SRC), "candidates_out": str(DATA / f"pairs-{tag}.npy"), **extra}


def pair_codes(path: Path, n: int) -> np.ndarray:
    p = np.load(path)
    return np.unique(np.minimum(p[:, 0], p[:, 1]) * n + np.maximum(p[:, 0], p[:, 1]))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.isin(truth, found).mean()) if len(truth) else float("nan")


# ----------------------------------------------------------------------------- (a) against datasketch

def compare_bench(a: argparse.Namespace) -> dict:
    n = a.n or 10_000
    data = dataset(n, a.seed)
    z = np.load(data)
    print(f"\n(a) {n} neurons x k = {K} ids of {UNIVERSE:,} inputs ({len(z['indices']):,} ids in all), "
          f"{(z['group'] >= 0).mean():.0%} in planted groups; Jaccard threshold {a.threshold}; "
          f"{N_HASHES} hashes; best of {a.repeats}", flush=True)
    results: dict[str, dict] = {}
    print("running exact all-pairs (scipy) ...", flush=True)
    results["exact all-pairs"] = run_contender("exact", sys.executable, contender_args(data, a, "exact"),
                                               a.peer_timeout)
    print("running neurocarta ...", flush=True)
    results["neurocarta"] = run_contender("neurocarta", sys.executable,
                                          contender_args(data, a, "neurocarta", stages=True), a.peer_timeout)
    py, info = peer_python(a.peer_python)
    print("peer venv: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    for peer in ("datasketch", "datasketch-int"):
        if not info.get("datasketch"):
            results[peer] = {"error": f"datasketch is not installed in {PEER_VENV}"}
            continue
        print(f"running {peer} ...", flush=True)
        results[peer] = run_contender("peer", py, contender_args(data, a, peer, peer=peer), a.peer_timeout)
    for name, r in results.items():
        if "error" in r or "unavailable" in r:
            print(f"{name}: {r.get('error') or UNAVAILABLE + ' (' + r['unavailable'] + ')'}", flush=True)
    return print_compare(results, n, a.threshold)


def print_compare(results: dict, n: int, threshold: float) -> dict:
    truth = pair_codes(DATA / "pairs-exact.npy", n) if "seconds" in results["exact all-pairs"] else np.zeros(0)
    ours = results.get("neurocarta", {})
    print(f"\nground truth: {len(truth):,} pairs with exact Jaccard >= {threshold} "
          f"(of {n * (n - 1) // 2:,} pairs)")
    print(f"{'contender':<16} {'seconds':>8} {'vs ours':>8} {'signatures':>10} {'LSH':>8} {'verify':>8} "
          f"{'bands x rows':>12} {'candidates':>10} {'recall':>7}")
    rows = []
    for name, r in results.items():
        if "seconds" not in r:
            print(f"{name:<16} {'not available yet' if 'unavailable' in r else 'failed'}")
            rows.append({"contender": name, **r})
            continue
        if name != "exact all-pairs":
            r["recall"] = recall(pair_codes(DATA / f"pairs-{name}.npy", n), truth)
        ratio = f"{r['seconds'] / ours['seconds']:.1f}x" if "seconds" in ours and name != "neurocarta" else "-"
        lsh = r.get("t_candidates", (r["t_insert"] + r["t_query"]) if "t_insert" in r else None)
        banding = f"{r['bands']} x {r['rows']}" if "bands" in r else "-"
        print(f"{name:<16} {r['seconds']:>8.3f} {ratio:>8} {_s(r.get('t_signatures')):>10} {_s(lsh):>8} "
              f"{_s(r.get('t_verify')):>8} {banding:>12} {r.get('candidates', r.get('pairs', 0)):>10,} "
              f"{_s(r.get('recall')):>7}", flush=True)
        rows.append({"contender": name, **r})
    if "seconds" in ours:
        print(f"neurocarta: {ours['pairs']:,} verified pairs returned (exact Jaccard >= {threshold}, so precision 1); "
              f"first call in a fresh process {ours['first_call']:.2f} s (numba loads its cached kernels)")
        for peer in ("datasketch", "datasketch-int"):
            if "seconds" in results.get(peer, {}):
                sp = results[peer]["seconds"] / ours["seconds"]
                print(f"speed-up over {peer}: {sp:.1f}x (goal >= 20x: {'met' if sp >= 20 else 'NOT met'})")
        print(f"recall of neurocarta: {_s(ours.get('recall'))} (goal >= 0.95: "
              f"{'met' if ours.get('recall', 0) >= 0.95 else 'NOT met'})")
    print("seconds: neurocarta = similar_pairs end to end (its stages timed apart, best of each); datasketch = "
          "MinHash.bulk + insert + query; recall = share of the ground-truth pairs among the candidates")
    return {"compare": {"n": n, "k": K, "universe": UNIVERSE, "threshold": threshold, "n_hashes": N_HASHES,
                        "truth_pairs": int(len(truth)), "rows": rows}}


def _s(v: float | None) -> str:
    return f"{v:.3f}" if v is not None else "-"


# ----------------------------------------------------------------------------- (b) linear scaling

def scale_bench(a: argparse.Namespace) -> dict:
    sizes = [int(s) for s in a.scale_n.split(",")]
    print(f"\n(b) neurocarta similar_pairs at {', '.join(f'{s:,}' for s in sizes)} neurons (k = {K}, "
          f"threshold {a.threshold}), each in a fresh process, best of {a.repeats}", flush=True)
    rows = []
    for n in sizes:
        r = run_contender("neurocarta", sys.executable,
                          contender_args(dataset(n, a.seed), a, f"scale-{n}", stages=True), a.peer_timeout)
        if "seconds" not in r:
            print(f"{n}: {r.get('error') or UNAVAILABLE}")
            return {"scale": {"rows": rows + [{"n": n, **r}]}}
        rows.append({"n": n, **r})
    print(f"{'neurons':>8} {'seconds':>8} {'signatures':>10} {'LSH':>8} {'verify':>8} {'candidates':>10} "
          f"{'pairs':>9} {'time ratio':>10} {'size ratio':>10}")
    for r in rows:
        tr, nr = r["seconds"] / rows[0]["seconds"], r["n"] / rows[0]["n"]
        print(f"{r['n']:>8,} {r['seconds']:>8.3f} {r['t_signatures']:>10.3f} {r['t_candidates']:>8.3f} "
              f"{r['t_verify']:>8.3f} {r['candidates']:>10,} {r['pairs']:>9,} {tr:>9.2f}x {nr:>9.0f}x")
    if len(rows) > 1:
        tr = rows[-1]["seconds"] / rows[0]["seconds"]
        nr = rows[-1]["n"] / rows[0]["n"]
        goal = tr <= 1.2 * nr
        print(f"time ratio {tr:.2f}x for {nr:.0f}x the neurons "
              f"(goal <= {1.2 * nr:.0f}x: {'met' if goal else 'NOT met'})")
    return {"scale": {"threshold": a.threshold, "k": K, "rows": rows}}


# ----------------------------------------------------------------------------- (c) ImageNet

N_INPUTS, N_NEURONS, BATCH = 1_200_000, 2_048, 8_192
CONCEPTS, CONCEPT_SIZES, FIRE_RATE = 64, (12, 20), (0.008, 0.012)
AMPLITUDE, GAIN = (2.0, 2.0), (0.7, 1.3)  # a = base + scale * Exp(1); member gain ~ U(lo, hi)
TOPK, CONCEPT_THRESHOLD, MOSTLY = 100, 0.2, 0.8
GOAL_SECONDS, GOAL_RSS_GB, GOAL_ARI = 20 * 60, 3.0, 0.9


class PlantedStream:
    """Seeded stream of (first input id, float32 activations (batch, neurons)) with planted
    concepts; see the module docstring. ``group[j]`` is neuron j's concept, -1 for noise."""

    def __init__(self, n: int, neurons: int, seed: int = 0, batch: int = BATCH):
        rng = np.random.default_rng(seed)
        self.n, self.neurons, self.seed, self.batch = n, neurons, seed, batch
        n_concepts = min(CONCEPTS, neurons // 32)
        sizes = rng.integers(CONCEPT_SIZES[0], CONCEPT_SIZES[1] + 1, n_concepts)
        planted = rng.permutation(neurons)[:sizes.sum()]
        self.members = np.split(planted, np.cumsum(sizes)[:-1]) if n_concepts else []
        self.group = np.full(neurons, -1, dtype=np.int64)
        for c, m in enumerate(self.members):
            self.group[m] = c
        self.rate = rng.uniform(*FIRE_RATE, n_concepts)
        self.gain = rng.uniform(*GAIN, neurons).astype(np.float32)

    def __len__(self) -> int:
        return -(-self.n // self.batch)

    def batch_at(self, b: int) -> tuple[int, np.ndarray]:
        lo = b * self.batch
        m = min(self.batch, self.n - lo)
        rng = np.random.default_rng([self.seed, b])
        x = rng.standard_normal((m, self.neurons), dtype=np.float32)
        fires = rng.random((m, len(self.members))) < self.rate
        for c, mem in enumerate(self.members):
            f = np.flatnonzero(fires[:, c])
            if f.size:
                a = (AMPLITUDE[0] + AMPLITUDE[1] * rng.standard_exponential(f.size)).astype(np.float32)
                x[np.ix_(f, mem)] += a[:, None] * self.gain[mem][None, :]
        return lo, x

    def __iter__(self):
        for b in range(len(self)):
            yield self.batch_at(b)


def recovery(found: np.ndarray, planted: np.ndarray) -> dict:
    """ARI over the planted neurons (ungrouped neurons as singletons), the share of planted
    concepts with >= 80 % of their members in one found group, and what the noise became."""
    from sklearn.metrics import adjusted_rand_score

    found, planted = np.asarray(found), np.asarray(planted)
    on = planted >= 0
    f = found[on].copy()
    alone = f < 0
    f[alone] = found.max(initial=-1) + 1 + np.arange(alone.sum())  # each ungrouped neuron: its own label
    ari = float(adjusted_rand_score(planted[on], f))
    mostly, merged = 0, 0
    concepts = np.unique(planted[on])
    home = {}
    for c in concepts:
        lab = found[planted == c]
        lab = lab[lab >= 0]
        if lab.size:
            g, cnt = np.unique(lab, return_counts=True)
            best = int(np.argmax(cnt))
            if cnt[best] >= MOSTLY * (planted == c).sum():
                mostly += 1
                home.setdefault(int(g[best]), []).append(int(c))
    merged = sum(len(v) for v in home.values() if len(v) > 1)
    noise = ~on
    found_groups = np.unique(found[found >= 0])
    noise_only = [g for g in found_groups if not on[found == g].any()]
    return {"ari": ari, "concepts": int(len(concepts)), "recovered": mostly,
            "recovered_share": mostly / max(len(concepts), 1), "merged_concepts": merged,
            "planted_neurons": int(on.sum()), "planted_grouped": float((found[on] >= 0).mean()) if on.any() else 0.0,
            "noise_neurons": int(noise.sum()), "noise_grouped": float((found[noise] >= 0).mean()) if noise.any() else 0.0,
            "found_groups": int(len(found_groups)), "noise_only_groups": len(noise_only)}


IMAGENET = r"""
import json, sys, time
import numpy as np

a = json.loads(sys.argv[1])
sys.path.insert(0, a["src"])
sys.path.insert(0, a["bench"])

def peak_gb():  # VmHWM: this process's peak resident set so far
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")

def log(msg):
    print(msg, file=sys.stderr, flush=True)

out = {"stages": []}
def stage(name, seconds, **extra):
    out["stages"].append({"stage": name, "seconds": seconds, "peak_gb": peak_gb(), **extra})

t0 = time.perf_counter()
try:
    from bench_concepts import PlantedStream, recovery
    from neurocarta.streaming import TopKAccumulator
    import neurocarta.methods.concepts.estimator as est
    import neurocarta.methods.concepts.embedding as emb
    import neurocarta.methods.concepts.lsh as lsh
except Exception as exc:  # not written yet, or mid-edit
    print(json.dumps({"unavailable": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
stage("imports", time.perf_counter() - t0)

stream = PlantedStream(a["n"], a["neurons"], a["seed"])
acc = TopKAccumulator(k=a["k"], n_neurons=a["neurons"])
t_gen = t_upd = 0.0
t1 = time.perf_counter()
for b in range(len(stream)):
    t = time.perf_counter()
    lo, x = stream.batch_at(b)
    ids = np.arange(lo, lo + x.shape[0], dtype=np.int64)
    t_gen += time.perf_counter() - t
    t = time.perf_counter()
    acc.update(x, ids, ids)
    t_upd += time.perf_counter() - t
    if (b + 1) % max(1, len(stream) // 10) == 0 or b + 1 == len(stream):
        log(f"  stream: {lo + x.shape[0]:,} / {a['n']:,} inputs, generate {t_gen:.0f} s, top-k update {t_upd:.0f} s, "
            f"peak RSS {peak_gb():.2f} GB")
del x
stage("generate activations (not neurocarta)", t_gen, batches=len(stream))
stage("top-k: TopKAccumulator.update", t_upd, batches=len(stream))
t = time.perf_counter()
topk = acc.result()
stage("top-k: result()", time.perf_counter() - t)
out["stream_wall"] = time.perf_counter() - t1

# ConceptAtlas.fit, with its steps timed by wrapping the module functions it calls
steps = {}
def timed(mod, name, label):
    fn = getattr(mod, name)
    def wrapper(*args, **kw):
        t = time.perf_counter()
        r = fn(*args, **kw)
        steps[label] = steps.get(label, 0.0) + time.perf_counter() - t
        steps[label + " peak"] = peak_gb()
        return r
    setattr(mod, name, wrapper)
for mod, name, label in ((est, "as_sets", "fit: exemplar sets (as_sets)"),
                         (lsh, "similar_pairs", "fit: MinHash + LSH + exact Jaccard"),
                         (est, "cluster_pairs", "fit: Leiden groups"),
                         (emb, "ppmi_svd", "fit: PPMI + SVD embedding"),
                         (emb, "project_2d", "fit: UMAP projection (seeded)")):
    timed(mod, name, label)
t = time.perf_counter()
atlas = est.ConceptAtlas(k=a["k"], threshold=a["threshold"], seed=0).fit(topk.input_ids.T)
t_fit = time.perf_counter() - t
for label, sec in steps.items():
    if not label.endswith(" peak"):
        out["stages"].append({"stage": label, "seconds": sec, "peak_gb": steps[label + " peak"]})
stage("fit: rest", t_fit - sum(v for k, v in steps.items() if not k.endswith(" peak")))
out["t_fit"] = t_fit
out["t_topk"] = t_upd + sum(s["seconds"] for s in out["stages"] if s["stage"] == "top-k: result()")
out["t_generate"] = t_gen
out["t_neurocarta"] = out["t_topk"] + t_fit
out["t_wall"] = time.perf_counter() - t0
out["peak_gb"] = peak_gb()
out["pairs"] = int(len(atlas.graph_.pairs))
out["bands"], out["rows"] = atlas.bands_, atlas.rows_
out["sizes"] = atlas.sizes_
out["recovery"] = recovery(atlas.clusters_, stream.group)
planted = [np.asarray(m) for m in stream.members]
out["sizes_planted"] = [int(len(m)) for m in planted]
# how similar members' top-k sets came out (exact Jaccard over all member pairs)
sets = [set(r.tolist()) for r in topk.input_ids.T]
jac = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for m in planted for p, i in enumerate(m) for j in m[p + 1:]]
out["member_jaccard"] = [float(np.min(jac)), float(np.median(jac)), float(np.max(jac))] if jac else None
print(json.dumps(out))
"""
SCRIPTS["imagenet"] = IMAGENET


def imagenet_bench(a: argparse.Namespace) -> dict:
    n = a.n or N_INPUTS
    print(f"\n(c) end to end: {n:,} inputs x {a.neurons:,} neurons (float32, seeded stream of batches of "
          f"{BATCH:,}) -> top-{TOPK} per neuron (TopKAccumulator) -> ConceptAtlas(k={TOPK}, "
          f"threshold={CONCEPT_THRESHOLD}, seed=0).fit; one fresh process", flush=True)
    args = {"n": n, "neurons": a.neurons, "seed": a.seed, "k": TOPK, "threshold": CONCEPT_THRESHOLD,
            "src": str(SRC), "bench": str(HERE)}
    r = run_contender("imagenet", sys.executable, args, max(a.peer_timeout, 2 * GOAL_SECONDS), live=True)
    if "stages" not in r:
        print(f"(c) {r.get('error') or UNAVAILABLE + ' (' + r['unavailable'] + ')'}", flush=True)
        return {"imagenet": {"n": n, "neurons": a.neurons, **r}}
    return {"imagenet": print_imagenet(r, n, a.neurons)}


def print_imagenet(r: dict, n: int, neurons: int) -> dict:
    rec = r["recovery"]
    print(f"\n{'stage':<40} {'seconds':>8} {'peak RSS so far':>16}")
    for s in r["stages"]:
        print(f"{s['stage']:<40} {s['seconds']:>8.1f} {s['peak_gb']:>13.2f} GB")
    print(f"{'top-k total':<40} {r['t_topk']:>8.1f}")
    print(f"{'ConceptAtlas.fit total':<40} {r['t_fit']:>8.1f}")
    print(f"{'neurocarta total (top-k + fit)':<40} {r['t_neurocarta']:>8.1f}  ({r['t_neurocarta'] / 60:.1f} min)")
    print(f"{'wall, whole process (with generation)':<40} {r['t_wall']:>8.1f}  ({r['t_wall'] / 60:.1f} min)")
    print(f"peak RSS (VmHWM of the process): {r['peak_gb']:.2f} GB")
    sz = r["sizes"]
    jm = r.get("member_jaccard")
    print(f"\nplanted: {rec['concepts']} concepts, {rec['planted_neurons']} neurons (sizes "
          f"{min(r['sizes_planted'])}-{max(r['sizes_planted'])}), {rec['noise_neurons']} noise neurons; members' "
          f"top-{TOPK} Jaccard min/median/max " + (f"{jm[0]:.2f}/{jm[1]:.2f}/{jm[2]:.2f}" if jm else "-"))
    print(f"found: {sz['n_groups']} groups (median size {sz['median']:.0f}, max {sz['max']}), "
          f"{r['pairs']:,} verified pairs (LSH {r['bands']} bands x {r['rows']} rows)")
    print(f"{'ARI (planted neurons)':>24} {'concepts >=80% in one group':>28} {'merged':>7} "
          f"{'planted grouped':>16} {'noise grouped':>14} {'noise-only groups':>18}")
    print(f"{rec['ari']:>24.3f} {rec['recovered']:>19} / {rec['concepts']:<3} ({rec['recovered_share']:.0%}) "
          f"{rec['merged_concepts']:>6} {rec['planted_grouped']:>16.1%} {rec['noise_grouped']:>14.1%} "
          f"{rec['noise_only_groups']:>18}")
    goals = [(f"neurocarta total {r['t_neurocarta'] / 60:.1f} min <= {GOAL_SECONDS // 60} min",
              r["t_neurocarta"] <= GOAL_SECONDS),
             (f"peak RSS {r['peak_gb']:.2f} GB < {GOAL_RSS_GB:.0f} GB", r["peak_gb"] < GOAL_RSS_GB),
             (f"planted concepts recovered: ARI {rec['ari']:.3f} >= {GOAL_ARI}", rec["ari"] >= GOAL_ARI)]
    for text, ok in goals:
        print(f"goal: {text}: {'met' if ok else 'NOT met'}")
    print(f"(with generation, the whole process took {r['t_wall'] / 60:.1f} min: "
          f"{'within' if r['t_wall'] <= GOAL_SECONDS else 'over'} {GOAL_SECONDS // 60} min too)")
    if n != N_INPUTS or neurons != N_NEURONS:
        print(f"note: a reduced run ({n:,} x {neurons:,}); the goals are for {N_INPUTS:,} x {N_NEURONS:,}")
    return {"n": n, "neurons": neurons, "batch": BATCH, "k": TOPK, "threshold": CONCEPT_THRESHOLD,
            "goals": {t: ok for t, ok in goals}, **r}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compare", action="store_true", help="(a) neurocarta vs datasketch vs exact all-pairs")
    p.add_argument("--scale", action="store_true", help="(b) neurocarta alone at --scale-n neurons: linear time")
    p.add_argument("--imagenet", action="store_true",
                   help="(c) end to end at ImageNet size: streamed top-k of 1.2M x 2,048 activations, then ConceptAtlas")
    p.add_argument("--n", type=int, default=None,
                   help="neurons for --compare (default 10,000); inputs for --imagenet (default 1,200,000)")
    p.add_argument("--neurons", type=int, default=N_NEURONS, help="neurons for --imagenet (default 2,048)")
    p.add_argument("--scale-n", default="10000,100000", help="comma list of neuron counts for --scale")
    p.add_argument("--threshold", type=float, default=THRESHOLD, help="Jaccard threshold (default 0.5)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per contender (best reported)")
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--peer-timeout", type=float, default=1800, help="seconds before a contender is given up")
    p.add_argument("--peer-python", default=None, help="interpreter to create the peers' venv with (default: this one)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    a = p.parse_args()
    if not (a.compare or a.scale or a.imagenet):
        p.error("choose --compare, --scale or --imagenet")
    results: dict = {}
    if a.compare:
        results.update(compare_bench(a))
    if a.scale:
        results.update(scale_bench(a))
    if a.imagenet:
        results.update(imagenet_bench(a))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
