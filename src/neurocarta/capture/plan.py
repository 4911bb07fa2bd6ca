"""The plan of an extraction: what runs, and what the atlas will hold.

A plan loads the data and the model from their specs, resolves the layers and the
snapshots, and then learns the rest either by probing (the process that starts a run: one
input through the model gives every layer's kind and shape, the receptive fields, the weight
links, the group columns and the manifest) or from the manifest already written (a
distributed worker, :meth:`ExtractionPlan.adopt`). It also knows every storage size: array
dtypes, thumbnail chunks, and which input ranges are left to run after a resume.

It runs no chunk and writes nothing: the chunk runner (runner.py) and the sink (sink.py) do.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..data import DataSource, limit_source, load_data, with_inputs
from ..errors import LayerError, UserError
from ..models import ModelBundle, ModelInputs, load_model
from ..store import layout, schema
from ..store.location import Location, as_location
from ..store.manifest import LayerInfo, Manifest
from .device import pick_device
from .hooks import LayerRecorder, find_logits
from .layers import LayerRef, resolve_layers
from .links import find_link_modules
from .receptive import receptive_fields
from .snapshots import resolve_snapshots

MODES = ("full", "summary")
POOLINGS = (None, "mean", "max", "cls")


@dataclass
class ExtractOptions:
    """Extraction parameters (see :func:`neurocarta.capture.extract`)."""

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
    # Seconds of work between commits, whatever the chunk size: a kill loses at most this
    # much (a chunk of big inputs can take minutes). Not part of the atlas identity.
    commit_every: float = 30.0
    # A metadata table joined onto the data's input table (data/metadata.py): a .csv or
    # .parquet path, or a DataFrame. Part of the data's identity (its name is in the spec).
    inputs: Any = None
    # Roles declared for table columns ({name: role}, store/schema.py), kept in the manifest.
    columns: dict[str, str] | None = None
    # Trained weights loaded into the model once it is built (models/checkpoint.py): a state
    # dict, or a pickled module with ``trust``. Part of the atlas identity.
    checkpoint: "str | Path | None" = None
    # A local file of a torchvision:/timm: model's pretrained weights (the spec records it).
    weights: "str | Path | None" = None

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
        self.columns = schema.check_roles(self.columns)
        if not self.commit_every >= 0:  # also refuses NaN
            raise UserError(f"--commit-every must be 0 or more seconds, not {self.commit_every!r}")
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


class ExtractionPlan:
    """The model, the data and the layout of one extraction run (see the module docstring).

    After :meth:`probe` or :meth:`adopt`: ``infos`` (layer name -> LayerInfo, in capture
    order), ``group_cols`` and ``sample_ids`` (summary mode).
    """

    def __init__(self, model: Any, data: Any, out: "str | Path | Location", opts: ExtractOptions):
        self.opts = opts
        self.out = as_location(out)
        self.model_spec, self.data_spec = model, data  # what distributed workers rebuild from
        full_source = with_inputs(load_data(data), opts.inputs)
        self.source: DataSource = limit_source(full_source, opts.limit, opts.seed)
        self._check_declared_columns()  # before the model loads: a typo should cost seconds
        self.bundle: ModelBundle = load_model(model, data=full_source, trust=opts.trust,
                                              progress=opts.progress, checkpoint=opts.checkpoint,
                                              weights=opts.weights)
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
        self.labels = (self.table[schema.LABEL].to_numpy(np.int64) if schema.LABEL in self.table.columns else None)
        self.store_dtype = np.float16 if opts.dtype == "float16" else np.float32
        self.infos: dict[str, LayerInfo] = {}
        self.has_logits = False
        self.input_size: list[int] | None = None
        self.link_modules: dict[tuple[str, str], str] = {}
        self.group_cols: list[str] = []
        self.sample_ids: np.ndarray | None = None

    def _check_declared_columns(self) -> None:
        """Every declared column is one of the data's: its input table's, or a text source's
        span attributes (the token table's)."""
        have = list(map(str, self.source.table().columns))
        known = set(have) | set(self.source.span_attributes)
        unknown = [c for c in self.opts.columns or {} if c not in known]
        if unknown:
            raise UserError(f"--columns names {unknown[0]!r}, which is not a column of the data; "
                            f"its columns: {', '.join(have)}")

    # ------------------------------------------------------------------ learning the layout
    def probe(self) -> None:
        """Run one input to learn every layer's output kind and shape, check the sizes, and
        record what the manifest needs (receptive fields, links, group columns)."""
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
        logits = find_logits(output)
        self.has_logits = logits is not None
        if logits is not None:
            self._check_class_names(int(logits.shape[1]))
        self._check_size(infos)
        self.input_size = self._record_receptive_fields(infos)
        self.infos = {i.name: i for i in infos}
        self.link_modules = self._find_links()
        self.group_cols = self._group_columns() if self.opts.mode == "summary" else []
        self.sample_ids = self._sample_ids()

    def _check_class_names(self, n_outputs: int) -> None:
        """Drop the model's class names, with a warning, when they do not count its outputs
        (a checkpoint with another head): predictions are then named by index."""
        names = self.bundle.class_names
        if names and len(names) != n_outputs:
            warnings.warn(f"{self.bundle.spec} names {len(names)} classes but outputs {n_outputs} scores; "
                          "predictions are named by their index", stacklevel=2)
            self.bundle.class_names = None

    @property
    def n_label_classes(self) -> int:
        """How many classes the data's labels count: its class names, else the largest label + 1."""
        if self.labels is None:
            return 0
        names = self.source.class_names or []
        return len(names) if names else int(self.labels.max(initial=-1)) + 1

    def adopt(self, manifest: Manifest) -> None:
        """Take the layers and groups from the manifest the coordinator wrote (a distributed
        worker: it must store exactly what the coordinator planned)."""
        self.infos = {i.name: i for i in manifest.layers}
        self.group_cols = list(manifest.params.get("group_by") or [])
        self.sample_ids = self._sample_ids()

    def _check_size(self, infos: list[LayerInfo]) -> None:
        if self.opts.mode != "full":
            return
        item = np.dtype(self.store_dtype).itemsize
        for info in infos:
            rows = self.n * (info.output_shape[0] if info.rows == "token" else 1)
            if info.kind == "conv":  # mean + max + argmax
                per = 2 * item + np.dtype(self.argmax_dtype(info)).itemsize
            else:
                per = item
            size = rows * info.n_neurons * per
            if size > self.opts.max_layer_bytes:
                raise UserError(
                    f"layer {info.name!r} would take {size / 1e9:.1f} GB in full mode (limit "
                    f"{self.opts.max_layer_bytes / 1e9:.1f} GB); pass --mode summary, or raise --max-layer-gb"
                )

    def _group_columns(self) -> list[str]:
        has_logits = self.has_logits
        if self.opts.group_by is not None:
            missing = [c for c in self.opts.group_by if c not in self.table.columns
                       and not (has_logits and c in (schema.PRED, schema.CORRECT))]
            if missing:
                raise UserError(f"--group-by column(s) {', '.join(missing)} not in the input table; "
                                f"it has: {', '.join(map(str, self.table.columns))}")
            return list(self.opts.group_by)
        # the schema's default groupings (the label and the categorical attributes), with room
        # for ImageNet's 1,000 classes; then the outputs
        cols = schema.grouping_columns(self.table, roles=self.opts.columns, most_values=schema.MAX_SUMMARY_GROUPS)
        if has_logits and self.labels is not None:
            cols += [schema.PRED, schema.CORRECT]
        elif has_logits:
            cols += [schema.PRED]
        return cols

    def _sample_ids(self) -> np.ndarray | None:
        """The seeded row sample of summary mode (every process draws the same one)."""
        if self.opts.mode != "summary":
            return None
        rng = np.random.default_rng([self.opts.seed, 1])
        return np.sort(rng.choice(self.n, size=min(self.opts.sample_size, self.n), replace=False))

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
        convs = {i.name: i for i in infos if i.kind == "conv"}
        refs = [r for r in self.refs if r.name in convs]
        if not refs:
            return None
        try:
            inputs = self.bundle.preprocess(self.source.get([0])).to(self.device)
            fields = receptive_fields(self.module, refs, inputs.args,
                                      forward=lambda x: self.bundle.forward(ModelInputs(x)))
        except Exception as e:  # noqa: BLE001 - any model quirk; the atlas stays valid without fields
            warnings.warn(f"no receptive fields recorded ({e.__class__.__name__}: {e}); "
                          "exemplar patches will be 3 feature cells wide", stacklevel=2)
            return None
        for ref in refs:
            convs[ref.name].receptive_field = fields.get(ref.name)
        return [int(v) for v in inputs.args.shape[2:]]

    def manifest(self) -> Manifest:
        o = self.opts
        params = {
            "mode": o.mode, "topk": o.topk, "seed": o.seed, "limit": o.limit, "chunk_size": o.chunk_size,
            "dtype": o.dtype, "pool": o.pool, "special_tokens": o.special_tokens,
            "group_by": self.group_cols if o.mode == "summary" else None,
            "sample_size": min(o.sample_size, self.n) if o.mode == "summary" else None,
            "thumb_size": o.thumb_size if self.source.modality == "image" else None,
            "batch_size": o.batch_size, "device": str(self.device),
        }
        if o.checkpoint is not None:  # other weights, another atlas: a resume must not mix them
            params["checkpoint"] = str(o.checkpoint)
        info = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                for k, v in self.bundle.info.items() if k != "checkpoints"}
        return Manifest(
            model={"spec": self.bundle.spec, "class_names": self.bundle.class_names, "info": info,
                   "input_size": self.input_size},
            data={"spec": self.source.spec, "modality": self.source.modality,
                  "class_names": self.source.class_names},
            layers=list(self.infos.values()),
            snapshots=[{"name": n, "path": str(p) if p else None} for n, p in self.snapshots],
            params=params, n_inputs=self.n,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            neurocarta_version=__version__,
        )

    # ------------------------------------------------------------------ weights
    def load_snapshot(self, path: "Path | str") -> None:
        try:
            self.bundle.load_snapshot(self.module, Path(path))
        except (RuntimeError, OSError, KeyError) as e:
            raise UserError(f"cannot load snapshot {path} into {self.bundle.spec}: "
                            f"{str(e).splitlines()[0]}; snapshots must be state dicts of the same architecture") from e
        self.module.to(self.device).eval()

    # ------------------------------------------------------------------ storage sizes
    def row_arrays(self, snap: str, info: LayerInfo) -> list[str]:
        """The per-row arrays of one layer in full mode (token layers grow them)."""
        if self.opts.mode != "full":
            return []
        paths = [layout.acts(snap, info.name, s) for s in info.signals]
        if info.kind == "conv":
            paths.append(layout.argmax(snap, info.name))
        return paths

    def argmax_dtype(self, info: LayerInfo) -> type:
        """The smallest unsigned type holding a flat spatial index of a conv layer."""
        return np.uint16 if int(np.prod(info.spatial)) < 65536 else np.uint32

    def thumb_chunk(self) -> int:
        """Thumbnail rows per storage chunk: the largest divisor of the chunk size up to 256,
        so that chunks (and so shards) of inputs always cover whole thumbnail chunks."""
        return max(d for d in range(1, min(256, self.opts.chunk_size) + 1) if self.opts.chunk_size % d == 0)

    @property
    def has_token_rows(self) -> bool:
        return any(i.rows == "token" for i in self.infos.values())

    def chunk_ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """``[start, stop)`` cut at the storage chunk boundaries (multiples of the chunk size)."""
        step = self.opts.chunk_size
        cuts = [start] + list(range((start // step + 1) * step, stop, step)) + [stop]
        return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]

    def ranges_to_do(self, done: list[list[int]]) -> list[tuple[int, int]]:
        """The input ranges not in ``done`` (coalesced ``[start, stop)`` ranges), cut at chunk
        boundaries. A timed commit can end inside a chunk; the rest of it is one range."""
        todo: list[tuple[int, int]] = []
        at = 0
        for lo, hi in coalesce(done) + [[self.n, self.n]]:
            todo += self.chunk_ranges(at, min(lo, self.n))
            at = max(at, hi)
        return todo


def coalesce(ranges: list[list[int]]) -> list[list[int]]:
    """Sorted, merged ``[start, stop)`` ranges (what ``progress.json`` records as done)."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out
