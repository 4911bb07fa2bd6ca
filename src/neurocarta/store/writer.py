"""Writing an atlas: chunk by chunk, atomically, resumably.

The extraction loop hands the writer one chunk of inputs at a time. The writer puts the
chunk's rows into Zarr arrays and its table rows into Parquet parts, then *commits*: it
saves the streaming accumulators' state and, last, rewrites ``progress.json`` with an atomic
rename. A process killed at any point leaves the previous commit intact; running the same
command again resumes from it and overwrites whatever the killed run wrote past it, so the
final arrays equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from zarr.codecs import ZstdCodec

from ..errors import AtlasError, UserError
from . import layout
from .location import Location, as_location
from .manifest import MANIFEST, PROGRESS, Manifest, json_text, read_manifest
from .schema import ROW


#: the codec choices of :meth:`AtlasWriter.create_array` (None: Zarr's default, zstd level 3)
COMPRESSION: dict[str, Any] = {"default": None, "fast": (ZstdCodec(level=1),), "none": ()}

#: How the writer's array handles write. By default Zarr compares every chunk with the fill
#: value and skips writing one that equals it: a full extra pass over the data, for chunks
#: of activations (1,024 inputs x every neuron) that are never all zero. Writing them as they
#: are took the demo-cnn chunk writes from 0.072 to 0.050 CPU ms per input (issue 17).
#: Readers see the same values either way; this is no part of the stored metadata.
WRITE_CONFIG = {"write_empty_chunks": True}


class AtlasWriter:
    """Creates or resumes an atlas folder and commits chunks into it."""

    def __init__(self, loc: Location, manifest: Manifest, progress: dict[str, Any]):
        self.loc = loc
        self.manifest = manifest
        self.progress = progress
        self.group = loc.zarr_group("a")
        self._arrays: dict[str, zarr.Array] = {}  # open handles: each lookup would re-read metadata
        loc.mkdir(layout.WORK)

    @classmethod
    def attach(cls, root: "Location | str | Path") -> "AtlasWriter":
        """A writer for a worker of a distributed run: it writes array rows and table parts
        into the atlas the coordinator opened, and never touches the manifest or progress."""
        loc = as_location(root)
        return cls(loc, read_manifest(loc), {})

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | Path, manifest: Manifest, inputs: pd.DataFrame,
             overwrite: bool = False) -> "AtlasWriter":
        """Start a new atlas at ``root`` or resume the partial one already there.

        A complete atlas made with the same parameters is returned as is (``.complete``);
        one made with other parameters is an error unless ``overwrite``.
        """
        loc = as_location(root)
        if loc.exists() and overwrite:
            # Only ever delete an atlas (or an empty folder), never whatever else --out points at.
            if loc.listdir() and not loc.exists(MANIFEST):
                raise UserError(f"{loc} exists and is not an atlas; --overwrite only replaces atlases")
            loc.remove()
        if loc.exists() and loc.listdir():
            if not loc.exists(MANIFEST):
                raise UserError(f"{loc} exists and is not an atlas; choose another --out or empty it")
            try:
                old = read_manifest(loc)
            except AtlasError as e:
                raise UserError(f"{e}; or pass --overwrite to replace it") from e
            if old.identity() != manifest.identity():
                diff = _first_difference(old.identity(), manifest.identity())
                raise UserError(
                    f"{loc} holds an atlas made with other settings ({diff}); "
                    "use another --out, or pass --overwrite to replace it"
                )
            return cls(loc, old, _read_progress(loc))
        loc.mkdir()
        loc.zarr_group("w")
        loc.write_parquet(layout.INPUTS, inputs)
        progress = {"snapshot": 0, "n_done": 0, "state": None, "complete": False}
        loc.write_text(MANIFEST, json_text(manifest.to_json()))
        loc.write_text(PROGRESS, json_text(progress))
        return cls(loc, manifest, progress)

    @property
    def complete(self) -> bool:
        return bool(self.manifest.complete)

    # ----------------------------------------------------------------- arrays
    def create_array(self, path: str, shape: tuple[int, ...], chunks: tuple[int, ...],
                     dtype: Any, fill_value: Any = 0, compression: str = "default") -> zarr.Array:
        """Create an array, or return it when a resumed run already made it.

        ``compression`` (see :data:`COMPRESSION`): ``"default"`` (Zarr's zstd), ``"fast"``
        (zstd level 1: thumbnails compress as well, for 2/3 of the CPU time) or ``"none"``
        (dense float16 activations, which zstd shrinks only to ~0.9 for 3x the write cost).
        Readers need nothing: the codecs are in each array's metadata.
        """
        if compression not in COMPRESSION:
            raise ValueError(f"compression must be one of {sorted(COMPRESSION)}, got {compression!r}")
        if path in self.group:
            arr = self.group[path]
            if tuple(arr.shape[1:]) != tuple(shape[1:]):
                raise AtlasError(f"array {path} in {self.loc} has shape {arr.shape}, expected {shape}")
        else:
            codecs = COMPRESSION[compression]
            kw = {} if codecs is None else {"compressors": codecs}
            arr = self.group.create_array(path, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value, **kw)
        self._arrays[path] = arr.with_config(WRITE_CONFIG)
        return self._arrays[path]

    def array(self, path: str) -> zarr.Array:
        if path not in self._arrays:
            self._arrays[path] = self.group[path].with_config(WRITE_CONFIG)
        return self._arrays[path]

    def write_rows(self, path: str, start: int, values: np.ndarray) -> None:
        """Write rows ``start:start+len(values)``, growing a token-row array when needed."""
        self.write_many([(path, start, values)])

    def write_many(self, writes: list[tuple[str, int, np.ndarray]]) -> None:
        """Write several ``(path, start, rows)`` blocks in one round trip to Zarr's I/O loop.

        Zarr v3 runs every write on its own event-loop thread; one gathered call per chunk
        instead of one call per array keeps the GIL hand-offs (which stall the model's
        forward pass in the main thread) to one per chunk.
        """
        import asyncio

        from zarr.core.sync import sync

        coros = []
        for path, start, values in writes:
            arr = self.array(path)
            stop = start + values.shape[0]
            if stop > arr.shape[0]:
                arr.resize((stop,) + tuple(arr.shape[1:]))
            if values.shape[0]:
                coros.append(arr.async_array.setitem(slice(start, stop), values))

        async def gather() -> None:
            await asyncio.gather(*coros)

        if coros:
            sync(gather())

    def truncate_rows(self, path: str, n_rows: int) -> None:
        """Cut a growable array back to its committed length (after a resume)."""
        arr = self.array(path)
        if arr.shape[0] != n_rows:
            arr.resize((n_rows,) + tuple(arr.shape[1:]))

    def put_array(self, path: str, values: np.ndarray) -> None:
        """Write a small whole array in one storage chunk (a snapshot's top-k or group sums),
        replacing any that an interrupted run left there."""
        if path in self.group:
            del self.group[path]
        self._arrays.pop(path, None)
        chunks = tuple(max(1, s) for s in values.shape) or (1,)
        self.group.create_array(path, shape=values.shape, chunks=chunks, dtype=values.dtype)[...] = values

    def set_attrs(self, path: str, attrs: dict[str, Any]) -> None:
        """Set attributes of the array or group at ``path`` (JSON values)."""
        self.group[path].attrs.update(attrs)

    def write_work_file(self, name: str, data: bytes) -> str:
        """Write a file the unfinished run needs (objects for distributed workers) under
        ``_work/``, which :meth:`finish` removes; returns its path inside the atlas."""
        rel = f"{layout.WORK}/{name}"
        self.loc.write_bytes(rel, data)
        return rel

    def write_links(self, snap: str, links: dict[tuple[str, str], np.ndarray]) -> None:
        """Store one snapshot's ``|W|`` matrices between consecutive layers (see capture/links.py).

        The ``pairs`` attribute, written last, lists them in forward order; a rerun replaces them.
        """
        base = layout.links(snap)
        if base in self.group:
            del self.group[base]
        group = self.group.require_group(base)
        for (a, b), w in links.items():
            w = np.asarray(w, dtype=np.float32)
            self.group.create_array(layout.link(snap, a, b), shape=w.shape, chunks=w.shape, dtype=w.dtype)[...] = w
        group.attrs["pairs"] = [[a, b] for a, b in links]

    # ----------------------------------------------------------------- tables
    def write_part(self, kind: str, snap_index: int, start: int, df: pd.DataFrame) -> None:
        """One chunk's table rows; parts are named by (snapshot, first input), so a rerun of
        the same chunk (a resume, a retried worker) replaces its part rather than adding one."""
        self.loc.write_parquet(f"{layout.WORK}/{kind}/{snap_index:04d}-{start:012d}.parquet", df)

    def _merge_parts(self, kind: str, target: str, renumber: str | None = None) -> None:
        """Stream the parts, in order, into one Parquet file, one part in memory at a time.

        ``renumber`` names a column rewritten as 0, 1, 2... over the merged rows (token rows:
        workers number them within their own shard).
        """
        folder = f"{layout.WORK}/{kind}"
        parts = [n for n in self.loc.listdir(folder) if n.endswith(".parquet") and not n.startswith(".")]
        if not parts:
            return
        with self.loc.open(f"{folder}/{parts[0]}") as f:
            schema = pq.read_schema(f)
        done = 0
        with self.loc.writing(target) as sink, pq.ParquetWriter(sink, schema) as out:
            for name in parts:
                with self.loc.open(f"{folder}/{name}") as f:
                    table = pq.read_table(f).cast(schema)
                if renumber is not None:
                    col = schema.get_field_index(renumber)
                    values = pa.array(np.arange(done, done + table.num_rows, dtype=np.int64))
                    table = table.set_column(col, schema.field(col), values)
                done += table.num_rows
                out.write_table(table)

    # ----------------------------------------------------------------- commits
    def commit(self, snap_index: int, n_done: int, state: dict[str, Any],
               shards: list[list[int]] | None = None) -> None:
        """Record that inputs ``[0, n_done)`` of snapshot ``snap_index`` are durable.

        A distributed run finishes shards out of order: it passes ``shards``, the
        ``[start, stop)`` ranges done (``n_done`` is then their total), and resumes only the others.
        """
        name = f"state-{snap_index:04d}-{n_done:012d}.pkl"
        self.loc.write_bytes(f"{layout.WORK}/{name}", pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        old = self.progress.get("state")
        self.progress = {"snapshot": snap_index, "n_done": n_done, "state": name, "complete": False}
        if shards is not None:
            self.progress["shards"] = shards
        self.loc.write_text(PROGRESS, json_text(self.progress))
        if old and old != name:
            self.loc.remove(f"{layout.WORK}/{old}")

    def load_state(self) -> dict[str, Any] | None:
        name = self.progress.get("state")
        if not name:
            return None
        path = f"{layout.WORK}/{name}"
        if not self.loc.exists(path):
            raise AtlasError(f"atlas {self.loc} lost its resume state {name}; pass --overwrite to start again")
        return pickle.loads(self.loc.read_bytes(path))

    def finish(self, n_rows: dict[str, int]) -> None:
        """Merge table parts, record row counts and mark the atlas complete (last step)."""
        self._merge_parts("outputs", layout.OUTPUTS)
        self._merge_parts("tokens", layout.TOKENS, renumber=ROW)
        for info in self.manifest.layers:
            info.n_rows = int(n_rows[info.name])
        self.manifest.complete = True
        self.progress = {"snapshot": len(self.manifest.snapshots), "n_done": self.manifest.n_inputs,
                         "state": None, "complete": True}
        # The manifest first: once it says complete the atlas is done, whatever follows.
        self.loc.write_text(MANIFEST, json_text(self.manifest.to_json()))
        self.loc.write_text(PROGRESS, json_text(self.progress))
        self.loc.remove(layout.WORK)


def _read_progress(loc: Location) -> dict[str, Any]:
    if not loc.exists(PROGRESS):
        return {"snapshot": 0, "n_done": 0, "state": None, "complete": False}
    try:
        return json.loads(loc.read_text(PROGRESS))
    except json.JSONDecodeError as e:
        raise AtlasError(f"atlas {loc} has a corrupt {PROGRESS}; pass --overwrite to start again") from e


def _first_difference(a: dict, b: dict) -> str:
    for key in a:
        if a[key] != b.get(key):
            if isinstance(a[key], dict) and isinstance(b.get(key), dict):
                return _first_difference(a[key], b[key])
            return f"{key}: {a[key]!r} there, {b.get(key)!r} now"
    return "settings differ"
