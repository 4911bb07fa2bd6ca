"""Static figures of the concept atlas: the neuron projection (NeuroCartography's Neuron
Projection View, as a still) and the concept graph of one class (its Graph View)."""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def plot_projection(result, colour: str = "cluster", size: float = 7.0, label_top: int = 8, title: str | None = None):
    """Neurons at their 2-D projection. ``colour``: ``"cluster"`` (grey for ungrouped) or
    ``"layer"``. The ``label_top`` largest groups are labelled with what their exemplars
    share most (the ``describe`` column), when the result has it."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    if colour not in ("cluster", "layer"):
        raise UserError(f"colour must be 'cluster' or 'layer', not {colour!r}")
    n = result.neurons
    live = ~n["silent"].to_numpy(dtype=bool)
    xy = n[["x", "y"]].to_numpy(dtype=np.float64)
    fig = Figure(figsize=(size, size * 0.8), layout="constrained")
    ax = fig.subplots()
    if colour == "layer":
        layers = list(dict.fromkeys(n["layer"]))
        palette = colormaps["viridis"]
        for i, name in enumerate(layers):
            m = live & (n["layer"] == name).to_numpy()
            ax.scatter(xy[m, 0], xy[m, 1], s=9, color=palette(i / max(1, len(layers) - 1)), label=name, linewidths=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, markerscale=1.5)
    else:
        cl = n["cluster"].to_numpy()
        alone = live & (cl < 0)
        ax.scatter(xy[alone, 0], xy[alone, 1], s=6, color="0.8", linewidths=0, label="no group")
        palette = colormaps["tab20"]
        grouped = live & (cl >= 0)
        ax.scatter(xy[grouped, 0], xy[grouped, 1], s=11, c=[palette(c % 20) for c in cl[grouped]], linewidths=0)
        if "describe" in result.clusters:
            for _, row in result.clusters.head(label_top).iterrows():
                members = np.asarray(row["members"])
                cx, cy = np.nanmean(xy[members], axis=0)
                ax.annotate(f"{row['cluster']}: {row['describe']}", (cx, cy), fontsize=6.5, ha="center",
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "0.7", "alpha": 0.8})
    ax.set_xticks([])
    ax.set_yticks([])
    n_groups = int(len(result.clusters))
    ax.set_title(title or f"neurons of {len(result.layers)} layers by co-activation: {n_groups} concept groups",
                 fontsize=9)
    return fig


def plot_concept_graph(graph, size: float = 7.0, title: str | None = None, labels: dict | None = None):
    """A class's concept graph: layers top to bottom, one box per cluster (sized by its
    importance), edges as lines whose width follows the influence.

    ``graph``: a ConceptGraph (``nodes``: layer, cluster, importance; ``edges``: source,
    target, weight as node row numbers). ``labels``: optional cluster id -> text."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    nodes, edges = graph.nodes, graph.edges
    if not len(nodes):
        raise UserError("the concept graph has no nodes: no clustered neuron is among the class's top neurons")
    layers = list(dict.fromkeys(nodes["layer"]))
    xy = np.zeros((len(nodes), 2))
    for li, name in enumerate(layers):
        rows = np.flatnonzero((nodes["layer"] == name).to_numpy())
        order = rows[np.argsort(-nodes["importance"].to_numpy()[rows], kind="stable")]
        xy[order, 0] = (np.arange(len(order)) + 0.5) / len(order)
        xy[order, 1] = -li
    fig = Figure(figsize=(size, 1.2 + 1.1 * len(layers)), layout="constrained")
    ax = fig.subplots()
    if len(edges):
        w = edges["weight"].to_numpy(dtype=np.float64)
        w = w / (w.max() or 1.0)
        seg = np.stack([xy[edges["source"].to_numpy()], xy[edges["target"].to_numpy()]], axis=1)
        ax.add_collection(LineCollection(seg, linewidths=0.3 + 4 * w, colors="0.55", alpha=0.7, zorder=1))
    imp = nodes["importance"].to_numpy(dtype=np.float64)
    ax.scatter(xy[:, 0], xy[:, 1], s=40 + 400 * imp / (imp.max() or 1.0), marker="s", color="tab:blue", zorder=2,
               edgecolors="white")
    for (x, y), cl in zip(xy, nodes["cluster"]):
        text = (labels or {}).get(int(cl), str(int(cl)))
        ax.annotate(text, (x, y), xytext=(0, -11), textcoords="offset points", ha="center", fontsize=6)
    ax.set_yticks([-i for i in range(len(layers))], layers, fontsize=7)
    ax.set_xticks([])
    ax.set_xlim(0, 1)
    ax.set_ylim(-len(layers) + 0.5, 0.5)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or "concept graph", fontsize=9)
    return fig
