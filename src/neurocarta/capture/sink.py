"""The sink of an extraction: rows in, atlas out, only through :class:`AtlasWriter`.

For each run of inputs the runner collected (:class:`~.rows.Rows`), the sink updates the
streaming reductions (per-neuron top-k; in summary mode the group sums and the seeded
sample) and writes the rows: activation arrays in full mode, thumbnails, and the outputs
and token tables as Parquet parts. At the end of a snapshot it writes the top-k and group
sums. :class:`Reductions` is what a commit saves and a resume restores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..store import layout, schema
from ..store.manifest import LayerInfo
from ..store.writer import AtlasWriter
from ..streaming import GroupStatsAccumulator, TopKAccumulator
from .plan import ExtractionPlan
from .rows import Rows, plain

#: rows per storage chunk of the summary-mode sample arrays (at most)
SAMPLE_ROW_CHUNK = 256

#: sample rows a worker hands back for the coordinator to write: (array path, first row, rows)
SampleBlock = tuple[str, int, np.ndarray]


@dataclass
class Reductions:
    """The streaming state of one snapshot: top-k and group sums per layer (stats keys are
    ``layer\\0signal\\0column``), and how many token and token-sample rows are written."""

    topk: dict[str, TopKAccumulator] = field(default_factory=dict)
    stats: dict[str, GroupStatsAccumulator] = field(default_factory=dict)
    token_rows: int = 0
    sample_rows: int = 0

    @classmethod
    def from_state(cls, k: int, state: dict[str, Any] | None) -> "Reductions":
        if not state:
            return cls()
        return cls({name: TopKAccumulator.from_state(k, st) for name, st in state["topk"].items()},
                   {key: GroupStatsAccumulator.from_state(st) for key, st in state["stats"].items()},
                   int(state["token_rows"]), int(state["sample_rows"]))

    def state(self) -> dict[str, Any]:
        return {"topk": {k: v.state() for k, v in self.topk.items()},
                "stats": {k: v.state() for k, v in self.stats.items()},
                "token_rows": self.token_rows, "sample_rows": self.sample_rows}

    def merge_state(self, k: int, state: dict[str, Any]) -> None:
        """Fold in a partial state of other inputs (a shard's), exactly once."""
        for name, st in state["topk"].items():
            part = TopKAccumulator.from_state(k, st)
            if name in self.topk:
                self.topk[name].merge(part)
            else:
                self.topk[name] = part
        for key, st in state["stats"].items():
            part = GroupStatsAccumulator.from_state(st)
            if key in self.stats:
                self.stats[key].merge(part)
            else:
                self.stats[key] = part


class AtlasSink:
    """Writes a plan's rows and reductions into the atlas through ``writer``.

    ``keep_sample``: a distributed worker's sink keeps the sample rows of input layers
    (scattered rows of shared storage chunks) for the coordinator to write.
    """

    def __init__(self, plan: ExtractionPlan, writer: AtlasWriter, keep_sample: bool = False):
        self.plan = plan
        self.writer = writer
        self._kept_sample: list[SampleBlock] | None = [] if keep_sample else None

    # ------------------------------------------------------------------ arrays
    def prepare(self, snap: str, red: Reductions) -> None:
        """Create the snapshot's arrays at their final size (token arrays grow), or reopen them
        on a resume and cut the growable ones back to the committed rows of ``red``."""
        plan, o, w = self.plan, self.plan.opts, self.writer
        for info in plan.infos.values():
            rows_chunk = o.chunk_size * (4 if info.rows == "token" else 1)
            item = np.dtype(plan.store_dtype).itemsize
            cols_chunk = int(max(1, min(info.n_neurons, (16 << 20) // (rows_chunk * item))))
            n_rows = 0 if info.rows == "token" else plan.n
            if o.mode == "full":
                # Token rows of a layer (MiniLM's GELU units: 18 kB per token over 6 layers) are
                # dense, and zstd shrinks them only to ~0.9 at 3x the CPU cost of a raw write;
                # per-input arrays (ReLU maps with many zeros, far fewer bytes) stay compressed.
                compression = "none" if info.rows == "token" else "default"
                for sig in info.signals:
                    w.create_array(layout.acts(snap, info.name, sig), (n_rows, info.n_neurons),
                                   (rows_chunk, cols_chunk), plan.store_dtype, compression=compression)
                if info.kind == "conv":
                    w.create_array(layout.argmax(snap, info.name), (plan.n, info.n_neurons),
                                   (rows_chunk, cols_chunk), plan.argmax_dtype(info))
            else:
                base = layout.sample(snap, info.name)
                s_rows = 0 if info.rows == "token" else len(plan.sample_ids)
                # small row chunks: each chunk of inputs adds a scattered few sample rows, and a
                # write into part of a chunk rewrites all of it (4,096-row chunks cost 10x more).
                # Token samples start empty and grow: sized by their 0 rows they got 1-row chunks,
                # a file per token, and summary mode ran 10x slower than full on MiniLM.
                s_chunk = SAMPLE_ROW_CHUNK if info.rows == "token" else max(1, min(max(s_rows, 1), SAMPLE_ROW_CHUNK))
                for sig in info.signals:
                    w.create_array(f"{base}/{sig}", (s_rows, info.n_neurons), (s_chunk, cols_chunk),
                                   plan.store_dtype)
                w.create_array(f"{base}/rows", (s_rows,), (s_chunk,), np.int64, -1)
                if info.rows == "input" and s_rows:
                    w.write_rows(f"{base}/rows", 0, plan.sample_ids)
        if plan.source.modality == "image" and snap == plan.snapshots[0][0]:
            t = o.thumb_size
            # zstd level 1: as small as level 3 on thumbnails (0.273 vs 0.269 of raw on shapes) for 2/3 of the CPU
            w.create_array(layout.THUMBNAILS, (plan.n, t, t, 3), (plan.thumb_chunk(), t, t, 3), np.uint8,
                           compression="fast")
        for info in plan.infos.values():
            if info.rows != "token":
                continue
            for path in plan.row_arrays(snap, info):
                w.truncate_rows(path, red.token_rows)
            if o.mode == "summary":
                for sig in info.signals + ["rows"]:
                    w.truncate_rows(f"{layout.sample(snap, info.name)}/{sig}", red.sample_rows)

    # ------------------------------------------------------------------ rows
    def write(self, s_index: int, snap: str, rows: Rows, red: Reductions) -> None:
        """Update ``red`` with the rows of inputs ``[rows.start, rows.stop)`` and write them.

        Any input range works (a chunk, or the part of one a timed commit cuts): arrays are
        written by row, and table parts are named by their first input.
        """
        plan, o, w = self.plan, self.plan.opts, self.writer
        start, stop = rows.start, rows.stop
        outputs = rows.outputs_frame()
        tokens = rows.tokens_frame()
        n_tok = len(tokens) if tokens is not None else 0
        group_values = self._group_values(start, stop, outputs) if o.mode == "summary" else {}
        sample_rows_new = red.sample_rows
        writes: list[tuple[str, int, np.ndarray]] = []
        for name, info in plan.infos.items():
            arrays = rows.arrays(name)
            if info.rows == "token":
                row_ids = np.arange(red.token_rows, red.token_rows + n_tok, dtype=np.int64)
                row_inputs, positions = arrays["row_input"], arrays["row_pos"]
                pos2 = positions  # (rows,): the top-k keeps (position, -1) for every neuron
                row_start = red.token_rows
            else:
                row_ids = np.arange(start, stop, dtype=np.int64)
                row_inputs, pos2, row_start = row_ids, None, start
            if info.kind == "conv":
                am = arrays["argmax"].astype(np.int64)
                wdt = info.spatial[1]
                pos2 = np.stack([am // wdt, am % wdt], axis=-1)
            top_signal = "max" if info.kind == "conv" else "value"
            acc = red.topk.setdefault(name, TopKAccumulator(o.topk, info.n_neurons))
            acc.update(arrays[top_signal], row_ids, row_inputs, pos2)
            if o.mode == "full":
                for sig in info.signals:
                    writes.append((layout.acts(snap, name, sig), row_start,
                                   arrays[sig].astype(plan.store_dtype, copy=False)))
                if info.kind == "conv":
                    writes.append((layout.argmax(snap, name), row_start,
                                   arrays["argmax"].astype(plan.argmax_dtype(info))))
            else:
                sample_rows_new = self._write_sample(snap, info, arrays, row_ids, row_inputs, start, stop,
                                                     red.sample_rows)
                exact = {sig: arrays[sig].astype(np.float32) for sig in info.signals}  # float16 -> 32 is exact
                for col, values in group_values.items():
                    per_row = values[row_inputs - start]
                    for sig in info.signals:
                        red.stats.setdefault(f"{name}\x00{sig}\x00{col}",
                                             GroupStatsAccumulator(info.n_neurons)).update(per_row, exact[sig])
        if o.mode == "summary" and plan.has_token_rows:
            red.sample_rows = sample_rows_new  # same sampled tokens for every token layer
        if s_index == 0:
            if tokens is not None:
                tokens.insert(0, schema.ROW, np.arange(red.token_rows, red.token_rows + n_tok, dtype=np.int64))
                w.write_part("tokens", 0, start, tokens)
            if rows.thumbs:
                writes.append((layout.THUMBNAILS, start, np.concatenate(rows.thumbs)))
        w.write_many(writes)
        if outputs is not None:
            outputs.insert(0, schema.SNAPSHOT, snap)
            w.write_part("outputs", s_index, start, outputs)
        red.token_rows += n_tok

    def _write_sample(self, snap: str, info: LayerInfo, arrays: dict[str, np.ndarray], row_ids: np.ndarray,
                      row_inputs: np.ndarray, start: int, stop: int, sample_rows: int) -> int:
        """Write the seeded sample's rows among these; returns the token-sample rows now written."""
        plan = self.plan
        base = layout.sample(snap, info.name)
        if info.rows == "input":
            lo, hi = np.searchsorted(plan.sample_ids, [start, stop])
            if hi > lo:
                picked = plan.sample_ids[lo:hi] - start
                for sig in info.signals:
                    block = (f"{base}/{sig}", int(lo), arrays[sig][picked].astype(plan.store_dtype, copy=False))
                    if self._kept_sample is not None:
                        self._kept_sample.append(block)
                    else:
                        self.write_sample(*block)
            return sample_rows
        keep = np.isin(row_inputs, plan.sample_ids)
        for sig in info.signals:
            self.writer.write_rows(f"{base}/{sig}", sample_rows,
                                   arrays[sig][keep].astype(plan.store_dtype, copy=False))
        self.writer.write_rows(f"{base}/rows", sample_rows, row_ids[keep])
        return sample_rows + int(keep.sum())

    def write_sample(self, path: str, lo: int, rows: np.ndarray) -> None:
        """Write sample rows ``lo:lo+len(rows)`` (here, or merged from a worker's shard)."""
        self.writer.write_rows(path, lo, rows)

    def take_sample(self) -> list[SampleBlock]:
        """The sample rows kept since the last call (a worker's, see ``keep_sample``)."""
        kept, self._kept_sample = self._kept_sample or [], []
        return kept

    def _group_values(self, start: int, stop: int, outputs: pd.DataFrame | None) -> dict[str, np.ndarray]:
        table = self.plan.table
        out = {}
        for col in self.plan.group_cols:
            if col in (schema.PRED, schema.CORRECT) and col not in table.columns:
                if outputs is None:
                    continue
                values = outputs[col].to_numpy(dtype=object)
            else:
                values = table[col].iloc[start:stop].to_numpy(dtype=object)
            out[col] = np.array([plain(v) for v in values], dtype=object)
        return out

    # ------------------------------------------------------------------ summaries
    def write_summaries(self, snap: str, red: Reductions) -> None:
        """The snapshot's top-k and group sums, replacing any an interrupted run left."""
        w = self.writer
        for name, acc in red.topk.items():
            res = acc.result()
            base = layout.topk(snap, name)
            for field_name in ("values", "input_ids", "rows", "positions"):
                w.put_array(f"{base}/{field_name}", getattr(res, field_name))
        for key, acc in red.stats.items():
            name, sig, col = key.split("\x00")
            base = layout.stats(snap, name, sig, col)
            for field_name in ("count", "sum", "sumsq"):
                w.put_array(f"{base}/{field_name}", getattr(acc, field_name))
            w.set_attrs(base, {"groups": [plain(g) for g in acc.groups]})
