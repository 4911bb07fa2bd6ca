"""Static figure of a Mapper graph: nodes as class pie charts sized by members, edges
weighted by their Jaccard index, laid out by a seeded force layout (igraph)."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .palette import MAX_ENTRIES, Legend, make_legend, natural_order


def graph_layout(result, seed: int = 0) -> np.ndarray:
    """Seeded Fruchterman-Reingold coordinates of the nodes, components packed side by side."""
    import random

    import igraph as ig

    g = result.graph.to_igraph()
    if g.vcount() == 0:
        return np.zeros((0, 2))
    ig.set_random_number_generator(random.Random(seed))
    try:
        weights = [0.2 + j for j in result.graph.jaccard] if g.ecount() else None
        coords = g.layout_fruchterman_reingold(weights=weights, niter=500, grid=False)
    finally:
        ig.set_random_number_generator(random)
    return np.asarray(coords.coords, dtype=np.float64)


def node_legend(histograms, max_entries: int = MAX_ENTRIES) -> Legend:
    """The legend of the classes in the nodes' class histograms (class -> members), in natural
    order, ranked by members when there are too many to list."""
    total: dict[str, int] = {}
    for hist in histograms:
        for c, k in hist.items():
            total[str(c)] = total.get(str(c), 0) + int(k)
    names = natural_order(total)
    return make_legend(names, [total[n] for n in names], max_entries=max_entries, unit="node members")


def plot_mapper(result, colour: str = "classes", size: float = 7.0, seed: int = 0, legend: Legend | None = None,
                max_legend: int = MAX_ENTRIES, title: str | None = None):
    """A matplotlib Figure of ``result`` (a MapperResult). ``colour``: ``"classes"`` (pie per
    node), or a node column such as ``"purity"``, ``"accuracy"``, ``"mean_lens"``.

    ``legend``: the class colours, e.g. ``class_legend(atlas)`` (the viewer's colours, counts
    in inputs); by default built from the nodes' classes in natural order, counted in node
    members. Either way it lists every class up to ``max_legend``, beyond that the largest
    plus an "other" line that says how many classes and members it holds."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Wedge

    nodes = result.nodes
    if result.graph.n_nodes == 0:
        raise UserError(f"the Mapper graph of {result.layer!r} has no nodes; lower --min-samples or raise --eps")
    xy = graph_layout(result, seed)
    span = float(np.ptp(xy, axis=0).max()) or 1.0
    xy = (xy - xy.min(axis=0)) / span
    sizes = result.graph.sizes
    radius = 0.006 + 0.03 * np.sqrt(sizes / sizes.max())
    fig = Figure(figsize=(size, size * 0.8), layout="constrained")
    ax = fig.subplots()
    if result.graph.n_edges:
        seg = xy[result.graph.edges]
        ax.add_collection(LineCollection(seg, linewidths=0.4 + 3 * result.graph.jaccard, colors="0.6", zorder=1))
    if colour == "classes":
        if "classes" not in nodes:
            raise UserError("the input table has no labels to colour the nodes by")
        legend = legend or node_legend(nodes["classes"], max_legend)
        for (x, y), r, hist in zip(xy, radius, nodes["classes"]):
            total = sum(hist.values())
            start = 90.0
            for c, k in sorted(hist.items(), key=lambda kv: -kv[1]):
                sweep = 360.0 * k / total
                ax.add_patch(Wedge((x, y), r, start, start + sweep, facecolor=legend.colour(c), edgecolor="white",
                                   linewidth=0.2, zorder=2))
                start += sweep
        ax.legend(handles=[Patch(color=c, label=text) for text, c in legend.labels()], loc="upper left",
                  bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    else:
        if colour not in nodes:
            raise UserError(f"no node column {colour!r} to colour by; columns: {', '.join(nodes.columns)}")
        values = nodes[colour].to_numpy(dtype=np.float64)
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=(radius * 900) ** 2 / 40, c=values, cmap="viridis", zorder=2,
                        edgecolors="white", linewidths=0.3)
        fig.colorbar(sc, ax=ax, shrink=0.7, label=colour)
    pad = radius.max() * 1.5
    ax.set_xlim(-pad, 1 + pad)
    ax.set_ylim(-pad, xy[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.set_axis_off()
    s = result.summary()
    ax.set_title(title or f"{result.layer}: {s['n_nodes']} nodes, {s['n_components']} components, "
                          f"class purity {s['mean_purity']:.2f}", fontsize=9)
    return fig
