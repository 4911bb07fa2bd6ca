"""One row per input for any layer of any atlas, matched across atlases by ``input_id``.

Why one row per input, also for text layers: layers of one model, its snapshots and another
model are compared on the *same inputs*. A text layer's token rows are averaged per input
(the mean over its kept tokens), so a token layer compares with a pooled layer, and two models
with different tokenisers compare at all; matching token rows by (input_id, position) would only
work for one tokeniser. Conv layers give the spatial mean per channel (global average pooling),
the signal every atlas stores.

Full atlases read their stored activations; summary atlases (``--mode summary``) keep no full
arrays, only a seeded row sample, which is what a million-input atlas is compared through: the
inputs of the sample are the ones available.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...errors import UserError
from ...store.schema import INPUT_ID, ROW
from ..topomap.inputs import segment_means

if TYPE_CHECKING:
    from ...store import Atlas

#: fewer shared inputs than this and CKA says nothing reliable (and batches get too small)
MIN_SHARED_INPUTS = 50


@dataclass(frozen=True)
class Representation:
    """A layer of an atlas at one snapshot; ``atlas_label`` names the atlas in tables (A, B)."""
    atlas: "Atlas"
    atlas_label: str
    layer: str
    snapshot: str

    @property
    def name(self) -> str:
        return f"{self.atlas_label}:{self.layer}@{self.snapshot}"


def available_inputs(atlas: "Atlas") -> np.ndarray:
    """The sorted input ids whose rows the atlas holds for every layer: all of them in a full
    atlas, the seeded sample's in a summary one (every layer samples the same inputs)."""
    ids = np.sort(atlas.input_table[INPUT_ID].to_numpy(dtype=np.int64))
    if atlas.mode != "summary":
        return ids
    first = atlas.layer_names[0]
    rows, _ = atlas.sample(first, atlas.snapshots[-1])
    return np.unique(_row_inputs(atlas, first, rows))


def shared_inputs(atlases: dict[str, "Atlas"]) -> np.ndarray:
    """The input ids every atlas holds, or one line saying they share too few. Atlases made
    from different data specs get one warning: input_id i must be the same input in both."""
    labels = list(atlases)
    specs = {label: a.manifest.data.get("spec") for label, a in atlases.items()}
    if len(set(specs.values())) > 1:
        warnings.warn(f"the atlases were made from different data ({' vs '.join(map(str, specs.values()))}); "
                      "inputs are matched by input_id, so input i must be the same input in both")
    ids = available_inputs(atlases[labels[0]])
    for label in labels[1:]:
        ids = np.intersect1d(ids, available_inputs(atlases[label]), assume_unique=True)
    if len(ids) < MIN_SHARED_INPUTS:
        which = " and ".join(a.url for a in atlases.values())
        raise UserError(
            f"{which} share only {len(ids)} inputs by input_id (at least {MIN_SHARED_INPUTS} needed); compare "
            "atlases extracted from the same data (the same --data spec, and for summary atlases the same "
            "--sample-size and --seed)")
    return ids


def _row_inputs(atlas: "Atlas", layer: str, rows: np.ndarray) -> np.ndarray:
    """The input id of each activation row of ``layer``."""
    if atlas.manifest.layer(layer).rows != "token":
        return atlas.input_table[INPUT_ID].to_numpy(dtype=np.int64)[rows]
    tokens = atlas.tokens
    by_row = np.empty(int(tokens[ROW].max()) + 1, dtype=np.int64)
    by_row[tokens[ROW].to_numpy(dtype=np.int64)] = tokens[INPUT_ID].to_numpy(dtype=np.int64)
    return by_row[rows]


def _mean_per_input(values: np.ndarray, row_inputs: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    """The mean of each input's rows, in the order of ``ids`` (every id must have rows)."""
    order = np.argsort(row_inputs, kind="stable")
    sorted_inputs = row_inputs[order]
    present, lengths = np.unique(sorted_inputs, return_counts=True)
    if not np.isin(ids, present, assume_unique=True).all():
        raise UserError(f"{what} has no rows for some of the compared inputs (inputs without kept tokens?)")
    means = segment_means(values[order], lengths)
    return means[np.searchsorted(present, ids)]


def input_rows(rep: Representation, ids: np.ndarray) -> np.ndarray:
    """(len(ids) x neurons) float32: one row per input id (sorted ids), as the module says."""
    atlas, layer, snap = rep.atlas, rep.layer, rep.snapshot
    info = atlas.manifest.layer(layer)
    if atlas.mode == "summary":
        rows, values = atlas.sample(layer, snap, stat="mean")
        row_inputs = _row_inputs(atlas, layer, rows)
        keep = np.isin(row_inputs, ids)
        return _mean_per_input(values[keep], row_inputs[keep], ids, rep.name).astype(np.float32)
    acts = atlas.activations(layer, snap, stat="mean")
    if info.rows != "token":  # input_id is the row of every per-input array
        contiguous = len(ids) and ids[-1] - ids[0] + 1 == len(ids)
        return acts[int(ids[0]):int(ids[-1]) + 1] if contiguous else acts[ids]
    tokens = atlas.tokens
    picked = tokens[np.isin(tokens[INPUT_ID].to_numpy(dtype=np.int64), ids)]
    rows = picked[ROW].to_numpy(dtype=np.int64)
    return _mean_per_input(acts[rows], picked[INPUT_ID].to_numpy(dtype=np.int64), ids, rep.name).astype(np.float32)
