"""Static figure of a Mapper graph: nodes as class pie charts sized by members, edges
weighted by their Jaccard index, laid out by a seeded force layout (igraph)."""

from __future__ import annotations

import numpy as np

from ..errors import UserError


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


def plot_mapper(result, colour: str = "classes", size: float = 7.0, seed: int = 0, max_legend: int = 12,
                title: str | None = None):
    """A matplotlib Figure of ``result`` (a MapperResult). ``colour``: ``"classes"`` (pie per
    node), or a node column such as ``"purity"``, ``"accuracy"``, ``"mean_lens"``."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Wedge

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
        names = sorted({c for h in nodes["classes"] for c in h})
        palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
        col = {c: palette(i % palette.N) for i, c in enumerate(names)}
        for (x, y), r, hist in zip(xy, radius, nodes["classes"]):
            total = sum(hist.values())
            start = 90.0
            for c, k in sorted(hist.items(), key=lambda kv: -kv[1]):
                sweep = 360.0 * k / total
                ax.add_patch(Wedge((x, y), r, start, start + sweep, facecolor=col[c], edgecolor="white",
                                   linewidth=0.2, zorder=2))
                start += sweep
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=col[c], label=c) for c in names[:max_legend]], loc="upper left",
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
