"""Reading an atlas.

:func:`open_atlas` checks the folder against its manifest and returns an :class:`Atlas`.
Arrays stay on disk: :meth:`Atlas.activations` returns a lazy view that reads only the
rows you slice, and group statistics are computed chunk by chunk.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import zarr

from .. import compute
from ..streaming import TopK
from ..errors import AtlasError, LayerError, UserError
from . import layout, results, schema
from .location import Location, as_location
from .manifest import MANIFEST, PROGRESS, LayerInfo, Manifest, json_text, read_manifest


class LayerActivations:
    """A lazy (rows x neurons) view of one layer's stored activations.

    Slicing reads only the chunks it needs and returns float32 numpy arrays;
    :meth:`to_numpy` loads everything (the "unless asked" case).
    """

    def __init__(self, array: zarr.Array, info: LayerInfo, signal: str):
        self._array = array
        self.info = info
        self.signal = signal

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self._array.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(str(self._array.dtype))

    @property
    def chunk_rows(self) -> int:
        return int(self._array.chunks[0])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (list, np.ndarray)):  # a set of rows
            return np.asarray(self._array.oindex[np.asarray(key, dtype=np.int64)], dtype=np.float32)
        return np.asarray(self._array[key], dtype=np.float32)

    def iter_chunks(self, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, block)`` over the rows, one storage chunk at a time."""
        step = rows or self.chunk_rows
        for start in range(0, self.shape[0], step):
            yield start, self[start:start + step]

    def to_numpy(self) -> np.ndarray:
        return self[:]

    def __repr__(self) -> str:
        return f"<LayerActivations {self.info.name!r} {self.signal} {self.shape} {self.dtype}>"


@dataclass
class GroupStats:
    """Per-group statistics of every neuron of a layer.

    ``mean`` and ``std`` are DataFrames indexed by group value with one column per neuron.
    """

    column: str
    count: pd.Series
    mean: pd.DataFrame
    std: pd.DataFrame

    @classmethod
    def from_sums(cls, column: str, groups: list, count: np.ndarray, s: np.ndarray,
                  ss: np.ndarray) -> "GroupStats":
        order = sorted(range(len(groups)), key=lambda i: _sort_key(groups[i]))
        groups = [groups[i] for i in order]
        count, s, ss = count[order], s[order], ss[order]
        n = np.maximum(count, 1)[:, None]
        mean = s / n
        var = np.maximum(ss / n - mean * mean, 0.0)
        index = pd.Index(groups, name=column)
        return cls(column, pd.Series(count, index=index, name="count"),
                   pd.DataFrame(mean, index=index), pd.DataFrame(np.sqrt(var), index=index))


def _sort_key(value) -> tuple:
    """Order groups: missing values last, numbers numerically, everything else as text."""
    if value is None:
        return (2, 0, "")
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return (0, float(value), "")
    return (1, 0, str(value))


class Atlas:
    """An atlas folder: layers, snapshots, the input table, activations and exemplars."""

    def __init__(self, root: "Location | Path | str", manifest: Manifest):
        self.location = as_location(root)
        self.manifest = manifest
        self._group = self.location.zarr_group("r")

    @property
    def root(self) -> Path:
        """The atlas folder, for what needs local files (figures, the viewer, exports)."""
        if self.location.local is None:
            raise AtlasError(f"atlas {self.location} is in a remote store; figures, patches and the viewer need a "
                             "local copy (e.g. `fsspec`'s get, `aws s3 sync` or `gsutil rsync`)")
        return self.location.local

    @property
    def url(self) -> str:
        """Where the atlas is: a local path or an fsspec URL (credentials never included)."""
        return self.location.safe

    # ------------------------------------------------------------ description
    @property
    def layers(self) -> list[LayerInfo]:
        return list(self.manifest.layers)

    @property
    def layer_names(self) -> list[str]:
        return [l.name for l in self.manifest.layers]

    @property
    def snapshots(self) -> list[str]:
        return self.manifest.snapshot_names()

    @property
    def complete(self) -> bool:
        return bool(self.manifest.complete)

    @property
    def n_inputs(self) -> int:
        return self.manifest.n_inputs

    @property
    def class_names(self) -> list[str]:
        """Class names of the data's labels, else of the model's outputs, if known. Labels come
        first: an ImageNet model's 1,000 names must not name a photo folder's classes (the
        outputs table's ``pred_name`` names each prediction)."""
        return list(self.manifest.data.get("class_names") or self.manifest.model.get("class_names") or [])

    def prediction_names(self) -> dict[int, str]:
        """``{pred: pred_name}`` over every snapshot's outputs: the name of each class the model
        predicted (the model's own class names, which need not be the labels')."""
        out = self._outputs
        if out is None or schema.PRED_NAME not in out.columns:
            return {}
        pairs = out[[schema.PRED, schema.PRED_NAME]].drop_duplicates(schema.PRED)
        return dict(zip(pairs[schema.PRED].astype(int), pairs[schema.PRED_NAME].astype(str)))

    @property
    def mode(self) -> str:
        return self.manifest.params.get("mode", "full")

    def progress(self) -> tuple[int, int]:
        """(inputs done, inputs to do), counted over all snapshots."""
        total = self.n_inputs * max(1, len(self.snapshots))
        if self.complete:
            return total, total
        try:
            p = json.loads(self.location.read_text(PROGRESS))
        except (OSError, json.JSONDecodeError):
            return 0, total
        return int(p.get("snapshot", 0)) * self.n_inputs + int(p.get("n_done", 0)), total

    def size_on_disk(self) -> int:
        return self.location.size()

    def snapshot_name(self, snapshot: str | None = None) -> str:
        """The name of ``snapshot``, checked: ``None`` means the last (final) snapshot.

        Raises :class:`~neurocarta.errors.AtlasError` naming the atlas's snapshots when it
        has no snapshot of that name.
        """
        names = self.snapshots
        if snapshot is None:
            return names[-1]
        if snapshot not in names:
            raise AtlasError(f"the atlas has no snapshot {snapshot!r}; it has: {', '.join(names)}")
        return snapshot

    def select_layers(self, patterns: list[str] | None = None) -> list[str]:
        """Layer names matching ``patterns`` (exact names or globs), in the atlas's order of
        first match, each once; every layer when ``patterns`` is empty.

        Raises :class:`~neurocarta.errors.LayerError` for a pattern that matches no layer.
        """
        names = self.layer_names
        if not patterns:
            return names
        picked: list[str] = []
        for pattern in patterns:
            hits = [n for n in names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise LayerError(f"no layer of the atlas matches {pattern!r}; layers: {', '.join(names)}")
            picked += [h for h in hits if h not in picked]
        return picked

    # ------------------------------------------------------------ tables
    @cached_property
    def input_table(self) -> pd.DataFrame:
        """The stored input table as extracted: one row per input (``input_id``, label,
        attributes, bookkeeping), without model outputs; see :attr:`inputs` for those."""
        return self.location.read_parquet(layout.INPUTS)

    @cached_property
    def _outputs(self) -> pd.DataFrame | None:
        loc = self.location
        return loc.read_parquet(layout.OUTPUTS) if loc.exists(layout.OUTPUTS) else None

    def outputs(self, snapshot: str | None = None) -> pd.DataFrame | None:
        """Per-input model outputs (pred, confidence, loss, correct) of one snapshot."""
        if self._outputs is None:
            return None
        snap = self.snapshot_name(snapshot)
        out = self._outputs[self._outputs[schema.SNAPSHOT] == snap].drop(columns=schema.SNAPSHOT)
        return out.sort_values(schema.INPUT_ID).reset_index(drop=True)

    @property
    def inputs(self) -> pd.DataFrame:
        """One row per input: id, label, attributes, plus the final snapshot's outputs."""
        return self.inputs_with_outputs(None)

    def inputs_with_outputs(self, snapshot: str | None = None) -> pd.DataFrame:
        """The input table joined with ``snapshot``'s model outputs (pred, confidence, loss,
        correct) on ``input_id``; the table alone when the atlas has no outputs.
        ``None`` means the last snapshot."""
        table = self.input_table
        out = self.outputs(snapshot)
        if out is not None and len(out):
            table = table.merge(out, on=schema.INPUT_ID, how="left")
        return table

    @cached_property
    def tokens(self) -> pd.DataFrame | None:
        """One row per token row of sequence layers (input_id, position, token_id, token)."""
        loc = self.location
        return loc.read_parquet(layout.TOKENS) if loc.exists(layout.TOKENS) else None

    @cached_property
    def column_roles(self) -> dict[str, str]:
        """The role (label, attribute, output or bookkeeping) of every column of the input,
        output and token tables: what the user declared (:meth:`declare_columns`), else the
        schema's (known columns by name, others inferred on the input table; see schema.py)."""
        declared = self.manifest.columns
        roles = schema.column_roles(self.input_table, declared)
        for table in (self._outputs, self.tokens):
            if table is not None:
                more = [c for c in map(str, table.columns) if c not in roles]
                roles.update(schema.column_roles(table[more], declared))
        return roles

    def categories(self, include: Iterable[str] = (schema.ATTRIBUTE,),
                   most_values: int = schema.MAX_CATEGORIES) -> dict[str, list]:
        """``{column: sorted values}`` for the categorical columns of the per-input tables (the
        input table and the outputs) whose role is in ``include``, role by role in that order,
        then in table order: the schema's roles and rule (store/schema.py). Outputs are judged
        over every snapshot: ``correct`` may be all True at the end of training, not before."""
        tables = [self.input_table] + ([self._outputs] if self._outputs is not None else [])
        out: dict[str, list] = {}
        for role in include:
            for table in tables:
                for c in schema.categorical_columns(table, include=(role,), roles=self.column_roles,
                                                    most_values=most_values):
                    out.setdefault(c, sorted(table[c].dropna().unique().tolist(), key=_sort_key))
        return out

    def declare_columns(self, roles: Mapping[str, str]) -> None:
        """Declare the role of some columns, e.g. ``{"flipped": "bookkeeping"}`` keeps a flag
        out of groupings, findings and concept coherence; ``{"site": "attribute"}`` makes an
        id-like column one. Kept in the manifest: every later map and finding uses them."""
        if not self.complete:
            raise AtlasError(f"atlas {self.url} is incomplete; finish the extraction before declaring column roles")
        roles = schema.check_roles(roles)
        have = set(self.column_roles)
        unknown = [c for c in roles if c not in have]
        if unknown:
            raise UserError(f"the atlas has no column {unknown[0]!r} to declare; columns: {', '.join(self.column_roles)}")
        self.manifest.columns.update(roles)
        self.location.write_text(MANIFEST, json_text(self.manifest.to_json()))
        self.__dict__.pop("column_roles", None)  # recomputed with the declarations

    # ------------------------------------------------------------ arrays
    def _layer(self, layer: str) -> LayerInfo:
        return self.manifest.layer(layer)

    def activations(self, layer: str, snapshot: str | None = None,
                    stat: str = "mean") -> LayerActivations:
        """Lazy rows x neurons activations of ``layer``.

        ``stat`` picks the spatial reduction of conv layers (``"mean"`` or ``"max"``); other
        layers have a single value per neuron. Summary-mode atlases hold no full arrays:
        use :meth:`sample` or :meth:`group_stats` instead.
        """
        info = self._layer(layer)
        snap = self.snapshot_name(snapshot)
        signal = self._signal(info, stat)
        if self.mode == "summary":
            raise AtlasError(
                f"atlas {self.url} was extracted with --mode summary and stores no full "
                "activations; use .sample(layer) or .group_stats(layer, by), or re-extract with --mode full"
            )
        return LayerActivations(self._group[layout.acts(snap, info.name, signal)], info, signal)

    def argmax(self, layer: str, snapshot: str | None = None) -> np.ndarray:
        """(inputs x channels) spatial argmax positions of a conv layer as (h, w) pairs."""
        info = self._layer(layer)
        if info.kind != "conv":
            raise AtlasError(f"layer {layer!r} is {info.kind}, argmax positions exist for conv layers only")
        flat = np.asarray(self._group[layout.argmax(self.snapshot_name(snapshot), info.name)][:]).astype(np.int64)
        w = info.spatial[1]
        return np.stack([flat // w, flat % w], axis=-1)

    @staticmethod
    def _signal(info: LayerInfo, stat: str | None) -> str:
        if info.kind != "conv":
            return "value"
        if stat not in ("mean", "max"):
            raise AtlasError(f"stat must be 'mean' or 'max' for conv layer {info.name!r}, not {stat!r}")
        return stat

    def topk(self, layer: str, snapshot: str | None = None) -> TopK:
        """Per-neuron top-k exemplars (by spatial max for conv layers), best first."""
        info = self._layer(layer)
        g = self._group[layout.topk(self.snapshot_name(snapshot), info.name)]
        return TopK(values=g["values"][:], input_ids=g["input_ids"][:], rows=g["rows"][:],
                    positions=g["positions"][:])

    def sample(self, layer: str, snapshot: str | None = None, stat: str = "mean") -> tuple[np.ndarray, np.ndarray]:
        """Summary mode: ``(rows, values)`` of the seeded row sample."""
        info = self._layer(layer)
        path = layout.sample(self.snapshot_name(snapshot), info.name)
        if path not in self._group:
            raise AtlasError(f"atlas {self.url} has no row sample (it was extracted with --mode full); use .activations()")
        g = self._group[path]
        return np.asarray(g["rows"][:]), np.asarray(g[self._signal(info, stat)][:], dtype=np.float32)

    def links(self, snapshot: str | None = None) -> dict[tuple[str, str], np.ndarray]:
        """``|W|`` between consecutive layers, ``{(layer, next_layer): (n_next, n_layer) float32}``.

        Recorded at extraction for each pair a conv or linear module joins (conv kernels
        summed), in forward order; empty for atlases made before links existed.
        """
        snap = self.snapshot_name(snapshot)
        path = layout.links(snap)
        if path not in self._group:
            return {}
        pairs = self._group[path].attrs.get("pairs", [])
        return {(a, b): np.asarray(self._group[layout.link(snap, a, b)][...], dtype=np.float32)
                for a, b in pairs}

    @property
    def has_thumbnails(self) -> bool:
        """Whether the atlas stores input thumbnails (image data)."""
        return layout.THUMBNAILS in self._group

    def thumbnail(self, input_id: int) -> np.ndarray:
        """The uint8 (t, t, 3) thumbnail of an image input."""
        if layout.THUMBNAILS not in self._group:
            raise AtlasError(f"atlas {self.url} has no thumbnails (its inputs are not images)")
        arr = self._group[layout.THUMBNAILS]
        if not 0 <= int(input_id) < arr.shape[0]:
            raise AtlasError(f"input_id {input_id} is out of range 0..{arr.shape[0] - 1}")
        return np.asarray(arr[int(input_id)])

    def thumbnails(self, input_ids) -> np.ndarray:
        """uint8 (n, t, t, 3) thumbnails of several inputs in the given order, in one read
        (each storage chunk once, however many of its inputs are asked for)."""
        if layout.THUMBNAILS not in self._group:
            raise AtlasError(f"atlas {self.url} has no thumbnails (its inputs are not images)")
        arr = self._group[layout.THUMBNAILS]
        ids = np.asarray(input_ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= arr.shape[0]):
            raise AtlasError(f"input ids must be in 0..{arr.shape[0] - 1}")
        uniq, inverse = np.unique(ids, return_inverse=True)
        if uniq.size == 0:
            return np.zeros((0, *arr.shape[1:]), dtype=np.uint8)
        if uniq[-1] - uniq[0] + 1 == uniq.size:  # a contiguous run: a plain slice is ~15x faster than oindex
            return np.asarray(arr[int(uniq[0]):int(uniq[-1]) + 1])[inverse.ravel()]
        return np.asarray(arr.oindex[uniq])[inverse.ravel()]

    def has_patches(self, layer: str, snapshot: str | None = None) -> bool:
        """Whether exemplar patches of ``layer`` are stored for ``snapshot`` (default: the last)."""
        info = self._layer(layer)
        return layout.patches(self.snapshot_name(snapshot), info.name) in self._group

    def patches(self, layer: str, snapshot: str | None = None) -> np.ndarray | None:
        """Stored exemplar patches of ``layer``: uint8 (neurons, per_neuron, s, s, 3), the
        neurons' top inputs cropped around the argmax, best first; ``None`` when none are
        stored (make them with ``neurocarta.methods.concepts.patches``)."""
        info = self._layer(layer)
        path = layout.patches(self.snapshot_name(snapshot), info.name)
        if path not in self._group:
            return None
        return np.asarray(self._group[path][...])

    def save_patches(self, layer: str, patches: np.ndarray, snapshot: str | None = None) -> None:
        """Store exemplar patches of ``layer``, uint8 (neurons, per_neuron, s, s, 3), for
        ``snapshot`` (default: the last), replacing any there; :meth:`patches` reads them."""
        info = self._layer(layer)
        snap = self.snapshot_name(snapshot)
        patches = np.asarray(patches)
        if patches.dtype != np.uint8 or patches.ndim != 5 or patches.shape[-1] != 3 \
                or patches.shape[0] != info.n_neurons or patches.shape[2] != patches.shape[3]:
            raise ValueError(f"patches must be uint8 ({info.n_neurons}, per_neuron, s, s, 3) for layer {layer!r}, "
                             f"got {patches.dtype} {patches.shape}")
        n, per, s = patches.shape[:3]
        attrs = {"per_neuron": int(per), "size": int(s), "kind": info.kind, "receptive_field": info.receptive_field}
        results.save_array(self.location, layout.patches(snap, info.name), patches,
                           chunks=(max(1, min(16, n)), per, s, s, 3), attrs=attrs)

    def row_table(self, layer: str, snapshot: str | None = None) -> pd.DataFrame:
        """The input table, with ``snapshot``'s outputs, aligned to a layer's activation rows
        (token layers expand each input into its tokens)."""
        info = self._layer(layer)
        table = self.inputs_with_outputs(snapshot)
        if info.rows == "token":
            return self.tokens.merge(table, on=schema.INPUT_ID, how="left")
        return table

    def group_keys(self, layer: str, by: str, snapshot: str | None = None) -> np.ndarray:
        """The group of every activation row of ``layer`` under grouping ``by``.

        ``by`` is an input-table column (``label``, ``pred``, ``correct``, an attribute, a
        user column), several joined by commas (``"label_name,correct"`` gives
        ``"circle/False"``), or ``"confusion"`` (``"label->pred"`` cells, by class name).
        """
        table = self.row_table(layer, snapshot)
        if by == "confusion":
            if schema.PRED not in table.columns:
                raise AtlasError("grouping by confusion needs model outputs (pred); extract with a classifier")
            if schema.LABEL not in table.columns:
                raise AtlasError("grouping by confusion needs labels, and the data has none; group by pred or "
                                 "an attribute instead")
            names = self.class_names
            label = table[schema.LABEL_NAME] if schema.LABEL_NAME in table.columns else table[schema.LABEL]
            pred = (table[schema.PRED_NAME] if schema.PRED_NAME in table.columns else
                    table[schema.PRED].map(lambda p: names[int(p)] if names and 0 <= int(p) < len(names) else str(p)))
            return (label.astype(str) + "->" + pred.astype(str)).to_numpy(dtype=object)
        cols = [c.strip() for c in by.split(",")] if "," in by else [by]
        missing = [c for c in cols if c not in table.columns]
        if missing:
            unlabelled = " (the data has no labels)" if missing[0] in (schema.LABEL, schema.LABEL_NAME) else ""
            raise AtlasError(f"no column {missing[0]!r} to group by{unlabelled}; columns: "
                             f"{', '.join(map(str, table.columns))}, or 'confusion'")
        if len(cols) == 1:
            return table[cols[0]].to_numpy()
        joined = table[cols[0]].astype(str)
        for c in cols[1:]:
            joined = joined + "/" + table[c].astype(str)
        return joined.to_numpy(dtype=object)

    # ------------------------------------------------------------ map results
    def save_map(self, kind: str, name: str, tables: dict[str, pd.DataFrame], meta: dict) -> str:
        """Store a method's result under ``maps/<kind>/<name>/`` (replacing one of that name)."""
        return results.save(self.location, kind, name, tables, meta)

    def load_map(self, kind: str, name: str) -> tuple[dict[str, pd.DataFrame], dict]:
        """A stored method result: its tables and its metadata."""
        return results.load(self.location, kind, name)

    def maps(self, kind: str) -> list[str]:
        """Names of the stored results of method ``kind`` (e.g. ``"topomap"``)."""
        return results.names(self.location, kind)

    def group_stats(self, layer: str, by: str, snapshot: str | None = None,
                    stat: str = "mean") -> GroupStats:
        """Per-group count, mean and std of every neuron of ``layer``, grouped by column ``by``.

        Full atlases compute them chunk by chunk from the stored activations; summary
        atlases read the running sums recorded during extraction.
        """
        info = self._layer(layer)
        snap = self.snapshot_name(snapshot)
        signal = self._signal(info, stat)
        if self.mode == "summary":
            path = layout.stats(snap, info.name, signal, by)
            if path not in self._group:
                have = sorted(self.manifest.params.get("group_by") or [])
                raise AtlasError(f"summary atlas has no group statistics for {by!r}; it recorded: {', '.join(have)}")
            g = self._group[path]
            groups = list(g.attrs["groups"])
            return GroupStats.from_sums(by, groups, g["count"][:], g["sum"][:], g["sumsq"][:])
        keys = self.group_keys(layer, by, snap)
        self.activations(layer, snap, stat=stat)  # the clear error for summary atlases
        # chunk by chunk here, or per row range on the workers when Dask is configured (compute.py)
        groups, count, s, ss = compute.group_sums(self.location.url, layout.acts(snap, info.name, signal), keys)
        return GroupStats.from_sums(by, groups, count, s, ss)

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return (f"<Atlas {self.url} {state}: {self.n_inputs} inputs, {len(self.layers)} layers, "
                f"{len(self.snapshots)} snapshot(s)>")


def open_atlas(path: str | Path, allow_incomplete: bool = False) -> Atlas:
    """Open an atlas folder, checking it against its manifest.

    Raises :class:`~neurocarta.errors.AtlasError` with a clear message for a missing
    folder, missing files, a schema mismatch, a shape mismatch, or (unless
    ``allow_incomplete``) an unfinished extraction.
    """
    root = as_location(path)
    manifest = read_manifest(root)
    missing = [n for n in ("zarr.json", layout.INPUTS) if not root.exists(n)]
    if missing:
        raise AtlasError(f"atlas {root} is missing {', '.join(missing)}; re-extract it")
    atlas = Atlas(root, manifest)
    if not manifest.complete:
        if allow_incomplete:
            return atlas
        done, total = atlas.progress()
        raise AtlasError(
            f"atlas {root} is incomplete: {done} of {total} inputs; rerun the same extract command to resume"
        )
    _check_shapes(atlas)
    return atlas


def _check_shapes(atlas: Atlas) -> None:
    g = atlas._group
    m = atlas.manifest
    try:
        n_table = len(atlas.location.read_parquet(layout.INPUTS, columns=[schema.INPUT_ID]))
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise AtlasError(f"atlas {atlas.url} has a corrupt {layout.INPUTS} ({e.__class__.__name__}); re-extract it") from e
    if n_table != m.n_inputs:
        raise AtlasError(f"atlas {atlas.url}: {layout.INPUTS} has {n_table} rows, the manifest says {m.n_inputs}")
    for snap in m.snapshot_names():
        for info in m.layers:
            tk = layout.topk(snap, info.name) + "/values"
            paths = [tk]
            if m.params.get("mode", "full") == "full":
                paths += [layout.acts(snap, info.name, s) for s in info.signals]
            for p in paths:
                try:
                    arr = g[p]
                except (KeyError, FileNotFoundError, ValueError) as e:
                    raise AtlasError(f"atlas {atlas.url} is missing array {p}; re-extract it") from e
                if arr.shape[-1] != info.n_neurons:
                    raise AtlasError(f"atlas {atlas.url}: array {p} has shape {arr.shape}, "
                                     f"but layer {info.name!r} has {info.n_neurons} neurons")
                if p != tk and info.n_rows is not None and arr.shape[0] != info.n_rows:
                    raise AtlasError(f"atlas {atlas.url}: array {p} has {arr.shape[0]} rows, the manifest says {info.n_rows}")
