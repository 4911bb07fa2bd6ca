"""Per-class concept graphs of an atlas: the atlas-reading side of ``graph.py``.

For every class: Summit's neuron importance from each input's channel maxima, the class's
mean activations, the weight links recorded at extraction and, for layer pairs without a
link, the class's per-input top sets for the co-activation fallback.

Inputs: every row of a full atlas, or a seeded subset of ``max_rows`` (importance counts
and means converge long before ImageNet's 1.2M rows); the row sample of a summary atlas.
All layers must have one row per input (token layers are left out of class graphs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...errors import UserError
from .graph import DEFAULT_MASS, ConceptGraph, class_importance, concept_graph, require_labels, top_sets

if TYPE_CHECKING:
    from ...store import Atlas


def class_rows(atlas: Atlas, layer: str, snapshot: str, max_rows: int, seed: int) -> np.ndarray:
    """The activation rows the class graphs read (sorted)."""
    if atlas.mode == "summary":
        rows, _ = atlas.sample(layer, snapshot)
        return np.sort(np.asarray(rows, dtype=np.int64))
    n = atlas.activations(layer, snapshot).shape[0]
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def _read(atlas: Atlas, layer: str, snapshot: str, rows: np.ndarray, stat: str) -> np.ndarray:
    if atlas.mode == "summary":
        sample_rows, values = atlas.sample(layer, snapshot, stat=stat)
        order = np.argsort(sample_rows)
        return values[order][np.searchsorted(np.asarray(sample_rows)[order], rows)]
    acts = atlas.activations(layer, snapshot, stat=stat)
    if len(rows) == acts.shape[0]:
        return acts[:]
    out = []  # chunk by chunk: a subset of a huge layer never loads the layer
    for start, block in acts.iter_chunks():
        lo, hi = np.searchsorted(rows, [start, start + block.shape[0]])
        out.append(block[rows[lo:hi] - start])
    return np.concatenate(out)


def class_graphs(atlas: Atlas, snapshot: str, layers: list[str], clusters: dict[str, np.ndarray],
                 top_fraction: float = 0.1, mass: float = DEFAULT_MASS, max_rows: int = 20000,
                 seed: int = 0) -> dict[str, ConceptGraph]:
    """``{class name: ConceptGraph}`` over ``layers`` (forward order, one row per input).

    ``clusters``: ``{layer: cluster id per neuron}`` (-1 for none).
    """
    layers = [l for l in layers if atlas.manifest.layer(l).rows == "input"]
    if len(layers) < 1:
        raise UserError("class graphs need layers with one row per input; token layers have none")
    table = atlas.row_table(layers[0], snapshot)
    labels_all = require_labels(table["label"] if "label" in table.columns else None)
    rows = class_rows(atlas, layers[0], snapshot, max_rows, seed)
    labels = labels_all[rows]
    names = list(atlas.class_names) or [str(c) for c in range(int(labels.max()) + 1)]
    n_classes = max(len(names), int(labels.max()) + 1)
    peaks = {l: _read(atlas, l, snapshot, rows, "max") for l in layers}
    means = {l: _read(atlas, l, snapshot, rows, "mean") for l in layers}
    importance = {l: class_importance(peaks[l], labels, n_classes, mass) for l in layers}
    links = {pair: w for pair, w in atlas.links(snapshot).items() if pair[0] in layers and pair[1] in layers}
    graphs = {}
    for c in range(n_classes):
        mine = labels == c
        if not mine.any():
            continue
        graphs[names[c] if c < len(names) else str(c)] = concept_graph(
            {l: clusters[l] for l in layers}, {l: importance[l][c] for l in layers}, links=links,
            mean_activation={l: means[l][mine].mean(axis=0) for l in layers}, top_fraction=top_fraction,
            coactivation={l: top_sets(peaks[l][mine], mass) for l in layers})
    return graphs
