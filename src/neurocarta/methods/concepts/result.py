"""``concepts(atlas, layers, ...)``: the concept atlas of an atlas's layers, as a result that
saves into the atlas (``maps/concepts/<snapshot>/``) and reloads from it.

Exemplar sets are the activation *rows* of each neuron's stored top-k: input ids for image
and dense layers, token rows (tokens in context) for text layers. Attributes for coherence
come from the same row table, so both cases read alike.

Silent neurons (no positive activation among their exemplars: a dead ReLU's "top-k" is an
arbitrary tie) take no part: they would all share the same tied inputs and form one
spurious group. They keep cluster -1 and no projection.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...errors import UserError
from ...store.schema import grouping_columns
from ..defaults import (CONCEPTS_DIM, CONCEPTS_EMBEDDING, CONCEPTS_K, CONCEPTS_METHOD, CONCEPTS_N_HASHES,
                        CONCEPTS_RESOLUTION, CONCEPTS_THRESHOLD)
from .estimator import ConceptAtlas, as_sets
from .groups import group_members, size_distribution
from .labels import describe_clusters

if TYPE_CHECKING:
    from ...store import Atlas
    from ...streaming import TopK

KIND = "concepts"

@dataclass
class ConceptResult:
    snapshot: str
    layers: list[str]
    neurons: pd.DataFrame  # per neuron: layer, unit, cluster (-1 none), silent, x, y
    clusters: pd.DataFrame  # per cluster: cluster, layer, size, members (list of neuron rows)
    embedding: np.ndarray  # (neurons, dim), zeros for silent neurons
    coherence: pd.DataFrame  # per (layer, attribute): coherence, random_coherence, lift, n_groups
    params: dict
    sizes: dict = field(default_factory=dict)  # per layer: the group-size distribution
    graphs: dict = field(default_factory=dict)  # class name -> ConceptGraph (labelled atlases)

    def graph(self, class_name: str):
        """The concept graph of one class: clusters per layer, edges by influence."""
        if not self.graphs:
            raise UserError("this result has no class graphs: the atlas has no labels, or they were not asked for")
        if class_name not in self.graphs:
            raise UserError(f"no class {class_name!r}; classes: {', '.join(self.graphs)}")
        return self.graphs[class_name]

    def summary(self) -> dict:
        """Per layer: n_clusters, sizes, coherence and random_coherence per attribute."""
        out = []
        for layer in self.layers:
            c = self.coherence[self.coherence["layer"] == layer]
            out.append({"layer": layer, "n_neurons": int((self.neurons["layer"] == layer).sum()),
                        "n_silent": int(((self.neurons["layer"] == layer) & self.neurons["silent"]).sum()),
                        "n_clusters": self.sizes[layer]["n_groups"], "sizes": self.sizes[layer]["sizes"],
                        "grouped": self.sizes[layer]["grouped"],
                        "coherence": _numbers(c["attribute"], c["coherence"]),
                        "random_coherence": _numbers(c["attribute"], c["random_coherence"])})
        return {"snapshot": self.snapshot, "params": self.params, "layers": out}

    def nearest(self, neuron: int, k: int = 10) -> pd.DataFrame:
        """The ``k`` nearest neurons to row ``neuron`` of ``.neurons``, in the embedding space."""
        from .embedding import nearest_neurons

        if not 0 <= int(neuron) < len(self.neurons):
            raise UserError(f"neuron must be a row of .neurons, 0..{len(self.neurons) - 1}, got {neuron}")
        idx, sim = nearest_neurons(self.embedding, int(neuron), k=k)
        table = self.neurons.iloc[idx][["layer", "unit", "cluster"]].copy()
        table.insert(0, "neuron", idx)
        table["similarity"] = sim
        return table.reset_index(drop=True)

    # ------------------------------------------------------------ drawing (neurocarta.render)
    def plot(self, colour: str = "cluster", **kwargs):
        """A matplotlib Figure: every neuron in the concept embedding's 2-D projection
        (see :func:`neurocarta.render.plot_projection`)."""
        from ...render import plot_projection

        return plot_projection(self, colour=colour, **kwargs)

    def _repr_png_(self) -> bytes:
        """Jupyter shows the result as its neuron projection, coloured by concept group."""
        from ...render import figure_png

        return figure_png(self.plot())

    # ------------------------------------------------------------ storage
    def save(self, atlas: Atlas) -> None:
        emb = pd.DataFrame(self.embedding, columns=[f"e{i}" for i in range(self.embedding.shape[1])])
        clusters = self.clusters.copy()
        clusters["members"] = clusters["members"].map(lambda m: json.dumps([int(v) for v in m]))
        meta = {"snapshot": self.snapshot, "layers": self.layers, "params": self.params, "sizes": self.sizes}
        tables = {"neurons": self.neurons, "clusters": clusters, "embedding": emb, "coherence": self.coherence}
        if self.graphs:
            nodes, edges = [], []
            for name, g in self.graphs.items():
                n = g.nodes.reset_index(names="node")
                n["members"] = n["members"].map(lambda m: json.dumps([int(v) for v in m]))
                nodes.append(n.assign(**{"class": name}))
                edges.append(g.edges.assign(**{"class": name}))
            tables["graph_nodes"] = pd.concat(nodes, ignore_index=True)
            tables["graph_edges"] = pd.concat(edges, ignore_index=True)
        atlas.save_map(KIND, self.snapshot, tables, meta)

    @classmethod
    def load(cls, atlas: Atlas, snapshot: str | None = None) -> "ConceptResult":
        tables, meta = atlas.load_map(KIND, atlas.snapshot_name(snapshot))
        clusters = tables["clusters"]
        clusters["members"] = clusters["members"].map(lambda s: np.asarray(json.loads(s), dtype=np.int64))
        graphs = {}
        if "graph_nodes" in tables:
            from .graph import ConceptGraph

            nodes, edges = tables["graph_nodes"], tables["graph_edges"]
            for name in dict.fromkeys(nodes["class"]):
                n = nodes[nodes["class"] == name].drop(columns="class").set_index("node")
                n.index.name = None
                n["members"] = n["members"].map(lambda s: np.asarray(json.loads(s), dtype=np.int64))
                e = edges[edges["class"] == name].drop(columns="class").reset_index(drop=True)
                graphs[name] = ConceptGraph(n, e, list(dict.fromkeys(n["layer"])))
        return cls(meta["snapshot"], meta["layers"], tables["neurons"], clusters,
                   tables["embedding"].to_numpy(dtype=np.float32), tables["coherence"], meta["params"], meta["sizes"],
                   graphs)

    def __repr__(self) -> str:
        n = sum(s["n_groups"] for s in self.sizes.values())
        return f"<ConceptResult {self.snapshot!r}: {len(self.neurons)} neurons, {n} groups over {len(self.layers)} layers>"


def _numbers(keys, values) -> dict:
    """{key: float}, with None where there is no value (a layer without groups): JSON-safe."""
    return {k: (None if pd.isna(v) else float(v)) for k, v in zip(keys, values)}


def stored_topk(atlas: Atlas, layer: str, snapshot: str) -> TopK:
    """A layer's stored top-k exemplars, or one line saying it has none."""
    try:
        return atlas.topk(layer, snapshot)
    except KeyError as e:
        raise UserError(f"layer {layer!r} has no top-k exemplars in the atlas; re-extract it (--topk K)") from e


def fitted_k(stored: int, n_rows: int) -> int:
    """The default k, ``CONCEPTS_K``, lowered to what a small atlas holds, with one warning:
    the fewest rows of the chosen layers (``n_rows``) and the fewest exemplars stored per neuron
    (``stored``; an atlas of 60 inputs stores 60). Only the default bends; an explicit k too
    large is an error."""
    k = max(1, min(CONCEPTS_K, n_rows, stored))
    if k < CONCEPTS_K:
        why = (f"the atlas has only {n_rows} inputs" if n_rows <= stored
               else f"the atlas stored only {stored} per neuron (extract --topk)")
        warnings.warn(f"concepts use k={k} exemplars per neuron instead of the default {CONCEPTS_K}, "
                      f"since {why}; pass --k to choose another")
    return k


def layer_sets(top: TopK, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A layer's exemplar rows (neurons x k, best first), a silent flag per neuron, and the
    stored k, from its stored top-k."""
    stored = top.k
    if k > stored:
        raise UserError(f"k={k} is more than the {stored} exemplars the atlas stored per neuron; "
                        f"use --k {stored} or less, or re-extract with --topk {k}")
    rows = np.asarray(top.rows[:k], dtype=np.int64).T
    silent = ~(np.asarray(top.values[:k], dtype=np.float32) > 0).any(axis=0)
    return rows, silent, stored


def concepts(atlas: Atlas, layers: list[str] | None = None, k: int | None = None, threshold: float = CONCEPTS_THRESHOLD,
             n_hashes: int = CONCEPTS_N_HASHES, bands: int | None = None, rows: int | None = None,
             method: str = CONCEPTS_METHOD, resolution: float = CONCEPTS_RESOLUTION, across_layers: bool = False,
             embedding: str = CONCEPTS_EMBEDDING, dim: int = CONCEPTS_DIM, attributes: list[str] | None = None,
             draws: int = 20, class_graphs: bool | None = None, top_fraction: float = 0.1,
             snapshot: str | None = None, align_to: "ConceptResult | None" = None, seed: int = 0,
             save: bool = False) -> ConceptResult:
    """The concept atlas of ``layers`` (default: every layer with 2 or more neurons).

    Groups, the embedding and the projection come from :class:`ConceptAtlas` over the
    live neurons of all chosen layers together; coherence is measured per layer against
    random groups of the same sizes, for every attribute column of the input table (or
    the given ``attributes``). ``k``: exemplars per neuron (None: ``CONCEPTS_K``, lowered
    with one warning on an atlas with fewer inputs or fewer stored exemplars per neuron).
    ``class_graphs``: build the concept graph of every class (None: when the atlas has
    labels; True: required, an error without labels).
    ``align_to``: another snapshot's result over the same layers; the 2-D projection is
    Procrustes-aligned to its projection (on the neurons alive in both), so a training
    slider moves points only where the embedding changed.
    """
    from .coherence import coherence_report

    snap = atlas.snapshot_name(snapshot)
    names = atlas.select_layers(layers)
    if not layers:
        names = [n for n in names if atlas.manifest.layer(n).n_neurons >= 2]
    if k is not None and int(k) < 1:
        raise UserError(f"k must be at least 1, got {k}")
    tables = {n: atlas.row_table(n, snap) for n in names}  # one merge per layer, reused below
    n_rows_min = min(len(t) for t in tables.values()) if names else 0
    tops = {n: stored_topk(atlas, n, snap) for n in names}  # read once, for k and for the sets
    if k is None:
        k = fitted_k(min((t.k for t in tops.values()), default=CONCEPTS_K), n_rows_min)
    if k > n_rows_min:
        raise UserError(f"k={k} is larger than the number of inputs ({n_rows_min}); choose k below it")
    model = ConceptAtlas(k=k, threshold=threshold, n_hashes=n_hashes, bands=bands, rows=rows, method=method,
                         resolution=resolution, across_layers=across_layers, embedding=embedding, dim=dim, seed=seed)
    sets, silent, layer_of, unit = [], [], [], []
    for name in names:
        r, s, _ = layer_sets(tops[name], k)
        sets.append(r)
        silent.append(s)
        layer_of += [name] * len(s)
        unit.append(np.arange(len(s)))
    all_rows = np.concatenate(sets)
    silent_all = np.concatenate(silent)
    live = np.flatnonzero(~silent_all)
    if len(live) < 2:
        raise UserError("fewer than 2 neurons of the chosen layers ever fire; there is nothing to group")
    layer_arr = np.asarray(layer_of, dtype=object)
    model.fit(all_rows[live], layers=layer_arr[live])
    n = len(all_rows)
    cluster = np.full(n, -1, dtype=np.int64)
    cluster[live] = model.clusters_
    xy = np.full((n, 2), np.nan)
    xy[live] = model.projection_
    if align_to is not None:
        from .embedding import align_procrustes

        ref = align_to.neurons
        if list(ref["layer"]) != list(layer_arr.astype(str)):
            raise UserError("align_to must be a concept result over the same layers (another snapshot's)")
        ref_xy = ref[["x", "y"]].to_numpy(dtype=np.float64)[live]
        both = np.isfinite(ref_xy).all(axis=1)
        if both.sum() >= 3:
            xy[live] = align_procrustes(xy[live], np.where(both[:, None], ref_xy, 0.0), fit_rows=both)
    emb = np.zeros((n, model.embedding_.shape[1]), dtype=np.float32)
    emb[live] = model.embedding_
    neurons = pd.DataFrame({"layer": layer_arr.astype(str), "unit": np.concatenate(unit), "cluster": cluster,
                            "silent": silent_all, "x": xy[:, 0], "y": xy[:, 1]})
    members = group_members(cluster)
    clusters = pd.DataFrame({"cluster": np.arange(len(members), dtype=np.int64),
                             "layer": [str(layer_arr[m[0]]) for m in members],
                             "size": [len(m) for m in members], "members": members})
    indptr, indices = as_sets(all_rows)
    reports, sizes = [], {}
    for name in names:
        in_layer = layer_arr == name
        sizes[name] = size_distribution(np.where(in_layer, cluster, -1)[in_layer])
        table = tables[name]
        cols = attributes if attributes is not None else grouping_columns(table, atlas.column_roles)
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise UserError(f"no attribute column {missing[0]!r} in the input table; columns: {', '.join(table.columns)}")
        groups = [m for m in members if layer_arr[m[0]] == name]
        if not cols:
            continue
        rep = coherence_report(groups, indptr, indices, table[cols], draws=draws, seed=seed,
                               candidates=np.flatnonzero(in_layer & ~silent_all))
        rep.insert(0, "layer", name)
        reports.append(rep)
    coherence = pd.concat(reports, ignore_index=True) if reports else pd.DataFrame(
        columns=["layer", "attribute", "n_groups", "coherence", "random_coherence", "lift"])
    described = attributes if attributes is not None else grouping_columns(tables[names[0]], atlas.column_roles)
    # a group's random twins come from its own layer's live neurons (any layer's when groups span layers)
    pool = np.where(silent_all, None, "all" if across_layers else layer_arr).astype(object)
    clusters["describe"] = describe_clusters(members, indptr, indices, tables[names[0]], described, pool=pool,
                                             seed=seed)
    graphs = {}
    labelled = "label" in tables[names[0]].columns
    # class graphs read one row per input; with token layers only, None means "skip"
    labelled = labelled and any(atlas.manifest.layer(n).rows == "input" for n in names)
    if class_graphs or (class_graphs is None and labelled):
        from .classes import class_graphs as build

        per_layer = {name: cluster[layer_arr == name] for name in names}
        graphs = build(atlas, snap, names, per_layer, top_fraction=top_fraction, seed=seed)
    result = ConceptResult(snap, names, neurons, clusters, emb, coherence, model.params, sizes, graphs)
    if save:
        result.save(atlas)
    return result
