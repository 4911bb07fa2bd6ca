"""What the viewer shows, as plain payloads: pure functions of an atlas, shared by the server
(``app.py``) and the static export (``export.py``).

:class:`ViewerData` wraps one opened atlas and caches what it loads (results per name,
layer statistics, encoded images) in memory, so a busy server reads each result from disk
once. Names in requests are looked up in the atlas's own lists (layers, snapshots, stored
results); a name that is not there is a :class:`NotFound`, never a path.

JSON payloads are JSON-safe: NaN and infinities become ``null``, numpy scalars become
Python numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import findings as findings_rules
from ..errors import UserError
from ..methods.comparison import compare_atlases
from ..methods.topomap.inputs import neuron_moments, segment_means, zscores
from ..methods.topomap.profiles import atlas_profiles
from ..render.palette import class_legend, palette
from ..store.schema import ATTRIBUTE, OUTPUT, PRED, PRED_NAME, TOKEN_END, TOKEN_START
from ..store import attributions as stored_attributions
from ..store import featvis as stored_featvis
from .routes import path as route_path

if TYPE_CHECKING:
    from ..store import Atlas

#: The most rows one ``/api/inputs`` request may ask for.
MAX_INPUT_ROWS = 50_000
#: Thumbnails read from the store in blocks of this many inputs (one Zarr read, cached).
THUMB_BLOCK = 256


class NotFound(Exception):
    """A name or id the atlas does not have (HTTP 404)."""


class BadRequest(Exception):
    """A malformed parameter (HTTP 400)."""


class FindingsFailed(Exception):
    """A findings rule failed on this atlas (HTTP 500, with the message for the panel)."""


def jsonable(value: Any) -> Any:
    """``value`` with numpy types made Python and non-finite floats made ``None``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def float_list(values: np.ndarray, digits: int = 6) -> list:
    """A float array as a JSON-safe list, rounded (the viewer draws, it does not compute)."""
    a = np.round(np.asarray(values, dtype=np.float64), digits)
    out = a.tolist()
    if not np.isfinite(a).all():
        bad = ~np.isfinite(a.ravel())
        flat = a.ravel().tolist()
        for i in np.flatnonzero(bad):
            flat[i] = None
        out = np.asarray(flat, dtype=object).reshape(a.shape).tolist()
    return out


def records(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame as JSON-safe records (pandas writes NaN as null)."""
    return json.loads(frame.to_json(orient="records", double_precision=10, date_format="iso"))


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def tile(patches: np.ndarray, columns: int = 3, most: int = 9) -> np.ndarray:
    """Up to ``most`` (s, s, 3) patches as one image, ``columns`` wide, black where none."""
    patches = np.asarray(patches)[:most]
    n, s = patches.shape[0], patches.shape[1]
    rows = max(1, math.ceil(n / columns))
    out = np.zeros((rows * s, columns * s, 3), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * s:(r + 1) * s, c * s:(c + 1) * s] = patches[i]
    return out


def parse_int(text: str, what: str) -> int:
    if not re.fullmatch(r"\d{1,12}", text or ""):
        raise NotFound(f"{what} must be a non-negative integer, not {text[:40]!r}")
    return int(text)


def once(fn, maxsize: int):
    """``functools.lru_cache(maxsize)(fn)``, plus a lock per argument tuple so that concurrent
    callers of the same key wait for one computation instead of each repeating it (a burst of
    requests for a result not yet loaded would otherwise load it once per request)."""
    cached = lru_cache(maxsize=maxsize)(fn)
    locks = [threading.Lock() for _ in range(64)]  # striped: bounded however many keys

    def call(*args):
        with locks[hash(args) % len(locks)]:
            return cached(*args)

    call.cache_info = cached.cache_info  # type: ignore[attr-defined]
    call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return call


class ViewerData:
    """Viewer payloads of one atlas, loaded on demand and cached."""

    def __init__(self, atlas: Atlas, compare: Atlas | None = None):
        self.atlas = atlas
        self.compare_atlas = compare  # `serve A --compare B`: the comparison page's atlas B
        # Per-instance caches (functools.lru_cache on bound functions, keyed by name), each
        # computed once even when many requests ask at the same moment.
        self.topomap_result = once(self._topomap_result, 64)
        self.mapper_result = once(self._mapper_result, 64)
        self.projection_result = once(self._projection_result, 16)
        self.concept_result = once(self._concept_result, 16)
        self.layer_moments = once(self._layer_moments, 64)
        self._thumb_block = once(self._read_thumb_block, 32)
        self.thumbnail_png = once(self._thumbnail_png, 1024)
        self._patches = once(self._read_patches, 32)
        self._featvis_table = once(self._read_featvis_table, 64)
        self.featvis_png = once(self._featvis_png, 1024)
        self.patch_png = once(self._patch_png, 1024)
        self.input_frame = once(self._input_frame, 1)
        self._topk = once(self._read_topk, 32)
        self._token_index = once(self._read_token_index, 1)
        self._findings_outcome = once(self._compute_findings, 1)
        self.groupings = once(self._groupings, 1)
        self.comparison = once(self._comparison, 1)

    def forget_maps(self) -> None:
        """Drop everything read from the atlas's maps (results, exemplar patches, findings):
        the map stages stored something new since (the server watches ``maps/_status.json``)."""
        for read in (self.topomap_result, self.mapper_result, self.concept_result, self._patches, self.patch_png,
                     self._findings_outcome, self._featvis_table, self.featvis_png):
            read.cache_clear()

    # ------------------------------------------------------------ names (the only way in)
    def layer(self, name: str) -> str:
        if name not in self.atlas.layer_names:
            raise NotFound(f"no layer {name[:80]!r}; layers: {', '.join(self.atlas.layer_names)}")
        return name

    def snapshot(self, name: str | None) -> str:
        snaps = self.atlas.snapshots
        if name in (None, ""):
            return snaps[-1]
        if name not in snaps:
            raise NotFound(f"no snapshot {name[:80]!r}; snapshots: {', '.join(snaps)}")
        return name

    def _stored(self, kind: str, name: str) -> str:
        have = self.atlas.maps(kind)
        if name not in have:
            raise NotFound(f"no {kind} result {name[:80]!r}; stored: {', '.join(have) or 'none (run neurocarta map)'}")
        return name

    # ------------------------------------------------------------ manifest and inputs
    def manifest(self) -> dict:
        a = self.atlas
        m = a.manifest
        patches = {s: [l.name for l in a.layers if a.has_patches(l.name, s)] for s in a.snapshots}
        legend = class_legend(a)
        return jsonable({
            "name": a.root.resolve().name, "model": m.model.get("spec"), "data": m.data.get("spec"),
            "n_inputs": a.n_inputs, "class_names": a.class_names, "snapshots": a.snapshots,
            "modality": m.data.get("modality") or m.model.get("modality"), "mode": a.mode,
            "layers": [{"name": l.name, "kind": l.kind, "n_neurons": l.n_neurons, "rows": l.rows,
                        "spatial": l.spatial, "receptive_field": l.receptive_field} for l in a.layers],
            "maps": {"topomap": a.maps("topomap"), "mapper": a.maps("mapper"), "concepts": a.maps("concepts"),
                     "inputs": self.projection_layers()},
            "patches": {s: ls for s, ls in patches.items() if ls},
            # {snapshot: [input_id, ...]}: inputs with stored attributions (neurocarta attribute)
            "attributions": stored_attributions.attributed_inputs(a),
            # {snapshot: [layer, ...]}: layers with stored feature visualizations (neurocarta visualize)
            "featvis": stored_featvis.featvis_layers(a),
            "has_thumbnails": a.has_thumbnails,
            # the comparison page's atlas B (`serve A --compare B`); None: it compares A's own layers
            "compare": self.compare_atlas.url if self.compare_atlas is not None else None,
            "columns": list(map(str, self.input_frame().columns)),
            # the figures' categorical colours and class legend (render/palette.py): one source
            "palette": list(palette()), "class_legend": legend.to_json() if legend else None,
        })

    def _input_frame(self) -> pd.DataFrame:
        """The input table with the last snapshot's outputs (pred, correct, confidence...)."""
        return self.atlas.inputs

    def inputs(self, offset: int = 0, limit: int = 1000, ids: np.ndarray | None = None) -> pd.DataFrame:
        if offset < 0 or limit < 0:
            raise BadRequest("offset and limit must be non-negative")
        if limit > MAX_INPUT_ROWS:
            raise BadRequest(f"limit is at most {MAX_INPUT_ROWS} rows per request; page with offset")
        table = self.input_frame()
        if ids is not None:
            table = table.iloc[np.asarray(ids, dtype=np.int64)]
        return table.iloc[offset:offset + limit].reset_index(drop=True)

    @staticmethod
    def arrow_bytes(frame: pd.DataFrame) -> bytes:
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    # ------------------------------------------------------------ images
    def _read_thumb_block(self, block: int) -> np.ndarray:
        start = block * THUMB_BLOCK
        stop = min(start + THUMB_BLOCK, self.atlas.n_inputs)
        return self.atlas.thumbnails(np.arange(start, stop))

    def thumbnail(self, input_id: int) -> np.ndarray:
        if not self.atlas.has_thumbnails:
            raise NotFound("the atlas has no thumbnails (its inputs are not images)")
        if not 0 <= input_id < self.atlas.n_inputs:
            raise NotFound(f"input_id {input_id} is out of range 0..{self.atlas.n_inputs - 1}")
        block, i = divmod(int(input_id), THUMB_BLOCK)
        return self._thumb_block(block)[i]

    def _thumbnail_png(self, input_id: int) -> bytes:
        return png_bytes(self.thumbnail(input_id))

    def _read_patches(self, snapshot: str, layer: str) -> np.ndarray | None:
        return self.atlas.patches(layer, snapshot)

    def patches(self, snapshot: str, layer: str, neuron: int) -> np.ndarray:
        snap, name = self.snapshot(snapshot), self.layer(layer)
        p = self._patches(snap, name)
        if p is None:
            raise NotFound(f"no exemplar patches stored for layer {name!r} at snapshot {snap!r} (run neurocarta map)")
        if not 0 <= neuron < p.shape[0]:
            raise NotFound(f"neuron {neuron} is out of range 0..{p.shape[0] - 1} for layer {name!r}")
        return p[neuron]

    def _patch_png(self, snapshot: str, layer: str, neuron: int) -> bytes:
        return png_bytes(tile(self.patches(snapshot, layer, neuron)))

    # ------------------------------------------------------------ feature visualizations
    def _read_featvis_table(self, snapshot: str, layer: str) -> pd.DataFrame:
        if layer != stored_featvis.OUTPUT:
            self.layer(layer)
        table = stored_featvis.featvis_table(self.atlas, layer, snapshot)
        if table is None:
            raise NotFound(f"no feature visualizations stored for layer {layer[:80]!r} at snapshot {snapshot!r} "
                           "(run neurocarta visualize)")
        return table

    def featvis(self, snapshot: str, layer: str) -> dict:
        """A layer's stored feature visualizations: ``{"size", "targets": [{kind, target,
        images, activation, exemplar_activation, exemplar_input_id, objective}]}``."""
        snap = self.snapshot(snapshot)
        table = self._featvis_table(snap, layer)
        images = stored_featvis.featvis_images(self.atlas, layer, snap)
        size, per = (int(images.shape[2]), int(images.shape[1])) if images is not None else (0, 0)
        targets = [{"kind": r.kind, "target": str(r.target), "images": per, "activation": float(r.activation),
                    "exemplar_activation": None if pd.isna(r.exemplar_activation) else float(r.exemplar_activation),
                    "exemplar_input_id": None if pd.isna(r.exemplar_input_id) else str(int(r.exemplar_input_id)),
                    "objective": str(r.objective)} for r in table.itertuples()]
        return jsonable({"size": size, "targets": targets})

    def _featvis_png(self, snapshot: str, layer: str, kind: str, target: str, i: int) -> bytes:
        snap = self.snapshot(snapshot)
        table = self._featvis_table(snap, layer)
        rows = np.nonzero((table["kind"] == kind).to_numpy() & (table["target"].astype(str) == target).to_numpy())[0]
        if not len(rows):
            raise NotFound(f"layer {layer[:80]!r} has no feature visualization of {kind} {target[:40]!r} "
                           f"at snapshot {snap!r}")
        images = stored_featvis.featvis_images(self.atlas, layer, snap)
        if images is None or not 0 <= i < images.shape[1]:
            raise NotFound(f"image {i} does not exist: {kind} {target[:40]!r} has "
                           f"{0 if images is None else images.shape[1]} images")
        return png_bytes(np.asarray(images[int(rows[0]), i]))

    # ------------------------------------------------------------ attributions
    def attributions(self, snapshot: str, input_id: int) -> dict:
        """The stored attributions of one input: ``{"input_id", "items": [...]}`` (store/attributions.py)."""
        snap = self.snapshot(snapshot)
        if not 0 <= input_id < self.atlas.n_inputs:
            raise NotFound(f"input_id {input_id} is out of range 0..{self.atlas.n_inputs - 1}")
        items = stored_attributions.input_items(self.atlas, snap, input_id)
        names = self.atlas.class_names
        for item in items:  # a class target by name too, where the model has class names
            if item["target_kind"] in ("predicted", "class") and item["target"].isdigit() \
                    and int(item["target"]) < len(names):
                item["target_name"] = str(names[int(item["target"])])
        return jsonable({"input_id": str(input_id), "items": items})

    def attribution_png(self, snapshot: str, input_id: int, index: int) -> bytes:
        """Item ``index`` of ``input_id`` as an RGBA heat overlay at the thumbnail's size."""
        from .attribution_overlay import overlay_rgba

        snap = self.snapshot(snapshot)
        if not any(item["index"] == index for item in stored_attributions.input_items(self.atlas, snap, input_id)):
            raise NotFound(f"input {input_id} has no attribution {index} at snapshot {snap!r} "
                           "(run neurocarta attribute)")
        values = stored_attributions.image_map(self.atlas, snap, index)
        if values is None:
            raise NotFound(f"attribution {index} is per token, not an image")
        size = self.thumbnail(input_id).shape[0] if self.atlas.has_thumbnails else values.shape[0]
        return png_bytes(overlay_rgba(values, size))

    # ------------------------------------------------------------ text: exemplars and tokens
    def _read_topk(self, snapshot: str, layer: str):
        return self.atlas.topk(layer, snapshot)

    def _read_token_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Per input, the first token row and one past its last (token rows are in input order)."""
        tokens = self.atlas.tokens
        if tokens is None:
            raise NotFound("the atlas has no token rows (its inputs are not text)")
        ids = tokens["input_id"].to_numpy(dtype=np.int64)
        order = np.arange(self.atlas.n_inputs)
        return np.searchsorted(ids, order, side="left"), np.searchsorted(ids, order, side="right")

    def input_tokens(self, input_id: int) -> tuple[int, int, pd.DataFrame]:
        """``(first_row, stop_row, token_frame)`` of one text input."""
        if not 0 <= input_id < self.atlas.n_inputs:
            raise NotFound(f"input_id {input_id} is out of range 0..{self.atlas.n_inputs - 1}")
        start, stop = self._token_index()
        a, b = int(start[input_id]), int(stop[input_id])
        return a, b, self.atlas.tokens.iloc[a:b]

    def _token_layer(self, layer: str) -> str:
        name = self.layer(layer)
        if self.atlas.manifest.layer(name).rows != "token":
            raise NotFound(f"layer {name!r} has one row per input, not per token")
        return name

    def _text_of(self, input_id: int) -> str | None:
        table = self.input_frame()
        if "text" not in table.columns:
            return None
        v = table["text"].iloc[int(input_id)]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    def exemplars(self, snapshot: str, layer: str, neuron: int, k: int = 9) -> dict:
        """A neuron's top exemplars from the stored top-k. Token layers: each token in its
        sentence (``index`` is the token's place in ``tokens``; ``start``/``end`` its
        characters in ``text``, from the token table's offsets, when the atlas stores them:
        text files and the built-in corpus do). Other layers: the patch URL."""
        snap, name = self.snapshot(snapshot), self.layer(layer)
        if not 1 <= k <= 100:
            raise BadRequest("k must be in 1..100")
        info = self.atlas.manifest.layer(name)
        if not 0 <= neuron < info.n_neurons:
            raise NotFound(f"neuron {neuron} is out of range 0..{info.n_neurons - 1} for layer {name!r}")
        if info.rows != "token":
            has = self.atlas.has_patches(name, snap)
            return {"kind": "image", "layer": name, "snapshot": snap, "neuron": int(neuron),
                    "patch": route_path("patches", snapshot=snap, layer=name, neuron=neuron) if has else None}
        top = self._topk(snap, name)
        start, _ = self._token_index()
        tokens = self.atlas.tokens
        offsets = TOKEN_START in tokens.columns and TOKEN_END in tokens.columns
        items = []
        for j in range(min(k, top.values.shape[0])):
            value, row = float(top.values[j, neuron]), int(top.rows[j, neuron])
            if row < 0 or not math.isfinite(value):
                continue
            input_id = int(tokens["input_id"].iat[row])
            a, b, frame = self.input_tokens(input_id)
            item = {"input_id": input_id, "row": row, "position": int(tokens["position"].iat[row]),
                    "index": row - a, "text": self._text_of(input_id),
                    "tokens": frame["token"].astype(str).tolist(), "value": value}
            if offsets:
                item["start"], item["end"] = int(tokens[TOKEN_START].iat[row]), int(tokens[TOKEN_END].iat[row])
            items.append(item)
        return jsonable({"kind": "text", "layer": name, "snapshot": snap, "neuron": int(neuron), "items": items})

    def token_values(self, input_id: int, layer: str, snapshot: str | None = None, neuron: int | None = None,
                     cluster: int | None = None) -> dict:
        """One text input's per-token activation of a neuron of a token layer, or the mean over
        the members of a concept cluster in that layer; ``max`` is the neuron's (the members'
        mean) best stored top-k value, a scale for colouring."""
        snap, name = self.snapshot(snapshot), self._token_layer(layer)
        if (neuron is None) == (cluster is None):
            raise BadRequest("give exactly one of neuron and cluster")
        if self.atlas.mode == "summary":
            raise NotFound("a summary atlas stores no per-token activations; re-extract with --mode full")
        n_neurons = self.atlas.manifest.layer(name).n_neurons
        if neuron is not None:
            if not 0 <= neuron < n_neurons:
                raise NotFound(f"neuron {neuron} is out of range 0..{n_neurons - 1} for layer {name!r}")
            units = np.array([neuron])
        else:
            names = self.atlas.maps("concepts")
            if not names:
                raise NotFound("the atlas has no concept clusters (run neurocarta map)")
            r = self.concept_result(snap if snap in names else names[-1])
            if not 0 <= cluster < len(r.clusters):
                raise NotFound(f"no concept cluster {cluster}; clusters: 0..{len(r.clusters) - 1}")
            members = np.asarray(r.clusters["members"].iat[int(cluster)], dtype=np.int64)
            on = r.neurons.iloc[members]
            units = np.sort(on.loc[on["layer"] == name, "unit"].to_numpy(dtype=np.int64))
            if not len(units):
                raise NotFound(f"concept cluster {cluster} has no member in layer {name!r}")
        a, b, frame = self.input_tokens(input_id)
        acts = self.atlas.activations(name, snap)
        values = acts[a:b][:, units].mean(axis=1) if b > a else np.zeros(0)
        top = self._topk(snap, name)
        best = float(np.nanmean(top.values[0, units])) if top.values.shape[0] else float("nan")
        return jsonable({"input_id": int(input_id), "layer": name, "snapshot": snap,
                         "neuron": None if neuron is None else int(neuron),
                         "cluster": None if cluster is None else int(cluster), "n_units": int(len(units)),
                         "tokens": frame["token"].astype(str).tolist(), "positions": frame["position"].tolist(),
                         "values": float_list(values, 5), "max": best})

    # ------------------------------------------------------------ topomap
    def _topomap_result(self, name: str):
        from ..methods.topomap import TopoMapResult
        from ..methods.topomap.result import KIND

        _, meta = self.atlas.load_map(KIND, self._stored(KIND, name))
        return TopoMapResult.load(self.atlas, meta["layer"], meta["group_by"])

    def topomap_names(self) -> list[str]:
        return self.atlas.maps("topomap")

    def topomap(self, name: str) -> dict:
        r = self.topomap_result(name)
        values = {snap: {g: float_list(v[:, j]) for j, g in enumerate(r.groups)} for snap, v in r.values.items()}
        return jsonable({
            "name": name, "layer": r.layer, "group_by": r.group_by, "snapshots": r.snapshots, "groups": r.groups,
            "group_names": r.group_names, "counts": r.counts, "layout_snapshot": r.layout_snapshot,
            "x": float_list(r.layout[:, 0]), "y": float_list(r.layout[:, 1]),
            "silent": r.silent if r.silent is not None else [False] * r.n_neurons,
            "grid_cells": r.grid_cells, "grid_shape": r.grid_shape, "values": values,
            "metrics": r.metrics, "separation": r.separation, "params": r.params,
        })

    def _layer_moments(self, layer: str, snapshot: str, stat: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-neuron mean and std of a layer over all its rows, streamed chunk by chunk."""
        acts = self.atlas.activations(layer, snapshot, stat=stat)
        return neuron_moments(block for _, block in acts.iter_chunks())

    def _map_stat(self, r) -> str:
        """The spatial reduction a map's layer was profiled with (conv layers; others: mean)."""
        return r.params.get("stat", "mean") if self.atlas.manifest.layer(r.layer).kind == "conv" else "mean"

    def _input_rows(self, layer: str, input_ids: np.ndarray) -> np.ndarray:
        """The activation rows of ``input_ids`` in ``layer`` (token layers: all their tokens)."""
        ids = np.asarray(input_ids, dtype=np.int64)
        if self.atlas.manifest.layer(layer).rows != "token":
            return ids
        start, stop = self._token_index()
        return np.concatenate([np.arange(start[i], stop[i]) for i in ids] or [np.zeros(0, dtype=np.int64)])

    def input_zscores(self, name: str, groups: list[np.ndarray], snapshot: str | None = None) -> np.ndarray:
        """One row per group of input ids: the z-scores, against the layer's per-neuron mean
        and std, of the group's mean activation in the layer of topomap ``name`` (token
        layers: the mean over the inputs' tokens), with one read of the layer for all groups.
        The numbers come from :mod:`neurocarta.methods.topomap.inputs`."""
        r = self.topomap_result(name)
        snap = self.snapshot(snapshot)
        if self.atlas.mode == "summary":
            raise NotFound("a summary atlas stores no per-input activations; re-extract with --mode full")
        rows = [self._input_rows(r.layer, g) for g in groups]
        empty = [i for i, x in enumerate(rows) if not len(x)]
        if empty:
            raise NotFound(f"input(s) {', '.join(map(str, np.asarray(groups[empty[0]]).tolist()[:5]))} have no rows "
                           f"in layer {r.layer!r}")
        stat = self._map_stat(r)
        mean, std = self.layer_moments(r.layer, snap, stat)
        if not rows:
            return np.zeros((0, len(mean)))
        x = self.atlas.activations(r.layer, snap, stat=stat)[np.concatenate(rows)]
        return zscores(segment_means(x, np.array([len(x) for x in rows])), mean, std)

    def topomap_inputs(self, name: str, input_ids: np.ndarray, snapshot: str | None = None) -> dict[int, dict]:
        """The ``topomap_input`` payloads of many inputs (one read), keyed by input id."""
        r = self.topomap_result(name)
        snap = self.snapshot(snapshot)
        ids = np.asarray(input_ids, dtype=np.int64)
        bad = ids[(ids < 0) | (ids >= self.atlas.n_inputs)]
        if len(bad):
            raise NotFound(f"input_id {int(bad[0])} is out of range 0..{self.atlas.n_inputs - 1}")
        z = self.input_zscores(name, [ids[i:i + 1] for i in range(len(ids))], snap)
        return {int(i): {"layer": r.layer, "snapshot": snap, "input_id": int(i), "values": float_list(row, 4)}
                for i, row in zip(ids, z)}

    def topomap_input(self, name: str, input_id: int, snapshot: str | None = None) -> dict:
        """One input's activation of every neuron of the map's layer, as z-scores against the
        layer's per-neuron mean and std (token layers: the mean over the input's tokens)."""
        return self.topomap_inputs(name, np.array([input_id]), snapshot)[int(input_id)]

    def _groupings(self) -> dict:
        """Input-table columns a map can be painted by, beyond its stored grouping:
        ``{column: [values]}`` for the categorical outputs (pred, correct) and then the
        categorical attributes, with 2 to 12 values each (more would not read as a map).
        Roles and the rule are the schema's (:meth:`Atlas.categories`): never the label or a
        label-like column, never bookkeeping such as the split or a planted flag."""
        found = self.atlas.categories(include=(OUTPUT, ATTRIBUTE), most_values=12)
        if PRED_NAME in found:  # the same grouping as pred, by name
            found.pop(PRED, None)
        return {c: [str(v) for v in values] for c, values in found.items()}

    def topomap_groups(self, name: str, column: str, snapshot: str | None = None) -> dict:
        """The map's layer painted by any input-table column: per value, the NAP profile
        (group mean minus the mean over groups), the same profile the stored maps show
        (:func:`~neurocarta.methods.topomap.profiles.atlas_profiles`)."""
        r = self.topomap_result(name)
        snap = self.snapshot(snapshot)
        groupings = self.groupings()
        if column not in groupings:
            raise NotFound(f"no grouping {column[:80]!r}; groupings: {', '.join(groupings)}")
        p = atlas_profiles(self.atlas, r.layer, by=column, snapshot=snap, stat=self._map_stat(r))
        groups = [str(g) for g in p.groups]
        return {"layer": r.layer, "snapshot": snap, "column": column, "groups": groups, "counts": p.counts.tolist(),
                "values": {g: float_list(p.values[:, j], 4) for j, g in enumerate(groups)}}

    def topomap_node(self, name: str, layer: str, node: int, snapshot: str | None = None) -> dict:
        """A Mapper node's inputs painted on a map: the z-score (as for one input) of their
        mean activation in the map's layer, over every member."""
        r = self.topomap_result(name)
        snap = self.snapshot(snapshot)
        members = self.mapper_members(layer)
        ids = np.unique(members.loc[members["node"] == node, "input_id"].to_numpy(dtype=np.int64))
        if not len(ids):
            raise NotFound(f"the Mapper graph of {layer!r} has no node {node}")
        (z,) = self.input_zscores(name, [ids], snap)
        return {"layer": r.layer, "snapshot": snap, "mapper_layer": layer, "node": int(node),
                "n_inputs": int(len(ids)), "values": float_list(z, 4)}

    # ------------------------------------------------------------ input projection
    def _projection_result(self, layer: str):
        from ..methods.inputs_projection import KIND, InputProjection

        return InputProjection.load(self.atlas, self._stored(KIND, self.layer(layer)))

    def projection_layers(self) -> list[str]:
        """Layers with a stored input projection, in the atlas's layer order."""
        from ..methods.inputs_projection import KIND

        stored = set(self.atlas.maps(KIND))
        return [name for name in self.atlas.layer_names if name in stored]

    def input_projection(self, layer: str) -> dict:
        """Every projected activation row of ``layer`` as columns: ``x``, ``y`` (unit square),
        ``input_id``, ``row``; token layers add the token text and the token table's own text
        columns (``token_columns``: word, category, ...), so the viewer can search and colour
        tokens."""
        r = self.projection_result(layer)
        p = r.points
        out = {"layer": r.layer, "snapshot": r.snapshot, "n_rows": r.n_rows, "sampled": r.sampled, "params": r.params,
               "x": float_list(p["x"].to_numpy()), "y": float_list(p["y"].to_numpy()),
               "input_id": p["input_id"].astype(int).tolist(), "row": p["row"].astype(int).tolist(),
               "tokens": None, "token_columns": {}}
        if self.atlas.manifest.layer(r.layer).rows == "token":
            rows = self.atlas.tokens.iloc[p["row"].to_numpy(dtype=np.int64)]
            out["tokens"] = rows["token"].astype(str).tolist()
            skip = {"row", "input_id", "position", "token_id", "token", TOKEN_START, TOKEN_END}
            out["token_columns"] = {str(c): rows[c].astype(str).tolist() for c in rows.columns
                                    if c not in skip and not pd.api.types.is_numeric_dtype(rows[c])}
        return jsonable(out)

    def projection_selection(self, layer: str, polygon: str) -> tuple[np.ndarray, np.ndarray]:
        """The points of ``layer``'s input projection inside a lasso ``polygon``
        (``"x1,y1,x2,y2,..."`` in the projection's coordinates): their activation rows and
        input ids. The rule and the coordinates (rounded as the payload sends them) are the
        viewer's, so the server selects exactly the points the lasso lit."""
        from ..methods.inputs_projection import points_in_polygon

        try:
            flat = np.array([float(v) for v in polygon.split(",")], dtype=np.float64)
        except ValueError:
            raise BadRequest("polygon must be comma-separated numbers x1,y1,x2,y2,...") from None
        if len(flat) % 2 or not 3 <= len(flat) // 2 <= 500 or not np.isfinite(flat).all():
            raise BadRequest("polygon needs 3 to 500 finite x,y vertices")
        p = self.projection_result(layer).points
        x, y = np.round(p["x"].to_numpy(dtype=np.float64), 6), np.round(p["y"].to_numpy(dtype=np.float64), 6)
        inside = points_in_polygon(x, y, flat.reshape(-1, 2))
        return p["row"].to_numpy(dtype=np.int64)[inside], p["input_id"].to_numpy(dtype=np.int64)[inside]

    def topomap_selection(self, name: str, layer: str, polygon: str, snapshot: str | None = None) -> dict:
        """A lasso of the input projection painted on map ``name``: per neuron, the selection
        against every other row of the map's layer (standardised difference of means), with
        the permutation test and FDR of ``neurocarta compare``
        (:func:`~neurocarta.methods.topomap.stats.rows_difference`). On the projection's own
        layer the lasso's rows are used as they are (tokens on a text layer); on another layer
        its inputs' rows."""
        from ..methods.topomap.stats import rows_difference

        r = self.topomap_result(name)
        snap = self.snapshot(snapshot)
        rows, ids = self.projection_selection(layer, polygon)
        if not len(rows):
            raise NotFound("the lasso holds no points; draw it around some")
        if layer != r.layer:
            ids = np.unique(ids)
            rows = self._input_rows(r.layer, ids)
        if self.atlas.mode == "summary":
            raise NotFound("a summary atlas stores no per-input activations to compare; re-extract with --mode full")
        n_rows = len(self.atlas.activations(r.layer, snap))
        rest = np.setdiff1d(np.arange(n_rows), rows)
        if not len(rest):
            raise NotFound("the lasso holds every input; leave some out to compare against")
        d = rows_difference(self.atlas, r.layer, rows, rest, snap, permutations=1000, stat=self._map_stat(r),
                            names=("lasso", "rest"))
        return jsonable({"layer": r.layer, "snapshot": snap, "projection_layer": layer,
                         "n_inputs": int(len(np.unique(ids))), "n_rows": int(len(rows)), "n_rest": int(len(rest)),
                         "values": float_list(d.effect, 4), "significant": d.significant.tolist(),
                         "n_significant": int(d.significant.sum()), "statistic_p": d.statistic_p, "test": d.test})

    # ------------------------------------------------------------ mapper
    def _mapper_result(self, layer: str):
        from ..methods.mapper import load_mapper

        return load_mapper(self.atlas, self._stored("mapper", self.layer(layer)))

    def mapper(self, layer: str) -> dict:
        r = self.mapper_result(layer)
        out = r.to_json()
        for n in out["nodes"]:
            n["id"] = n["node"]
        return jsonable(out)

    def mapper_members(self, layer: str) -> pd.DataFrame:
        return self.mapper_result(layer).members()

    def mapper_members_json(self, layer: str) -> dict[str, list[int]]:
        """The members as columns, ``{"node": [...], "row": [...], "input_id": [...]}``: the
        one JSON shape of ``/api/mapper/<layer>/members?format=json``, served and exported."""
        m = self.mapper_members(layer)
        return {c: m[c].astype(int).tolist() for c in ("node", "row", "input_id")}

    def mapper_flow(self, layer: str, next_layer: str) -> dict:
        """Sankey-ready flow of inputs from ``layer``'s nodes to ``next_layer``'s nodes."""
        from ..methods.mapper import flow

        a, b = self.mapper_result(layer), self.mapper_result(next_layer)
        f = flow(a, b)

        def nodes(r, ids):
            t = r.nodes.set_index("node")
            return [{"id": int(i), "size": int(t.at[i, "size"]),
                     "dominant": t.at[i, "dominant"] if "dominant" in t else None} for i in sorted(set(ids))]

        return jsonable({
            "source_layer": a.layer, "target_layer": b.layer,
            "sources": nodes(a, f["node_a"].tolist()), "targets": nodes(b, f["node_b"].tolist()),
            "links": [{"source": int(s), "target": int(t), "value": int(v)}
                      for s, t, v in zip(f["node_a"], f["node_b"], f["shared"])],
        })

    # ------------------------------------------------------------ concepts
    def _concept_result(self, snapshot: str):
        from ..methods.concepts import load_concepts

        return load_concepts(self.atlas, self._stored("concepts", self.snapshot(snapshot)))

    def concepts(self, snapshot: str) -> dict:
        r = self.concept_result(self.snapshot(snapshot))
        neurons = r.neurons[["layer", "unit", "cluster", "silent", "x", "y"]].copy()
        neurons.insert(0, "id", np.arange(len(neurons)))
        clusters = r.clusters.copy()
        clusters["members"] = clusters["members"].map(lambda m: [int(v) for v in m])
        graphs = {}
        for name, g in r.graphs.items():
            nodes = g.nodes.reset_index(names="id").copy()
            nodes["members"] = nodes["members"].map(lambda m: [int(v) for v in m])
            graphs[name] = {"layers": g.layers, "nodes": records(nodes), "edges": records(g.edges)}
        return jsonable({"snapshot": r.snapshot, "layers": r.layers, "params": r.params, "sizes": r.sizes,
                         "neurons": records(neurons), "clusters": records(clusters),
                         "coherence": records(r.coherence), "graphs": graphs})

    def concepts_nearest(self, snapshot: str, neuron: int, k: int = 10) -> list[dict]:
        r = self.concept_result(self.snapshot(snapshot))
        if not 0 <= neuron < len(r.neurons):
            raise NotFound(f"neuron must be a row of the concept table, 0..{len(r.neurons) - 1}, got {neuron}")
        if not 1 <= k <= 1000:
            raise BadRequest("k must be in 1..1000")
        try:
            return records(r.nearest(neuron, k=k))
        except UserError as e:
            raise NotFound(str(e)) from e

    # ------------------------------------------------------------ findings
    def _comparison(self) -> dict:
        """The comparison page: CKA of every pair of layers and snapshots, and concept matching,
        of this atlas alone or against ``compare`` (computed once, on the first request)."""
        result = compare_atlases(self.atlas, self.compare_atlas)
        names = {"A": self.atlas.url, **({"B": self.compare_atlas.url} if self.compare_atlas is not None else {})}
        return jsonable({**result.to_json(), "names": names})

    def findings(self) -> list:
        """:func:`neurocarta.findings.findings` of the atlas, JSON-ready. A rule that fails is a
        :class:`FindingsFailed` naming the error, never an empty list: "no findings" must mean
        that no rule fired, not that one crashed."""
        outcome = self._findings_outcome()
        if isinstance(outcome, FindingsFailed):
            raise outcome
        return outcome

    def _compute_findings(self) -> list | FindingsFailed:
        """The findings, or the failure as a value, so that it is cached like a result and a
        failing atlas does not rerun every rule on each request."""
        try:
            return jsonable(list(findings_rules.findings(self.atlas)))
        except Exception as e:  # noqa: BLE001: any failure of a rule becomes the panel's error
            message = " ".join(str(e).split())[:300]
            failed = FindingsFailed(f"the findings could not be computed ({type(e).__name__}: {message}); "
                                    "please report it, with the output of `neurocarta findings ATLAS`")
            failed.__cause__ = e
            return failed
