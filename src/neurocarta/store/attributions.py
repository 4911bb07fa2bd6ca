"""Attributions stored in an atlas: what ``neurocarta attribute`` computed, read back by the
viewer without torch.

Per snapshot, one *item* per (input, method, target):

- the index, a result table ``maps/attributions/<snap>/items.parquet`` (one row per item:
  ``index``, ``input_id``, ``method``, ``target_kind``, ``target``, ``layer``, ``kind``
  (``image`` or ``tokens``), ``total``, ``score``, ``row``);
- image items: a per-pixel map (absolute attribution summed over colour, at the model's input
  size), row ``row`` of the Zarr array ``attributions/<snap>/images``;
- token items: their signed per-token values, ``maps/attributions/<snap>/tokens.parquet``
  (``index``, ``position``, ``token``, ``value``).

A save writes the image array first and the index last (each swapped in whole), so the index
never names a row the array lacks. Computing the same (input, method, target) again replaces
its item in place, under the same index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import layout, results
from .status import note_stored

if TYPE_CHECKING:
    from .atlas import Atlas

KIND = "attributions"
#: what makes two items the same attribution (a recomputation replaces it)
KEY = ["input_id", "method", "target_kind", "target", "layer"]
ITEM_COLUMNS = ["index", *KEY, "kind", "total", "score", "row"]
TOKEN_COLUMNS = ["index", "position", "token", "value"]


@dataclass
class AttributionItem:
    """One computed attribution, before it is stored.

    ``values``: an image's (H, W) non-negative map, or a text's signed per-token values
    (with ``tokens``). ``total``: the sum of the raw attributions over every input feature
    (integrated gradients: about the target's change from the baseline). ``score``: the
    target's value at the input.
    """

    input_id: int
    method: str
    target_kind: str
    target: str
    layer: str | None
    kind: str
    values: np.ndarray
    total: float
    score: float
    tokens: list[str] = field(default_factory=list)
    index: int | None = None  # its number in the atlas, once saved


def snapshots_with_attributions(atlas: Atlas) -> list[str]:
    return atlas.maps(KIND)


def items(atlas: Atlas, snapshot: str) -> pd.DataFrame:
    """The index of ``snapshot``'s stored attributions (empty when there are none)."""
    if snapshot not in atlas.maps(KIND):
        return pd.DataFrame(columns=ITEM_COLUMNS)
    tables, _ = atlas.load_map(KIND, snapshot)
    return tables["items"]


def attributed_inputs(atlas: Atlas) -> dict[str, list[str]]:
    """``{snapshot: [input_id, ...]}`` (ids as strings, sorted by number): what the viewer's
    manifest says has attributions."""
    out = {}
    for snap in snapshots_with_attributions(atlas):
        ids = sorted(set(int(i) for i in items(atlas, snap)["input_id"]))
        if ids:
            out[snap] = [str(i) for i in ids]
    return out


def input_items(atlas: Atlas, snapshot: str, input_id: int) -> list[dict[str, Any]]:
    """One input's attributions as the viewer's JSON items (token values normalised to [-1, 1]
    by the largest magnitude of the item)."""
    if snapshot not in atlas.maps(KIND):
        return []
    tables, _ = atlas.load_map(KIND, snapshot)
    index = tables["items"]
    index = index[index["input_id"] == int(input_id)]
    tokens = tables.get("tokens")
    out = []
    for r in index.itertuples(index=False):
        item: dict[str, Any] = {
            "index": int(r.index), "method": r.method, "target_kind": r.target_kind, "target": r.target,
            "layer": r.layer or None, "kind": r.kind, "total": float(r.total), "score": float(r.score),
        }
        if r.kind == "tokens" and tokens is not None:
            rows = tokens[tokens["index"] == r.index].sort_values("position")
            values = rows["value"].to_numpy(dtype=np.float64)
            scale = float(np.abs(values).max()) if len(values) else 0.0
            norm = values / scale if scale > 0 else values * 0.0
            item["tokens"] = [{"token": t, "value": round(float(v), 4)} for t, v in zip(rows["token"], norm)]
        out.append(item)
    return out


def image_map(atlas: Atlas, snapshot: str, index: int) -> np.ndarray | None:
    """Item ``index``'s per-pixel map (H, W) float32, or ``None`` when it is not an image item."""
    table = items(atlas, snapshot)
    row = table[table["index"] == int(index)]
    if row.empty or row["kind"].iloc[0] != "image":
        return None
    group = atlas.location.zarr_group("r")
    return np.asarray(group[layout.attribution_images(snapshot)][int(row["row"].iloc[0])], dtype=np.float32)


def save(atlas: Atlas, snapshot: str, new: list[AttributionItem]) -> list[int]:
    """Store ``new`` for ``snapshot``, replacing items with the same key; returns their indices."""
    if not new:
        return []
    old_tables = atlas.load_map(KIND, snapshot)[0] if snapshot in atlas.maps(KIND) else {}
    index = old_tables.get("items", pd.DataFrame(columns=ITEM_COLUMNS)).copy()
    tokens = old_tables.get("tokens", pd.DataFrame(columns=TOKEN_COLUMNS))
    images = _stored_images(atlas, snapshot, index)
    keys = {tuple(_key_value(v) for v in row): i for i, row in zip(index["index"], index[KEY].itertuples(index=False))}
    next_index = int(index["index"].max()) + 1 if len(index) else 0
    rows, token_parts, done = [], [], []
    for item in new:
        key = (int(item.input_id), item.method, item.target_kind, item.target, item.layer or "")
        number = keys.get(key)
        if number is None:
            number, next_index = next_index, next_index + 1
            keys[key] = number
        else:
            index = index[index["index"] != number]
            tokens = tokens[tokens["index"] != number]
        row = -1
        if item.kind == "image":
            old_row = _old_row(old_tables, number)
            images, row = _put_image(images, item.values.astype(np.float32), old_row)
        else:
            token_parts.append(pd.DataFrame({"index": number, "position": np.arange(len(item.values)),
                                             "token": [str(t) for t in item.tokens],
                                             "value": np.asarray(item.values, dtype=np.float32)}))
        rows.append({"index": number, "input_id": int(item.input_id), "method": item.method,
                     "target_kind": item.target_kind, "target": item.target, "layer": item.layer or "",
                     "kind": item.kind, "total": float(item.total), "score": float(item.score), "row": row})
        item.index = number
        done.append(number)
    index = pd.concat([index, pd.DataFrame(rows)], ignore_index=True) if len(index) else pd.DataFrame(rows)
    index = index[ITEM_COLUMNS].sort_values("index").reset_index(drop=True)
    tokens = pd.concat([t for t in [tokens, *token_parts] if len(t)] or [pd.DataFrame(columns=TOKEN_COLUMNS)],
                       ignore_index=True)
    if images is not None:  # the array first: the index written next may name its new rows
        results.save_array(atlas.location, layout.attribution_images(snapshot), images,
                           chunks=(1, *images.shape[1:]), attrs={"kind": "per-pixel attribution"})
    atlas.save_map(KIND, snapshot, {"items": index, "tokens": tokens}, {"snapshot": snapshot})
    note_stored(atlas.location, f"attributions {snapshot}")  # a running viewer reads them afresh
    return done


def _key_value(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else value


def _stored_images(atlas: Atlas, snapshot: str, index: pd.DataFrame) -> np.ndarray | None:
    path = layout.attribution_images(snapshot)
    group = atlas.location.zarr_group("r")
    if not len(index) or path not in group:
        return None
    return np.asarray(group[path][...], dtype=np.float32)


def _old_row(tables: dict, number: int) -> int:
    index = tables.get("items")
    if index is None:
        return -1
    hit = index[(index["index"] == number) & (index["kind"] == "image")]
    return int(hit["row"].iloc[0]) if len(hit) else -1


def _put_image(images: np.ndarray | None, values: np.ndarray, row: int) -> tuple[np.ndarray, int]:
    """Write ``values`` at ``row`` (a replaced item) or append it; maps of another size (a
    different input size) cannot share the array and are an error of the caller."""
    if images is not None and images.shape[1:] != values.shape:
        raise ValueError(f"attribution maps are {images.shape[1:]}, not {values.shape}")
    if images is None:
        return values[None].copy(), 0
    if row >= 0:
        images[row] = values
        return images, row
    return np.concatenate([images, values[None]]), len(images)
