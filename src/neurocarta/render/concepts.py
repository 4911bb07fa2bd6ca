"""Static figures of the concept atlas: the neuron projection (NeuroCartography's Neuron
Projection View, as a still) and the concept graph of one class (its Graph View)."""

from __future__ import annotations

import textwrap

import numpy as np

from ..errors import UserError
from .palette import MAX_ENTRIES, OTHER_COLOUR, make_legend

#: Live neurons in no concept group: lighter than "other", which holds grouped neurons.
NO_GROUP_COLOUR = "#d0d0d0"


def plot_projection(result, colour: str = "cluster", size: float = 7.0, label_top: int = 8, title: str | None = None,
                    max_legend: int = MAX_ENTRIES):
    """Neurons at their 2-D projection. ``colour``: ``"cluster"`` or ``"layer"``; the legend
    says which colour is which (up to ``max_legend`` groups or layers, the largest; the rest
    share the grey of an "other" line that counts them; ungrouped neurons are light grey).
    The ``label_top`` largest groups are labelled with what their exemplars share (the
    ``describe`` column), when the result has it, placed by adjustText so no two overlap."""
    from matplotlib.figure import Figure

    if colour not in ("cluster", "layer"):
        raise UserError(f"colour must be 'cluster' or 'layer', not {colour!r}")
    n = result.neurons
    live = ~n["silent"].to_numpy(dtype=bool)
    xy = n[["x", "y"]].to_numpy(dtype=np.float64)
    fig = Figure(figsize=(size, size * 0.8), layout="constrained")
    ax = fig.subplots()
    if colour == "layer":
        layers = n["layer"].astype(str).to_numpy()
        names = list(dict.fromkeys(layers))
        legend = make_legend(names, [int((layers == k).sum()) for k in names], max_legend, noun="layers",
                             unit="neurons")
        keys = layers
    else:
        cl = n["cluster"].to_numpy()
        alone = live & (cl < 0)
        ax.scatter(xy[alone, 0], xy[alone, 1], s=6, color=NO_GROUP_COLOUR, linewidths=0,
                   label=f"no group: {int(alone.sum()):,} neurons")
        clusters = result.clusters
        legend = make_legend([f"c{c}" for c in clusters["cluster"]], clusters["size"].tolist(), max_legend,
                             noun="groups", unit="neurons")
        keys = np.where(cl >= 0, np.char.add("c", cl.astype(str)), "")
    counts = dict(zip(*np.unique(keys[live], return_counts=True)))
    dot = 9 if colour == "layer" else 11
    for name, c in legend.entries:  # one scatter per legend line: the legend is the plot's own
        m = live & (keys == name)
        ax.scatter(xy[m, 0], xy[m, 1], s=dot, color=c, linewidths=0, label=f"{name}: {counts.get(name, 0):,} neurons")
    if legend.other:
        m = live & np.isin(keys, legend.other)
        ax.scatter(xy[m, 0], xy[m, 1], s=dot, color=OTHER_COLOUR, linewidths=0, label=legend.other_label)
    ncol = 1 if len(legend.labels()) <= 16 else 2
    if ncol == 2:  # a two-column legend takes its width from the figure, not from the plot
        fig.set_figwidth(size * 1.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6.5, frameon=False, markerscale=1.5, ncols=ncol)
    if colour == "cluster" and "describe" in result.clusters and label_top > 0:
        label_groups(ax, xy, result.clusters.head(label_top))
    ax.set_xticks([])
    ax.set_yticks([])
    n_groups = int(len(result.clusters))
    layers = f"{len(result.layers)} layer{'' if len(result.layers) == 1 else 's'}"
    ax.set_title(title or f"neurons of {layers} by co-activation: {n_groups} concept groups",
                 fontsize=9)
    return fig


def label_groups(ax, xy: np.ndarray, clusters) -> list:
    """Label each group at its members' centre, then let adjustText move the labels apart
    (and off the points) until none overlaps another; each moved label keeps a thin line to
    its centre. Returns the text artists."""
    from adjustText import adjust_text

    texts, cx, cy = [], [], []
    for _, row in clusters.iterrows():
        members = np.asarray(row["members"])
        x, y = np.nanmean(xy[members], axis=0)
        cx.append(x)
        cy.append(y)
        texts.append(ax.text(x, y, f"c{row['cluster']}: {row['describe']}", fontsize=6.5, ha="center", va="center",
                             zorder=4, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "0.7",
                                             "alpha": 0.85}))
    if len(texts) > 1:
        # settle the constrained layout first: adjustText measures the labels on the canvas
        ax.figure.draw_without_rendering()
        adjust_text(texts, target_x=cx, target_y=cy, ax=ax, expand=(1.1, 1.3), ensure_inside_axes=True,
                    arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.4})
    return texts


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
        # names run long: the numbers of "colour=red (0.91 vs 0.40 random)" on a second line, other
        # names wrapped; on white over the edges
        name = (labels or {}).get(int(cl), str(int(cl)))
        text = name.replace(" (", "\n(", 1) if name.endswith(" random)") else textwrap.fill(name, 26)
        ax.annotate(text, (x, y), xytext=(0, -8), textcoords="offset points", ha="center", va="top", fontsize=6,
                    zorder=3, bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_yticks([-i for i in range(len(layers))], layers, fontsize=7)
    ax.set_xticks([])
    ax.set_xlim(0, 1)
    ax.set_ylim(-len(layers) + 0.5, 0.5)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or "concept graph", fontsize=9)
    return fig
