"""Method results stored inside an atlas: ``maps/<kind>/<name>/`` (private to the store).

A result is a few Parquet tables plus ``meta.json``. It is written to a temporary folder
and swapped in with renames, so a crash never leaves half a result, and rewriting a result
replaces it whole. Arrays a method makes for the viewer (exemplar patches) are written the
same way by :func:`save_array`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import zarr

from ..errors import AtlasError
from .atomic import replaced
from .layout import MAPS, node
from .location import Location


def folder(kind: str, name: str) -> str:
    return f"{MAPS}/{node(kind)}/{node(name)}"


def save(loc: Location, kind: str, name: str, tables: dict[str, pd.DataFrame], meta: dict) -> str:
    """Write a result; returns where it is (a local path, or a URL for remote atlases).

    Object stores have no folder renames: there the tables are written first and
    ``meta.json`` last, and a result counts as present only once its ``meta.json`` is.
    """
    rel = folder(kind, name)
    meta_text = json.dumps(meta, indent=1, default=_jsonable)
    if loc.local is None:
        loc.remove(f"{rel}/meta.json")  # first: the old result is gone before any of it is
        loc.remove(rel)
        for key, table in tables.items():
            loc.write_parquet(f"{rel}/{key}.parquet", table)
        loc.write_text(f"{rel}/meta.json", meta_text)
        return loc.url_of(rel)
    final = loc.local / rel
    final.parent.mkdir(parents=True, exist_ok=True)
    with replaced(final) as tmp:
        tmp.mkdir()
        for key, table in tables.items():
            table.to_parquet(tmp / f"{key}.parquet", index=False)
        (tmp / "meta.json").write_text(meta_text)
    return str(final)


def save_array(loc: Location, path: str, values: np.ndarray, chunks: tuple[int, ...],
               attrs: dict[str, Any] | None = None) -> None:
    """Write a whole Zarr array at ``path`` in the atlas, replacing any array there.

    Locally it is written beside its final place and swapped in with renames (as the
    results above are), so readers see the old array or the new one, never half of one.
    Object stores have no renames: the array is rewritten in place.
    """
    parent, _, name = path.rpartition("/")
    loc.zarr_group("a").require_group(parent)
    if loc.local is None:
        loc.remove(path)
        arr = zarr.create_array(store=loc.url_of(path), shape=values.shape, chunks=chunks, dtype=values.dtype,
                                zarr_format=3, attributes=attrs or {})
        arr[...] = values
        return
    with replaced(loc.local / parent / name) as tmp:
        arr = zarr.create_array(store=str(tmp), shape=values.shape, chunks=chunks, dtype=values.dtype,
                                zarr_format=3, attributes=attrs or {})
        arr[...] = values


def load(loc: Location, kind: str, name: str) -> tuple[dict[str, pd.DataFrame], dict]:
    rel = folder(kind, name)
    if not loc.exists(f"{rel}/meta.json"):
        have = names(loc, kind)
        raise AtlasError(f"the atlas has no {kind} result {name!r}; "
                         + (f"it has: {', '.join(have)}" if have else f"run `neurocarta {kind}` first"))
    meta = json.loads(loc.read_text(f"{rel}/meta.json"))
    tables = {n[:-len(".parquet")]: loc.read_parquet(f"{rel}/{n}")
              for n in loc.listdir(rel) if n.endswith(".parquet")}
    return tables, meta


def names(loc: Location, kind: str) -> list[str]:
    from urllib.parse import unquote

    base = f"{MAPS}/{node(kind)}"
    return sorted(unquote(n) for n in loc.listdir(base)
                  if not n.startswith(".") and loc.exists(f"{base}/{n}/meta.json"))


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
