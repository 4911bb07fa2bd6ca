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
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from ..errors import AtlasError, UserError
from . import layout
from .atomic import replaced
from .manifest import MANIFEST, PROGRESS, Manifest, read_manifest, write_json_atomic


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    os.replace(tmp, path)


def write_array_atomic(root: Path, path: str, values: np.ndarray, chunks: tuple[int, ...],
                       attrs: dict[str, Any] | None = None) -> None:
    """Write a whole Zarr array at ``path`` in the atlas ``root``, replacing any array there.

    It is written beside its final place and swapped in with renames (as method results
    are, see results.py), so readers see the old array or the new one, never half of one.
    """
    parent, _, name = path.rpartition("/")
    zarr.open_group(str(root), mode="a", zarr_format=3).require_group(parent)
    with replaced(Path(root) / parent / name) as tmp:
        arr = zarr.create_array(store=str(tmp), shape=values.shape, chunks=chunks, dtype=values.dtype,
                                zarr_format=3, attributes=attrs or {})
        arr[...] = values


class AtlasWriter:
    """Creates or resumes an atlas folder and commits chunks into it."""

    def __init__(self, root: Path, manifest: Manifest, progress: dict[str, Any]):
        self.root = root
        self.manifest = manifest
        self.progress = progress
        self.group = zarr.open_group(str(root), mode="a", zarr_format=3)
        self._arrays: dict[str, zarr.Array] = {}  # open handles: each lookup would re-read metadata
        (root / layout.WORK).mkdir(exist_ok=True)

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | Path, manifest: Manifest, inputs: pd.DataFrame,
             overwrite: bool = False) -> "AtlasWriter":
        """Start a new atlas at ``root`` or resume the partial one already there.

        A complete atlas made with the same parameters is returned as is (``.complete``);
        one made with other parameters is an error unless ``overwrite``.
        """
        root = Path(root)
        if root.exists() and overwrite:
            # Only ever delete an atlas (or an empty folder), never whatever else --out points at.
            if any(root.iterdir()) and not (root / MANIFEST).exists():
                raise UserError(f"{root} exists and is not an atlas; --overwrite only replaces atlases")
            shutil.rmtree(root)
        if root.exists() and any(root.iterdir()):
            if not (root / MANIFEST).exists():
                raise UserError(f"{root} exists and is not an atlas; choose another --out or empty it")
            try:
                old = read_manifest(root)
            except AtlasError as e:
                raise UserError(f"{e}; or pass --overwrite to replace it") from e
            if old.identity() != manifest.identity():
                diff = _first_difference(old.identity(), manifest.identity())
                raise UserError(
                    f"{root} holds an atlas made with other settings ({diff}); "
                    "use another --out, or pass --overwrite to replace it"
                )
            progress = _read_progress(root)
            writer = cls(root, old, progress)
            return writer
        root.mkdir(parents=True, exist_ok=True)
        zarr.open_group(str(root), mode="w", zarr_format=3)
        write_parquet_atomic(inputs, root / layout.INPUTS)
        progress = {"snapshot": 0, "n_done": 0, "state": None, "complete": False}
        write_json_atomic(root / MANIFEST, manifest.to_json())
        write_json_atomic(root / PROGRESS, progress)
        return cls(root, manifest, progress)

    @property
    def complete(self) -> bool:
        return bool(self.manifest.complete)

    # ----------------------------------------------------------------- arrays
    def create_array(self, path: str, shape: tuple[int, ...], chunks: tuple[int, ...],
                     dtype: Any, fill_value: Any = 0) -> zarr.Array:
        """Create an array, or return it when a resumed run already made it."""
        if path in self.group:
            arr = self.group[path]
            if tuple(arr.shape[1:]) != tuple(shape[1:]):
                raise AtlasError(f"array {path} in {self.root} has shape {arr.shape}, expected {shape}")
        else:
            arr = self.group.create_array(path, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value)
        self._arrays[path] = arr
        return arr

    def array(self, path: str) -> zarr.Array:
        if path not in self._arrays:
            self._arrays[path] = self.group[path]
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
        folder = self.root / layout.WORK / kind
        folder.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(df, folder / f"{snap_index:04d}-{start:012d}.parquet")

    def _merge_parts(self, kind: str, target: str) -> None:
        """Stream the parts into one Parquet file, one part in memory at a time."""
        folder = self.root / layout.WORK / kind
        parts = sorted(folder.glob("*.parquet")) if folder.exists() else []
        if not parts:
            return
        tmp = self.root / f".{target}.tmp"
        schema = pq.read_schema(parts[0])
        with pq.ParquetWriter(tmp, schema) as out:
            for part in parts:
                out.write_table(pq.read_table(part).cast(schema))
        os.replace(tmp, self.root / target)

    # ----------------------------------------------------------------- commits
    def commit(self, snap_index: int, n_done: int, state: dict[str, Any]) -> None:
        """Record that inputs ``[0, n_done)`` of snapshot ``snap_index`` are durable."""
        work = self.root / layout.WORK
        name = f"state-{snap_index:04d}-{n_done:012d}.pkl"
        tmp = work / f".{name}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, work / name)
        old = self.progress.get("state")
        self.progress = {"snapshot": snap_index, "n_done": n_done, "state": name, "complete": False}
        write_json_atomic(self.root / PROGRESS, self.progress)
        if old and old != name and (work / old).exists():
            (work / old).unlink()

    def load_state(self) -> dict[str, Any] | None:
        name = self.progress.get("state")
        if not name:
            return None
        path = self.root / layout.WORK / name
        if not path.exists():
            raise AtlasError(f"atlas {self.root} lost its resume state {name}; pass --overwrite to start again")
        with open(path, "rb") as f:
            return pickle.load(f)

    def finish(self, n_rows: dict[str, int]) -> None:
        """Merge table parts, record row counts and mark the atlas complete (last step)."""
        self._merge_parts("outputs", layout.OUTPUTS)
        self._merge_parts("tokens", layout.TOKENS)
        for info in self.manifest.layers:
            info.n_rows = int(n_rows[info.name])
        self.manifest.complete = True
        self.progress = {"snapshot": len(self.manifest.snapshots), "n_done": self.manifest.n_inputs,
                         "state": None, "complete": True}
        # The manifest first: once it says complete the atlas is done, whatever follows.
        write_json_atomic(self.root / MANIFEST, self.manifest.to_json())
        write_json_atomic(self.root / PROGRESS, self.progress)
        shutil.rmtree(self.root / layout.WORK, ignore_errors=True)


def _read_progress(root: Path) -> dict[str, Any]:
    path = root / PROGRESS
    if not path.exists():
        return {"snapshot": 0, "n_done": 0, "state": None, "complete": False}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise AtlasError(f"atlas {root} has a corrupt {PROGRESS}; pass --overwrite to start again") from e


def _first_difference(a: dict, b: dict) -> str:
    for key in a:
        if a[key] != b.get(key):
            if isinstance(a[key], dict) and isinstance(b.get(key), dict):
                return _first_difference(a[key], b[key])
            return f"{key}: {a[key]!r} there, {b.get(key)!r} now"
    return "settings differ"
