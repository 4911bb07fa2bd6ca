"""Token throughput of extraction on MiniLM against its bare forward pass (batch 32, CPU).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_text.py [--n 2000] [--repeats 2]

Both contenders tokenise the same built-in ``sentences`` corpus with the model's own
tokenizer and run the same batches. Extraction captures one row per real token for the
given layers (default: the six MLP intermediates, 1536 units each, float16 Zarr writes,
top-k, token table with word categories). Tokens per second counts the tokens stored
(special tokens excluded), the same count for both. Goal: extraction >= 0.85 of bare.
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
    p.add_argument("--mode", choices=["full", "summary"], default="full")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch.manual_seed(0)
    bundle = load_minilm()
    source = nc.load_data(f"sentences:n={a.n}")
    _bare(bundle, nc.load_data("sentences:n=64"), a.batch)  # warm up
    bare, ext, tokens = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):  # alternate, best of each
            bare.append(_bare(bundle, source, a.batch))
            seconds, tokens = _extract(bundle, source, a.batch, a.layers, Path(tmp) / "a", a.mode)
            ext.append(seconds)
    result = {
        "model": "minilm", "sentences": a.n, "tokens": tokens, "batch": a.batch, "layers": a.layers, "mode": a.mode,
        "threads": torch.get_num_threads(),
        "bare_tokens_per_s": round(tokens / min(bare), 1),
        "extract_tokens_per_s": round(tokens / min(ext), 1),
        "ratio": round(min(bare) / min(ext), 3),
    }
    print(json.dumps(result, indent=2))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
