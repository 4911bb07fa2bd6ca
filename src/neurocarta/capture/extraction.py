"""The extraction pipeline: run a model over a data source and stream activations into an atlas.

The work is cut into chunks of ``chunk_size`` inputs. For each chunk the model runs batch by
batch with hooks on the chosen layers (the next batch is loaded and preprocessed in a
background thread meanwhile); the chunk's rows go to the store, the streaming top-k and
group sums are updated, and the writer commits. Memory is bounded by the batch and chunk
sizes, never by the data size. Rerunning the same command after a kill resumes from the
last commit.
"""

from __future__ import annotations

import datetime as _dt
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._version import __version__
from ..data import DataSource, limit_source, load_data
from ..errors import LayerError, NonFiniteError, UserError
from ..models import ModelBundle, ModelInputs, load_model
from ..store import layout
from ..store.atlas import Atlas, open_atlas
from ..store.location import as_location
from ..store.manifest import LayerInfo, Manifest
from ..store.writer import AtlasWriter
from ..streaming import GroupStatsAccumulator, TopKAccumulator
from .device import pick_device
from .hooks import Captured, LayerRecorder, check_finite, find_logits
from .links import find_link_modules, link_weights
from .receptive import receptive_fields
from .layers import LayerRef, resolve_layers
from .snapshots import resolve_snapshots
from . import distributed

MODES = ("full", "summary")
POOLINGS = (None, "mean", "max", "cls")
# Columns never used as default groups: identifiers and free text.
_NOT_GROUPS = {"input_id", "source_index", "text", "path", "label_name", "tokens"}


@dataclass
class ExtractOptions:
    """Extraction parameters (see :func:`extract`)."""

    layers: list[str] | None = None
    batch_size: int = 64
    device: str = "auto"
    limit: int | None = None
    topk: int = 100
    mode: str = "full"
    snapshots: Any = None
    seed: int = 0
    chunk_size: int = 1024
    dtype: str = "float16"
    pool: str | None = None
    special_tokens: bool = False
    group_by: list[str] | None = None
    sample_size: int = 50_000
    max_layer_bytes: float = 8e9
    thumb_size: int = 64
    overwrite: bool = False
    trust: bool = False
    progress: bool = True
    workers: int | None = None
    scheduler: Any = None
    shard_size: int | None = None

    def check(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"--mode must be full or summary, not {self.mode!r}")
        if self.pool not in POOLINGS:
            raise UserError(f"--pool must be mean, max or cls, not {self.pool!r}")
        if self.dtype not in ("float16", "float32"):
            raise UserError(f"--dtype must be float16 or float32, not {self.dtype!r}")
        for name in ("batch_size", "topk", "chunk_size", "sample_size", "thumb_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.chunk_size < self.batch_size:
            self.chunk_size = self.batch_size
        if self.workers is not None and self.workers < 1:
            raise UserError("--workers must be at least 1")
        if self.workers is not None and self.scheduler is not None:
            raise UserError("pass --workers (a local cluster) or --scheduler (an existing one), not both")
        if self.shard_size is not None and (self.shard_size < 1 or self.shard_size % self.chunk_size):
            raise UserError(f"--shard-size must be a positive multiple of --chunk-size ({self.chunk_size}), "
                            "so that no two workers write one storage chunk")

    @property
    def distributed(self) -> bool:
        return self.workers is not None or self.scheduler is not None


def extract(model: Any, data: Any, out: str | Path, layers: list[str] | None = None,
            **options: Any) -> Atlas:
    """Capture the activations of ``layers`` of ``model`` over ``data`` into the atlas ``out``.

    Parameters
    ----------
    model : a model spec (``"demo-cnn"``, ``"efficientnet-lite0"``, ``"minilm"``,
        ``"py:pkg.mod:fn"``...), a :class:`~neurocarta.models.ModelBundle` or an ``nn.Module``.
    data : a data spec (``"shapes"``, ``"text:corpus.txt"``...) or a DataSource.
    out : the atlas folder or an fsspec URL (``memory://``, ``s3://``, ``gs://``). An
        unfinished atlas there with the same settings is resumed.
    layers : module names or globs (``*`` stays inside one name part, ``**`` crosses dots);
        default: the model's own default layers.
    **options : see :class:`ExtractOptions`: ``batch_size``, ``device``, ``limit``, ``topk``,
        ``mode`` (``"full"`` or ``"summary"``), ``snapshots`` (glob or list of state-dict
        files), ``seed``, ``chunk_size``, ``dtype``, ``pool`` (sequence layers: ``mean``,
        ``max``, ``cls``), ``special_tokens``, ``group_by``, ``sample_size``,
        ``max_layer_bytes``, ``thumb_size``, ``overwrite``, ``trust``, ``progress``;
        scale-out (docs/scale.md): ``workers`` (a local Dask cluster of that many processes),
        ``scheduler`` (an address or a ``distributed.Client``), ``shard_size`` (inputs per task).

    Returns
    -------
    The complete :class:`~neurocarta.store.atlas.Atlas`.
    """
    opts = ExtractOptions(layers=layers, **options)
    opts.check()
    return Extraction(model, data, out, opts).run()


class Extraction:
    """One extraction run; see the module docstring for the flow."""

    def __init__(self, model: Any, data: Any, out: "str | Path", opts: ExtractOptions):
        self.opts = opts
        self.out = as_location(out)
        self.model_spec, self.data_spec = model, data  # what distributed workers rebuild from
        self._sample_out: list | None = None  # a worker's sample rows, for the coordinator to write
        full_source = load_data(data)
        self.source: DataSource = limit_source(full_source, opts.limit, opts.seed)
        self.bundle: ModelBundle = load_model(model, data=full_source, trust=opts.trust,
                                              progress=opts.progress)
        if self.bundle.modality != self.source.modality and not (
                self.bundle.modality == "array" and self.source.modality == "image"):
            raise UserError(
                f"model {self.bundle.spec!r} takes {self.bundle.modality} inputs but data "
                f"{self.source.spec!r} is {self.source.modality}; pair image models with image data "
                "and text models with text data"
            )
        self.device = pick_device(opts.device)
        self.module = self.bundle.module.to(self.device).eval()
        patterns = opts.layers or self.bundle.default_layers
        if not patterns:
            raise UserError("no layers chosen; pass --layers (run `neurocarta layers --model ...` to list them)")
        self.refs: list[LayerRef] = resolve_layers(self.module, list(patterns))
        self.snapshots = resolve_snapshots(opts.snapshots)
        self.table = self.source.table().reset_index(drop=True)
        self.n = len(self.table)
        self.labels = (self.table["label"].to_numpy(np.int64) if "label" in self.table.columns else None)
        self.store_dtype = np.float16 if opts.dtype == "float16" else np.float32

    # ------------------------------------------------------------------ setup
    def _probe(self) -> tuple[list[LayerInfo], bool]:
        """Run one input to learn every layer's output kind and shape."""
        inputs = self.bundle.preprocess(self.source.get([0])).to(self.device)
        with torch.no_grad(), LayerRecorder(self.module, self.refs) as rec:
            output = self.bundle.forward(inputs)
        infos = []
        for ref in self.refs:
            cap = rec.captured.get(ref.name)
            if cap is None:
                raise LayerError(f"layer {ref.name!r} did not run in the forward pass; pick a layer the model uses")
            rows = "token" if cap.kind == "sequence" and self.opts.pool is None else "input"
            shape = list(cap.shape)
            n_neurons = shape[0] if cap.kind == "conv" else shape[-1]
            infos.append(LayerInfo(
                name=ref.name, kind=cap.kind, output_shape=shape, n_neurons=int(n_neurons), rows=rows,
                pooling=self.opts.pool if cap.kind == "sequence" else None,
                spatial=shape[1:] if cap.kind == "conv" else None,
            ))
        return infos, find_logits(output) is not None

    def _check_size(self, infos: list[LayerInfo]) -> None:
        if self.opts.mode != "full":
            return
        item = np.dtype(self.store_dtype).itemsize
        for info in infos:
            rows = self.n * (info.output_shape[0] if info.rows == "token" else 1)
            if info.kind == "conv":  # mean + max + argmax
                per = 2 * item + (2 if np.prod(info.spatial) < 65536 else 4)
            else:
                per = item
            size = rows * info.n_neurons * per
            if size > self.opts.max_layer_bytes:
                raise UserError(
                    f"layer {info.name!r} would take {size / 1e9:.1f} GB in full mode (limit "
                    f"{self.opts.max_layer_bytes / 1e9:.1f} GB); pass --mode summary, or raise --max-layer-gb"
                )

    def _group_columns(self, has_logits: bool) -> list[str]:
        if self.opts.group_by is not None:
            missing = [c for c in self.opts.group_by if c not in self.table.columns
                       and not (has_logits and c in ("pred", "correct"))]
            if missing:
                raise UserError(f"--group-by column(s) {', '.join(missing)} not in the input table; "
                                f"it has: {', '.join(map(str, self.table.columns))}")
            return list(self.opts.group_by)
        cols = []
        for c in self.table.columns:
            if c in _NOT_GROUPS:
                continue
            s = self.table[c]
            if s.dtype.kind in "OUSb" or str(s.dtype) in ("category", "string", "boolean", "str") or (
                    s.dtype.kind in "iu" and s.nunique() <= 100):
                if s.nunique() <= 1000:
                    cols.append(str(c))
        if has_logits and self.labels is not None:
            cols += ["pred", "correct"]
        elif has_logits:
            cols += ["pred"]
        return cols

    def _manifest(self, infos: list[LayerInfo], group_cols: list[str]) -> Manifest:
        o = self.opts
        params = {
            "mode": o.mode, "topk": o.topk, "seed": o.seed, "limit": o.limit, "chunk_size": o.chunk_size,
            "dtype": o.dtype, "pool": o.pool, "special_tokens": o.special_tokens,
            "group_by": group_cols if o.mode == "summary" else None,
            "sample_size": min(o.sample_size, self.n) if o.mode == "summary" else None,
            "thumb_size": o.thumb_size if self.source.modality == "image" else None,
            "batch_size": o.batch_size, "device": str(self.device),
        }
        info = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                for k, v in self.bundle.info.items() if k != "checkpoints"}
        return Manifest(
            model={"spec": self.bundle.spec, "class_names": self.bundle.class_names, "info": info,
                   "input_size": getattr(self, "input_size", None)},
            data={"spec": self.source.spec, "modality": self.source.modality,
                  "class_names": self.source.class_names},
            layers=infos,
            snapshots=[{"name": n, "path": str(p) if p else None} for n, p in self.snapshots],
            params=params, n_inputs=self.n,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            neurocarta_version=__version__,
        )

    # ------------------------------------------------------------------ run
    def run(self) -> Atlas:
        # A cluster starts first, and its workers import torch and neurocarta while this
        # process probes the model and prepares the atlas (capture/distributed.py).
        with distributed.cluster(self.opts) as client:
            # held for the run: Dask cancels the tasks of futures nobody holds
            self._warming = distributed.warm_up(client) if client is not None else []
            return self._run(client)

    def _run(self, client: Any) -> Atlas:
        infos, has_logits = self._probe()
        self._check_size(infos)
        self.input_size = self._record_receptive_fields(infos)
        self.infos = {i.name: i for i in infos}
        self.has_logits = has_logits
        self.link_modules = self._find_links()
        self.group_cols = self._group_columns(has_logits) if self.opts.mode == "summary" else []
        if self.opts.distributed:
            distributed.check_supported(self)
        manifest = self._manifest(infos, self.group_cols)
        self.writer = AtlasWriter.open(self.out, manifest, self.table, overwrite=self.opts.overwrite)
        if self.writer.complete:
            print(f"{self.out} is already complete; nothing to do (pass --overwrite to redo it)", file=sys.stderr)
            return open_atlas(self.out)
        self.sample_ids = self._sample_ids()
        progress = self.writer.progress
        start_snap = int(progress.get("snapshot", 0))
        total = self.n * len(self.snapshots)
        bar = tqdm(total=total, initial=start_snap * self.n + int(progress.get("n_done", 0)), unit="input",
                   unit_scale=True, disable=not self.opts.progress, dynamic_ncols=True, desc="extract")
        token_rows = 0
        try:
            for s_index in range(start_snap, len(self.snapshots)):
                name, path = self.snapshots[s_index]
                if path is not None:
                    self._load_snapshot(path)
                self.writer.write_links(name, link_weights(self.module, self.link_modules))
                bar.set_postfix_str(f"snapshot {name}")
                token_rows = self._run_snapshot(s_index, name, bar, client)
        finally:
            bar.close()
        n_rows = {i.name: (token_rows if i.rows == "token" else self.n) for i in infos}
        self.writer.finish(n_rows)
        return open_atlas(self.out)

    def _sample_ids(self) -> np.ndarray | None:
        """The seeded row sample of summary mode (every process draws the same one)."""
        if self.opts.mode != "summary":
            return None
        rng = np.random.default_rng([self.opts.seed, 1])
        return np.sort(rng.choice(self.n, size=min(self.opts.sample_size, self.n), replace=False))

    def attach_worker(self) -> None:
        """Set this extraction up as a worker of a distributed run (capture/distributed.py):
        layers and groups come from the manifest the coordinator wrote."""
        self.writer = AtlasWriter.attach(self.out)
        manifest = self.writer.manifest
        self.infos = {i.name: i for i in manifest.layers}
        self.group_cols = list(manifest.params.get("group_by") or [])
        self.sample_ids = self._sample_ids()
        self._argmax_dtype = self._argmax_dtypes()

    def _find_links(self) -> dict[tuple[str, str], str]:
        """The conv/linear module joining each consecutive layer pair (capture/links.py).

        Links only refine the concept graph's edges (co-activation is the fallback), so a
        model whose structure defeats discovery still extracts, with a warning.
        """
        inputs = self.bundle.preprocess(self.source.get([0])).to(self.device)
        try:
            return find_link_modules(self.module, inputs, [r.name for r in self.refs])
        except Exception as e:  # noqa: BLE001 - any model quirk; the atlas stays valid without links
            warnings.warn(f"no weight links recorded ({e.__class__.__name__}: {e}); "
                          "concept graphs will use co-activation edges", stacklevel=2)
            return {}

    def _record_receptive_fields(self, infos: list[LayerInfo]) -> list[int] | None:
        """Measure each conv layer's receptive field into its LayerInfo (capture/receptive.py)
        and return the model's (H, W) input size, which exemplar patches scale from.

        Fields only size the exemplar crops, so any failure warns and records None.
        """
        convs = [r for r in self.refs if self._conv_info(infos, r.name)]
        if not convs:
            return None
        try:
            inputs = self.bundle.preprocess(self.source.get([0])).to(self.device)
            fields = receptive_fields(self.module, convs, inputs.args,
                                      forward=lambda x: self.bundle.forward(ModelInputs(x)))
        except Exception as e:  # noqa: BLE001 - any model quirk; the atlas stays valid without fields
            warnings.warn(f"no receptive fields recorded ({e.__class__.__name__}: {e}); "
                          "exemplar patches will be 3 feature cells wide", stacklevel=2)
            return None
        for ref in convs:
            self._conv_info(infos, ref.name).receptive_field = fields.get(ref.name)
        return [int(v) for v in inputs.args.shape[2:]]

    @staticmethod
    def _conv_info(infos: list[LayerInfo], name: str) -> LayerInfo | None:
        return next((i for i in infos if i.name == name and i.kind == "conv"), None)

    def _load_snapshot(self, path: Path) -> None:
        try:
            self.bundle.load_snapshot(self.module, path)
        except (RuntimeError, OSError, KeyError) as e:
            raise UserError(f"cannot load snapshot {path} into {self.bundle.spec}: "
                            f"{str(e).splitlines()[0]}; snapshots must be state dicts of the same architecture") from e
        self.module.to(self.device).eval()

    def _new_state(self) -> dict[str, Any]:
        return {"topk": {}, "stats": {}, "token_rows": 0, "sample_rows": 0}

    def _resume_point(self, s_index: int) -> tuple[dict[str, Any], list[list[int]]]:
        """The committed accumulator state of snapshot ``s_index`` and the input ranges done."""
        progress = self.writer.progress
        if int(progress.get("snapshot", 0)) != s_index or not int(progress.get("n_done", 0)):
            return self._new_state(), []
        state = self.writer.load_state() or self._new_state()
        done = progress.get("shards") or [[0, int(progress["n_done"])]]
        return state, [list(map(int, r)) for r in done]

    def _chunks_to_do(self, done: list[list[int]]) -> list[tuple[int, int]]:
        step = self.opts.chunk_size
        return [(a, min(a + step, self.n)) for a in range(0, self.n, step)
                if not any(lo <= a < hi for lo, hi in done)]

    def _run_snapshot(self, s_index: int, snap: str, bar: tqdm, client: Any = None) -> int:
        o = self.opts
        state, done = self._resume_point(s_index)
        topk = {name: TopKAccumulator.from_state(o.topk, st) for name, st in state["topk"].items()}
        stats = {key: GroupStatsAccumulator.from_state(st) for key, st in state["stats"].items()}
        token_rows, sample_rows = int(state["token_rows"]), int(state["sample_rows"])
        self._create_arrays(snap)
        for info in self.infos.values():
            if info.rows == "token":
                for path in self._row_arrays(snap, info):
                    self.writer.truncate_rows(path, token_rows)
            if info.rows == "token" and o.mode == "summary":
                for sig in info.signals + ["rows"]:
                    self.writer.truncate_rows(f"{layout.sample(snap, info.name)}/{sig}", sample_rows)
        todo = self._chunks_to_do(done)

        def state_now() -> dict[str, Any]:
            return {"topk": {k: v.state() for k, v in topk.items()},
                    "stats": {k: v.state() for k, v in stats.items()},
                    "token_rows": token_rows, "sample_rows": sample_rows}

        def commit(state: dict[str, Any], ranges: list[list[int]]) -> None:
            self.writer.commit(s_index, sum(hi - lo for lo, hi in ranges), state, shards=ranges)

        if client is not None:
            for (a, b), result in distributed.run_shards(self, client, s_index, todo):
                distributed.merge_shard(self, snap, result, topk, stats)
                done = distributed.coalesce(done + [[a, b]])
                commit(state_now(), done)
                bar.update(b - a)
        else:
            # The loader thread prepares the next batch while the model runs; storing stays in
            # this thread. (A store thread was measured slower on 2 cores, and writing chunk i
            # while chunk i+1 runs gained nothing on MiniLM: the forward pass already uses both
            # cores, see docs/benchmarks.md.)
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="neurocarta-load") as pool:
                for c_start, c_stop in todo:
                    chunk = self._run_chunk(c_start, c_stop, pool, first_snapshot=s_index == 0)
                    token_rows, sample_rows = self._store_chunk(
                        s_index, snap, c_start, c_stop, chunk, topk, stats, token_rows, sample_rows)
                    done = distributed.coalesce(done + [[c_start, c_stop]])
                    commit(state_now(), done)
                    bar.update(c_stop - c_start)
        self._store_summaries(snap, topk, stats)
        if s_index + 1 < len(self.snapshots):
            self.writer.commit(s_index + 1, 0, self._new_state())
        return token_rows

    def run_shard(self, s_index: int, snap: str, start: int, stop: int) -> dict[str, Any]:
        """Run inputs ``[start, stop)`` of one snapshot on a worker: write their rows into the
        atlas (whole storage chunks only) and return the partial reductions to merge."""
        topk: dict[str, TopKAccumulator] = {}
        stats: dict[str, GroupStatsAccumulator] = {}
        self._sample_out = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="neurocarta-load") as pool:
            for c_start in range(start, stop, self.opts.chunk_size):
                c_stop = min(c_start + self.opts.chunk_size, stop)
                chunk = self._run_chunk(c_start, c_stop, pool, first_snapshot=s_index == 0)
                self._store_chunk(s_index, snap, c_start, c_stop, chunk, topk, stats, 0, 0)
        sample, self._sample_out = self._sample_out, None
        return {"topk": {k: v.state() for k, v in topk.items()},
                "stats": {k: v.state() for k, v in stats.items()}, "sample": sample}

    # ------------------------------------------------------------------ arrays
    def _row_arrays(self, snap: str, info: LayerInfo) -> list[str]:
        paths = [layout.acts(snap, info.name, s) for s in info.signals] if self.opts.mode == "full" else []
        if info.kind == "conv" and self.opts.mode == "full":
            paths.append(layout.argmax(snap, info.name))
        return paths

    def _argmax_dtypes(self) -> dict[str, type]:
        return {info.name: (np.uint16 if int(np.prod(info.spatial)) < 65536 else np.uint32)
                for info in self.infos.values() if info.kind == "conv"}

    def thumb_chunk(self) -> int:
        """Thumbnail rows per storage chunk: the largest divisor of the chunk size up to 256,
        so that chunks (and so shards) of inputs always cover whole thumbnail chunks."""
        return max(d for d in range(1, min(256, self.opts.chunk_size) + 1) if self.opts.chunk_size % d == 0)

    def _create_arrays(self, snap: str) -> None:
        o = self.opts
        self._argmax_dtype = self._argmax_dtypes()
        for info in self.infos.values():
            rows_chunk = o.chunk_size * (4 if info.rows == "token" else 1)
            item = np.dtype(self.store_dtype).itemsize
            cols_chunk = int(max(1, min(info.n_neurons, (16 << 20) // (rows_chunk * item))))
            n_rows = 0 if info.rows == "token" else self.n
            if o.mode == "full":
                for sig in info.signals:
                    self.writer.create_array(layout.acts(snap, info.name, sig), (n_rows, info.n_neurons),
                                             (rows_chunk, cols_chunk), self.store_dtype)
                if info.kind == "conv":
                    self.writer.create_array(layout.argmax(snap, info.name), (self.n, info.n_neurons),
                                             (rows_chunk, cols_chunk), self._argmax_dtype[info.name])
            else:
                base = layout.sample(snap, info.name)
                s_rows = 0 if info.rows == "token" else len(self.sample_ids)
                # small row chunks: each chunk of inputs adds a scattered few sample rows, and a
                # write into part of a chunk rewrites all of it (4,096-row chunks cost 10x more)
                s_chunk = max(1, min(max(s_rows, 1), 256))
                for sig in info.signals:
                    self.writer.create_array(f"{base}/{sig}", (s_rows, info.n_neurons),
                                             (s_chunk, cols_chunk), self.store_dtype)
                rows = self.writer.create_array(f"{base}/rows", (s_rows,), (s_chunk,), np.int64, -1)
                if info.rows == "input" and s_rows:
                    rows[:] = self.sample_ids
        if self.source.modality == "image" and snap == self.snapshots[0][0]:
            t = o.thumb_size
            self.writer.create_array(layout.THUMBNAILS, (self.n, t, t, 3), (self.thumb_chunk(), t, t, 3), np.uint8)

    # ------------------------------------------------------------------ forward
    def _load_batch(self, b_start: int, b_stop: int) -> tuple[list[Any], Any]:
        items = self.source.get(np.arange(b_start, b_stop))
        return items, self.bundle.preprocess(items)

    def _run_chunk(self, c_start: int, c_stop: int, pool: ThreadPoolExecutor,
                   first_snapshot: bool) -> "ChunkBuffer":
        bs = self.opts.batch_size
        starts = list(range(c_start, c_stop, bs))
        buf = ChunkBuffer(first_snapshot=first_snapshot)
        token_rows = any(i.rows == "token" for i in self.infos.values())
        future = pool.submit(self._load_batch, starts[0], min(starts[0] + bs, c_stop))
        with torch.no_grad(), LayerRecorder(self.module, self.refs) as rec:
            for i, b_start in enumerate(starts):
                b_stop = min(b_start + bs, c_stop)
                items, inputs = future.result()
                if i + 1 < len(starts):
                    nxt = starts[i + 1]
                    future = pool.submit(self._load_batch, nxt, min(nxt + bs, c_stop))
                rec.clear()
                mask = self._token_mask(inputs)
                rec.row_mask = mask if token_rows else None
                output = self.bundle.forward(inputs.to(self.device))
                ids = np.arange(b_start, b_stop, dtype=np.int64)
                self._collect(buf, rec.captured, inputs, mask, ids, find_logits(output), items)
        return buf

    def _token_mask(self, inputs: Any) -> torch.Tensor | None:
        """The (B, T) tokens that are recorded (real tokens, special ones when asked); None
        for inputs that are not token sequences. Token layers' hooks copy only these rows."""
        if inputs.attention_mask is None:
            return None
        mask = inputs.attention_mask.bool()
        if inputs.special_tokens_mask is not None and not self.opts.special_tokens:
            mask = mask & ~inputs.special_tokens_mask.bool()
        return mask

    def _collect(self, buf: "ChunkBuffer", captured: dict[str, Captured], inputs: Any, mask: torch.Tensor | None,
                 ids: np.ndarray, logits: torch.Tensor | None, items: list[Any]) -> None:
        row_mask = mask.cpu().numpy() if mask is not None else None
        for name, info in self.infos.items():
            cap = captured[name]
            if cap.kind == "conv":
                mean, mx = self._rounded(name, cap.mean, ids), self._rounded(name, cap.max, ids)
                buf.add(name, mean=mean, max=mx, argmax=cap.argmax)
            elif cap.kind == "dense":
                buf.add(name, value=self._rounded(name, cap.value, ids))
            else:
                buf.add(name, **self._sequence_rows(name, info, cap, row_mask, ids))
        if row_mask is not None:  # text inputs: always record the tokens
            b_idx, pos = np.nonzero(row_mask)
            frame = pd.DataFrame({
                "input_id": ids[b_idx], "position": pos.astype(np.int32),
                "token_id": inputs.token_ids.cpu().numpy()[b_idx, pos].astype(np.int64),
                "token": [inputs.tokens[b][p] for b, p in zip(b_idx, pos)],
            })
            if inputs.offsets is not None:
                frame["token_start"] = inputs.offsets[b_idx, pos, 0].astype(np.int32)
                frame["token_end"] = inputs.offsets[b_idx, pos, 1].astype(np.int32)
                if self.source.span_attributes:
                    special = (inputs.special_tokens_mask.cpu().numpy().astype(bool)[b_idx, pos]
                               if inputs.special_tokens_mask is not None else np.zeros(len(b_idx), bool))
                    attrs = token_attributes(self.source.spans(ids), self.source.span_attributes,
                                             self.source.span_fill, b_idx, frame["token_start"].to_numpy(),
                                             frame["token_end"].to_numpy(), special)
                    for k, v in attrs.items():
                        frame[k] = v
            buf.tokens.append(frame)
            if inputs.truncated is not None and inputs.truncated.any():
                cut = ids[np.asarray(inputs.truncated, dtype=bool)]
                limit = self.bundle.info.get("max_length", "its maximum")
                warnings.warn(f"{len(cut)} text(s) longer than the model's maximum of {limit} tokens were "
                              f"truncated (input ids {', '.join(map(str, cut[:5]))}{', ...' if len(cut) > 5 else ''}); "
                              "only their first tokens are recorded", stacklevel=2)
        if logits is not None:
            buf.outputs.append(self._outputs(logits, ids))
        if self.source.modality == "image" and buf.first_snapshot:
            buf.thumbs.append(np.stack([thumbnail(im, self.opts.thumb_size) for im in items]))

    def _sequence_rows(self, name: str, info: LayerInfo, cap: Captured, row_mask: np.ndarray | None,
                       ids: np.ndarray) -> dict[str, np.ndarray]:
        value = cap.value
        mask = row_mask if row_mask is not None else np.ones(value.shape[:2], dtype=bool)
        pool = info.pooling
        if pool is None:
            b_idx, pos = np.nonzero(mask)
            rows = self._rounded(name, value if cap.selected else value[b_idx, pos], ids[b_idx])
            return {"value": rows, "row_input": ids[b_idx], "row_pos": pos.astype(np.int32)}
        if pool == "cls":
            pooled = value[:, 0]
        elif pool == "mean":
            w = mask[:, :, None].astype(np.float32)
            pooled = (value * w).sum(1) / np.maximum(w.sum(1), 1.0)
        else:
            pooled = np.where(mask[:, :, None], value, -np.inf).max(1)
            pooled[~mask.any(1)] = 0.0
        return {"value": self._rounded(name, pooled, ids)}

    def _rounded(self, name: str, x: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Round to the storage dtype once, so every downstream statistic (top-k, group
        sums) sees exactly the stored values; one finiteness pass catches NaN, Inf and
        float16 overflow together."""
        # torch converts and checks on all cores; numpy's astype and isfinite use one
        t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float16 if self.store_dtype == np.float16 else torch.float32)
        r = t.numpy()
        if not bool(torch.isfinite(t).all()):
            check_finite(name, x, ids)  # raises for NaN or Inf in the layer output itself
            raise NonFiniteError(f"layer {name!r} has activations beyond the float16 range (|x| > 65504); "
                                 "pass --dtype float32")
        return r

    def _outputs(self, logits: torch.Tensor, ids: np.ndarray) -> dict[str, np.ndarray]:
        """pred, confidence, and (when labels match the model's classes) loss and correct.

        Plain arrays per batch; the chunk builds one DataFrame (see :func:`_outputs_frame`).
        """
        logits = logits.float().cpu()
        conf, pred = logits.softmax(dim=1).max(dim=1)
        out = {"input_id": ids, "pred": pred.numpy().astype(np.int64), "confidence": conf.numpy()}
        n_classes = len(self.source.class_names or [])
        if self.labels is not None and n_classes == logits.shape[1]:
            labels = self.labels[ids]
            known = labels >= 0
            loss = F.cross_entropy(logits, torch.from_numpy(np.maximum(labels, 0)), reduction="none").numpy()
            out["loss"] = np.where(known, loss, np.nan).astype(np.float32)
            out["correct"] = np.where(known, (out["pred"] == labels).astype(np.int8), -1)
        else:
            out["loss"] = np.full(len(ids), np.nan, dtype=np.float32)
            out["correct"] = np.full(len(ids), -1, dtype=np.int8)
        return out

    # ------------------------------------------------------------------ store
    def _store_chunk(self, s_index: int, snap: str, c_start: int, c_stop: int, buf: "ChunkBuffer",
                     topk: dict, stats: dict, token_rows: int, sample_rows: int) -> tuple[int, int]:
        """Update the reductions with one chunk and write its rows."""
        o = self.opts
        w = self.writer
        outputs = _outputs_frame(buf.outputs) if buf.outputs else None
        tokens = pd.concat(buf.tokens, ignore_index=True) if buf.tokens else None
        n_tok = len(tokens) if tokens is not None else 0
        group_values = self._group_values(c_start, c_stop, outputs) if o.mode == "summary" else {}
        sample_rows_new = sample_rows
        writes: list[tuple[str, int, np.ndarray]] = []
        for name, info in self.infos.items():
            arrays = buf.arrays(name)
            if info.rows == "token":
                rows = np.arange(token_rows, token_rows + n_tok, dtype=np.int64)
                row_inputs, positions = arrays["row_input"], arrays["row_pos"]
                pos2 = positions  # (rows,): the top-k keeps (position, -1) for every neuron
                row_start = token_rows
            else:
                rows = np.arange(c_start, c_stop, dtype=np.int64)
                row_inputs, pos2, row_start = rows, None, c_start
            if info.kind == "conv":
                am = arrays["argmax"].astype(np.int64)
                wdt = info.spatial[1]
                pos2 = np.stack([am // wdt, am % wdt], axis=-1)
            top_signal = "max" if info.kind == "conv" else "value"
            acc = topk.setdefault(name, TopKAccumulator(o.topk, info.n_neurons))
            acc.update(arrays[top_signal], rows, row_inputs, pos2)
            if o.mode == "full":
                for sig in info.signals:
                    writes.append((layout.acts(snap, name, sig), row_start,
                                   arrays[sig].astype(self.store_dtype, copy=False)))
                if info.kind == "conv":
                    path = layout.argmax(snap, name)
                    writes.append((path, row_start, arrays["argmax"].astype(self._argmax_dtype[name])))
            else:
                sample_rows_new = self._store_sample(snap, info, arrays, rows, row_inputs, c_start, c_stop,
                                                     sample_rows)
                exact = {sig: arrays[sig].astype(np.float32) for sig in info.signals}  # float16 -> 32 is exact
                for col, values in group_values.items():
                    per_row = values[row_inputs - c_start]
                    for sig in info.signals:
                        stats.setdefault(f"{name}\x00{sig}\x00{col}",
                                         GroupStatsAccumulator(info.n_neurons)).update(per_row, exact[sig])
        if o.mode == "summary" and any(i.rows == "token" for i in self.infos.values()):
            sample_rows = sample_rows_new  # same sampled tokens for every token layer
        if s_index == 0:
            if tokens is not None:
                tokens.insert(0, "row", np.arange(token_rows, token_rows + n_tok, dtype=np.int64))
                w.write_part("tokens", 0, c_start, tokens)
            if buf.thumbs:
                writes.append((layout.THUMBNAILS, c_start, np.concatenate(buf.thumbs)))
        w.write_many(writes)
        if outputs is not None:
            outputs.insert(0, "snapshot", snap)
            w.write_part("outputs", s_index, c_start, outputs)
        return token_rows + n_tok, sample_rows

    def _store_sample(self, snap: str, info: LayerInfo, arrays: dict, rows: np.ndarray, row_inputs: np.ndarray,
                      c_start: int, c_stop: int, sample_rows: int) -> int:
        base = layout.sample(snap, info.name)
        if info.rows == "input":
            lo, hi = np.searchsorted(self.sample_ids, [c_start, c_stop])
            if hi > lo:
                picked = self.sample_ids[lo:hi] - c_start
                for sig in info.signals:
                    rows_out = arrays[sig][picked].astype(self.store_dtype, copy=False)
                    if self._sample_out is not None:  # a worker: the coordinator writes
                        self._sample_out.append((f"{base}/{sig}", int(lo), rows_out))
                    else:
                        self.writer.array(f"{base}/{sig}")[lo:hi] = rows_out
            return sample_rows
        keep = np.isin(row_inputs, self.sample_ids)
        for sig in info.signals:
            self.writer.write_rows(f"{base}/{sig}", sample_rows, arrays[sig][keep].astype(self.store_dtype, copy=False))
        self.writer.write_rows(f"{base}/rows", sample_rows, rows[keep])
        return sample_rows + int(keep.sum())

    def _group_values(self, c_start: int, c_stop: int, outputs: pd.DataFrame | None) -> dict[str, np.ndarray]:
        out = {}
        for col in self.group_cols:
            if col in ("pred", "correct") and col not in self.table.columns:
                if outputs is None:
                    continue
                values = outputs[col].to_numpy(dtype=object)
                values = np.array([None if v is pd.NA else v for v in values], dtype=object)
            else:
                values = self.table[col].iloc[c_start:c_stop].to_numpy(dtype=object)
            out[col] = np.array([_plain(v) for v in values], dtype=object)
        return out

    def _store_summaries(self, snap: str, topk: dict, stats: dict) -> None:
        w = self.writer
        for name, acc in topk.items():
            res = acc.result()
            base = layout.topk(snap, name)
            for field_name in ("values", "input_ids", "rows", "positions"):
                arr = getattr(res, field_name)
                path = f"{base}/{field_name}"
                if path in w.group:
                    del w.group[path]
                w.group.create_array(path, shape=arr.shape, chunks=arr.shape or (1,), dtype=arr.dtype)[...] = arr
        for key, acc in stats.items():
            name, sig, col = key.split("\x00")
            base = layout.stats(snap, name, sig, col)
            for field_name in ("count", "sum", "sumsq"):
                arr = getattr(acc, field_name)
                path = f"{base}/{field_name}"
                if path in w.group:
                    del w.group[path]
                w.group.create_array(path, shape=arr.shape, chunks=arr.shape, dtype=arr.dtype)[...] = arr
            w.group[base].attrs["groups"] = [_plain(g) for g in acc.groups]


def _outputs_frame(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    correct = cols.pop("correct")
    df = pd.DataFrame(cols)
    df["correct"] = pd.array(correct == 1, dtype="boolean")
    df.loc[correct < 0, "correct"] = pd.NA
    return df


def _plain(v: Any) -> Any:
    """A JSON- and dict-friendly scalar: numpy scalars become Python ones, NA becomes None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


@dataclass
class ChunkBuffer:
    """Per-layer arrays of the batches of one chunk, plus table rows and thumbnails."""

    parts: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    outputs: list[pd.DataFrame] = field(default_factory=list)
    tokens: list[pd.DataFrame] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)
    first_snapshot: bool = True

    def add(self, layer: str, **arrays: np.ndarray) -> None:
        d = self.parts.setdefault(layer, {})
        for k, v in arrays.items():
            d.setdefault(k, []).append(v)

    def arrays(self, layer: str) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts[layer].items()}


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 (size, size, 3) thumbnail: the image resized to fit, centred on black."""
    from PIL import Image

    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    a = a[:, :, :3]
    if a.shape[0] == size and a.shape[1] == size:
        return np.ascontiguousarray(a, dtype=np.uint8)
    im = Image.fromarray(a.astype(np.uint8))
    scale = size / max(a.shape[0], a.shape[1])
    new = (max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale)))
    resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.BILINEAR
    im = im.resize(new, resample)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(im, ((size - new[0]) // 2, (size - new[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def token_attributes(spans: list[list[tuple[int, int, dict]]], names: Sequence[str], fill: dict[str, str],
                     b_idx: np.ndarray, start: np.ndarray, end: np.ndarray,
                     special: np.ndarray) -> dict[str, np.ndarray]:
    """Each token's word attributes: those of the span holding its first character.

    ``b_idx`` is each token's input within the batch, ``start``/``end`` its character
    offsets. Subword pieces of one word all start inside its span, so they share its
    attributes; tokens in no span get ``fill``, special tokens the value ``"special"``.
    """
    out = {n: np.array([fill.get(n, "")] * len(b_idx), dtype=object) for n in names}
    for b in np.unique(b_idx):
        sp = spans[int(b)]
        if not sp:
            continue
        sel = np.flatnonzero(b_idx == b)
        s_starts = np.fromiter((x[0] for x in sp), dtype=np.int64, count=len(sp))
        s_ends = np.fromiter((x[1] for x in sp), dtype=np.int64, count=len(sp))
        k = np.searchsorted(s_starts, start[sel], side="right") - 1
        hit = (k >= 0) & (end[sel] > start[sel])
        hit[hit] &= start[sel][hit] < s_ends[k[hit]]
        for i, j in zip(sel[hit], k[hit]):
            values = sp[int(j)][2]
            for n in names:
                if n in values:
                    out[n][i] = values[n]
    for n in names:
        out[n][special] = "special"
    return out
