"""The Mapper graph: nodes (clusters of inputs), edges (shared members) and its shape.

Shape summary, read off the graph with igraph:

- components: connected components (isolated nodes count);
- flares: leaves (degree 1), each with its dominant class, and branch points (degree 3+);
- loops: the size of the cycle basis, edges - nodes + components.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class MapperGraph:
    nodes: list[np.ndarray]  # sorted member rows per node
    cubes: list[tuple[int, ...]]  # the cover interval of each node
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    shared: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    jaccard: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_inputs: int = 0

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        return int(len(self.edges))

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(m) for m in self.nodes], dtype=np.int64)

    def membership(self) -> tuple[np.ndarray, np.ndarray]:
        """(node, row) pairs of every membership, as two arrays."""
        sizes = self.sizes
        node = np.repeat(np.arange(self.n_nodes), sizes)
        rows = np.concatenate(self.nodes) if self.nodes else np.zeros(0, dtype=np.int64)
        return node, rows

    def filter_edges(self, min_jaccard: float) -> "MapperGraph":
        keep = self.jaccard >= min_jaccard
        return MapperGraph(self.nodes, self.cubes, self.edges[keep], self.shared[keep], self.jaccard[keep],
                           self.n_inputs)

    def to_igraph(self):
        import igraph as ig

        g = ig.Graph(n=self.n_nodes, edges=self.edges.tolist())
        g.vs["size"] = self.sizes.tolist()
        g.es["shared"] = self.shared.tolist()
        g.es["jaccard"] = self.jaccard.tolist()
        return g

    def to_networkx(self, attributes: pd.DataFrame | None = None):
        """A networkx Graph; node attributes from ``attributes`` (one row per node) if given."""
        import networkx as nx

        g = nx.Graph()
        for i in range(self.n_nodes):
            attrs = {"size": int(len(self.nodes[i]))}
            if attributes is not None:
                attrs.update({k: _plain(v) for k, v in attributes.iloc[i].items()})
            g.add_node(i, **attrs)
        for (a, b), s, j in zip(self.edges.tolist(), self.shared.tolist(), self.jaccard.tolist()):
            g.add_edge(a, b, shared=int(s), jaccard=float(j))
        return g

    def components(self) -> np.ndarray:
        """Component index of every node."""
        return np.asarray(self.to_igraph().connected_components().membership, dtype=np.int64)

    def shape(self) -> dict:
        """Components, leaves and branch points (flares), and loops."""
        n = self.n_nodes
        degree = np.bincount(self.edges.ravel(), minlength=n) if n else np.zeros(0, dtype=np.int64)
        comps = self.components() if n else np.zeros(0, dtype=np.int64)
        n_comp = int(comps.max() + 1) if n else 0
        leaves = np.flatnonzero(degree == 1)
        branches = np.flatnonzero(degree >= 3)
        return {"n_nodes": n, "n_edges": self.n_edges, "n_components": n_comp,
                "loops": int(self.n_edges - n + n_comp), "n_leaves": int(leaves.size),
                "n_branch_points": int(branches.size), "leaves": leaves.tolist(), "branch_points": branches.tolist()}


def build_edges(nodes: list[np.ndarray], n_inputs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges between nodes that share members, with the shared count and Jaccard index,
    from one sparse product of the node x input incidence matrix."""
    from scipy.sparse import csr_matrix

    if not nodes:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    sizes = np.array([len(m) for m in nodes])
    rows = np.repeat(np.arange(len(nodes)), sizes)
    inc = csr_matrix((np.ones(rows.size, dtype=np.int32), (rows, np.concatenate(nodes))),
                     shape=(len(nodes), n_inputs))
    co = (inc @ inc.T).tocoo()
    upper = co.row < co.col
    a, b, s = co.row[upper], co.col[upper], co.data[upper].astype(np.int64)
    order = np.lexsort((b, a))
    a, b, s = a[order], b[order], s[order]
    jac = s / (sizes[a] + sizes[b] - s)
    return np.c_[a, b].astype(np.int64), s, jac.astype(np.float64)


def node_table(graph: MapperGraph, table: pd.DataFrame, lens: np.ndarray, norms: np.ndarray,
               label: str = "label_name") -> pd.DataFrame:
    """Per node: size, dominant class (the ``label`` column's value) and its share (purity),
    class entropy, accuracy, mean confidence, mean lens, mean L2 norm and, for token rows,
    mean position (from the row-table rows of its members)."""
    node, rows = graph.membership()
    frame = pd.DataFrame({"node": node})
    out = pd.DataFrame({"node": np.arange(graph.n_nodes), "size": graph.sizes})
    if label not in table.columns and "label" in table.columns:
        label = "label"
    if label in table.columns:
        frame["cls"] = table[label].to_numpy()[rows]
        counts = frame.groupby(["node", "cls"], observed=True).size().rename("n").reset_index()
        counts["share"] = counts["n"] / counts.groupby("node")["n"].transform("sum")
        top = counts.sort_values(["node", "n"], ascending=[True, False]).drop_duplicates("node")
        out["dominant"] = out["node"].map(top.set_index("node")["cls"])
        out["purity"] = out["node"].map(top.set_index("node")["share"]).astype(float)
        ent = counts.assign(h=-counts["share"] * np.log2(counts["share"])).groupby("node")["h"].sum()
        out["entropy"] = out["node"].map(ent).astype(float) + 0.0  # no -0.0 for pure nodes
        hist = counts.groupby("node").apply(lambda g: dict(zip(map(str, g["cls"]), g["n"].astype(int))),
                                            include_groups=False)
        out["classes"] = out["node"].map(hist)
    for col, name in (("correct", "accuracy"), ("confidence", "mean_confidence")):
        if col in table.columns:
            frame[name] = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)[rows]
            out[name] = out["node"].map(frame.groupby("node")[name].mean())
    lens2 = np.asarray(lens, dtype=np.float64)
    lens2 = lens2[:, None] if lens2.ndim == 1 else lens2
    for d in range(lens2.shape[1]):
        frame[f"lens{d}"] = lens2[rows, d]
        out[f"mean_lens{'' if lens2.shape[1] == 1 else d}"] = out["node"].map(frame.groupby("node")[f"lens{d}"].mean())
    frame["norm"] = np.asarray(norms, dtype=np.float64)[rows]
    out["mean_norm"] = out["node"].map(frame.groupby("node")["norm"].mean())
    if "position" in table.columns:  # token rows: where in their sentences the members sit
        frame["position"] = pd.to_numeric(table["position"], errors="coerce").to_numpy(dtype=np.float64)[rows]
        out["mean_position"] = out["node"].map(frame.groupby("node")["position"].mean())
    return out


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
