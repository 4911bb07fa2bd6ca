"""Feature visualizations stored in an atlas: ``featvis/<snap>/<layer>/`` (see layout.py).

``images``: uint8 (targets, images, s, s, 3), each target's images best first; its
attributes hold the size, the images per target and how they were made. ``targets.parquet``:
one row per target, in the images' order, with ``kind``, ``target`` (the id as text),
``objective`` (in words), ``activation`` (the objective the best stored image reaches),
``activations`` (every image's), ``exemplar_activation`` and ``exemplar_input_id`` (the best
dataset input's objective and id; missing when the atlas cannot say). The table is written
after the images and marks the layer's visualizations as present; both carry the same run
id, so a table whose images a crash replaced half-way reads as absent, never as the wrong
images. A new run of a layer keeps
the stored targets it does not redo, when their images have the same size and count.

Writing is :mod:`neurocarta.featvis`'s (it needs the model); reading is everyone's (the
viewer, the export), without torch.
"""

from __future__ import annotations

import uuid
from urllib.parse import unquote

import numpy as np
import pandas as pd

from . import layout, results
from .atlas import Atlas
from .status import note_stored

#: the layer name class targets are stored under: the model's output logits
OUTPUT = "output"
TABLE = "targets.parquet"
IMAGES = "images"
COLUMNS = ["kind", "target", "objective", "activation", "activations", "exemplar_activation", "exemplar_input_id",
           "run"]


def featvis_layers(atlas: Atlas) -> dict[str, list[str]]:
    """``{snapshot: [layer, ...]}`` for every snapshot with stored visualizations, layers in
    the atlas's order (``output``, class logits, last)."""
    loc = atlas.location
    out: dict[str, list[str]] = {}
    for snap in atlas.snapshots:
        base = f"featvis/{layout.node(snap)}"
        stored = {unquote(n) for n in loc.listdir(base)
                  if loc.exists(f"{base}/{n}/{TABLE}") and featvis_table(atlas, unquote(n), snap) is not None}
        if stored:
            order = {name: i for i, name in enumerate(atlas.layer_names)}
            out[snap] = sorted(stored, key=lambda n: (order.get(n, len(order)), n))
    return out


def featvis_table(atlas: Atlas, layer: str, snapshot: str | None = None) -> pd.DataFrame | None:
    """The targets table of ``layer`` at ``snapshot`` (default: the last), or ``None``."""
    rel = f"{layout.featvis(atlas.snapshot_name(snapshot), layer)}/{TABLE}"
    if not atlas.location.exists(rel):
        return None
    table = atlas.location.read_parquet(rel)
    images = featvis_images(atlas, layer, snapshot)
    if images is None or len(table) != images.shape[0] or \
            ("run" in table.columns and len(table) and table["run"].iloc[0] != images.attrs.get("run")):
        return None  # the images of another run (a write cut short): nothing trustworthy is stored
    return table


def featvis_images(atlas: Atlas, layer: str, snapshot: str | None = None):
    """The stored images of ``layer`` (a lazy Zarr array, (targets, images, s, s, 3)), or ``None``."""
    path = f"{layout.featvis(atlas.snapshot_name(snapshot), layer)}/{IMAGES}"
    group = atlas.location.zarr_group("r")
    return group[path] if path in group else None


def save_featvis(atlas: Atlas, layer: str, snapshot: str, images: np.ndarray, table: pd.DataFrame,
                 attrs: dict) -> None:
    """Store one layer's visualizations (see the module docstring), merged with the stored
    targets this run did not redo."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 5 or images.shape[-1] != 3 or len(images) != len(table):
        raise ValueError(f"feature visualizations must be uint8 (targets, images, s, s, 3), one per table row; "
                         f"got {images.dtype} {images.shape} for {len(table)} rows")
    old, old_images = featvis_table(atlas, layer, snapshot), featvis_images(atlas, layer, snapshot)
    if old is not None and old_images is not None and tuple(old_images.shape[1:]) == images.shape[1:]:
        redone = set(zip(table["kind"], table["target"]))
        keep = np.array([(k, t) not in redone for k, t in zip(old["kind"], old["target"])], dtype=bool)
        if keep.any():
            images = np.concatenate([np.asarray(old_images.oindex[np.nonzero(keep)[0]]), images])
            table = pd.concat([old[keep], table], ignore_index=True)
    base = layout.featvis(snapshot, layer)
    n, per, s = images.shape[:3]
    run = uuid.uuid4().hex
    table = table.assign(run=run)
    results.save_array(atlas.location, f"{base}/{IMAGES}", images, chunks=(max(1, min(16, n)), per, s, s, 3),
                       attrs={**attrs, "size": int(s), "images": int(per), "run": run})
    atlas.location.write_parquet(f"{base}/{TABLE}", table[COLUMNS].reset_index(drop=True))
    note_stored(atlas.location, f"featvis {snapshot}/{layer}")  # a running viewer reads them afresh
