"""Token throughput of extraction on MiniLM against its bare forward pass (batch 32, CPU).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_text.py [--n 2000] [--repeats 2]

Both contenders tokenise the same built-in ``sentences`` corpus with the model's own
tokenizer and run the same batches. Extraction captures one row per real token for the
given layers (default: the six MLP intermediates, 1536 units each, float16 Zarr writes,
top-k, token table with word categories). Tokens per second counts the tokens stored
(special tokens excluded), the same count for both. Goal (issue 17): extraction >= 0.9 of
bare in full mode, >= 0.97 in summary mode; ``--modes full,summary`` times both side by
side, ``--profile`` prints where the CPU time per sentence goes (bench_extract.where_time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import neurocarta as nc  # noqa: E402
from neurocarta.models.text import load_minilm  # noqa: E402


def _bare(bundle, source, batch: int) -> float:
    n = len(source)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch):
            bundle.forward(bundle.preprocess(source.get(range(s, min(s + batch, n)))))
    return time.perf_counter() - t0


def _extract(bundle, source, batch: int, layers: list[str], out: Path, mode: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    atlas = nc.extract(bundle, source, out, layers=layers, batch_size=batch, overwrite=True, progress=False, mode=mode)
    return time.perf_counter() - t0, len(atlas.tokens)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--layers", nargs="+", default=["encoder.layer.*.intermediate"])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--quick", action="store_true", help="800 sentences, best of 2: about a minute when idle")
    p.add_argument("--modes", default="full,summary", help="extraction modes timed side by side")
    p.add_argument("--profile", action="store_true", help="print where the CPU time per sentence goes")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    if a.quick:
        a.n, a.repeats = 800, 2
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    bundle = load_minilm()
    source = nc.load_data(f"sentences:n={a.n}")
    _bare(bundle, nc.load_data("sentences:n=64"), a.batch)  # warm up
    modes = a.modes.split(",")
    bare, ext, tokens = [], {m: [] for m in modes}, 0
    bare_cpu, ext_cpu = [], {m: [] for m in modes}  # process CPU seconds, every thread
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):  # alternate, best of each
            c0 = time.process_time()
            bare.append(_bare(bundle, source, a.batch))
            bare_cpu.append(time.process_time() - c0)
            for m in modes:
                c0 = time.process_time()
                seconds, tokens = _extract(bundle, source, a.batch, a.layers, Path(tmp) / "a", m)
                ext[m].append(seconds)
                ext_cpu[m].append(time.process_time() - c0)
        result = {
            "model": "minilm", "sentences": a.n, "tokens": tokens, "batch": a.batch, "layers": a.layers,
            "threads": torch.get_num_threads(), "bare_tokens_per_s": round(tokens / min(bare), 1),
            "bare_cpu_ms_per_sentence": round(min(bare_cpu) / a.n * 1e3, 3),
        }
        for m in modes:
            result[f"{m}_tokens_per_s"] = round(tokens / min(ext[m]), 1)
            result[f"{m}_ratio"] = round(min(bare) / min(ext[m]), 3)
            # the ratio to trust when other work shares the cores
            result[f"{m}_cpu_ms_per_sentence"] = round(min(ext_cpu[m]) / a.n * 1e3, 3)
            result[f"{m}_cpu_ratio"] = round(min(bare_cpu) / min(ext_cpu[m]), 3)
        if a.profile:
            from bench_extract import where_time

            t0 = time.process_time()
            _bare(bundle, source, a.batch)
            bare_ms = (time.process_time() - t0) / a.n * 1e3
            for m in modes:
                print(f"minilm, {m} mode, per sentence:", flush=True)
                result[f"{m}_profile"] = where_time(
                    lambda: _extract(bundle, source, a.batch, a.layers, Path(tmp) / "p", m), a.n, bare_ms)
    print(json.dumps(result, indent=2))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
