"""Neuron groups from the verified similarity graph.

NeuroCartography merged every LSH candidate pair transitively with union-find. With a
near-zero threshold one chance collision joins two groups, and chains of them built
clusters of 40-66 neurons. Here only pairs whose *exact* Jaccard index reaches the
threshold are edges, and the graph is cut into communities by Leiden (Traag et al. 2019),
which splits a chain at its weak links instead of following it. Connected components of
the same graph remain as an option (``method="components"``): the transitive closure, but
of verified pairs only.

A neuron without any verified partner has no group (label -1): a concept of one neuron is
no grouping at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import UserError

METHODS = ("leiden", "components")


def cluster_pairs(n: int, pairs: np.ndarray, weights: np.ndarray, method: str = "leiden",
                  resolution: float = 1.0, seed: int = 0) -> np.ndarray:
    """Group labels (n,) of a weighted pair graph: 0, 1, ... by decreasing size, -1 alone.

    ``leiden`` optimises modularity with a resolution parameter (RBConfiguration): higher
    resolution, smaller groups. ``components`` takes connected components.
    """
    if method not in METHODS:
        raise UserError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0 or len(pairs) == 0:
        return labels
    if method == "components":
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        _, raw = connected_components(g, directed=False)
    else:
        import igraph as ig
        import leidenalg

        g = ig.Graph(n=n, edges=pairs.tolist())
        g.es["weight"] = np.asarray(weights, dtype=np.float64).tolist()
        part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                        resolution_parameter=float(resolution), seed=int(seed))
        raw = np.asarray(part.membership, dtype=np.int64)
    return _by_size(raw)


def _by_size(raw: np.ndarray) -> np.ndarray:
    """Relabel so that groups run 0, 1, ... by decreasing size (ties: lowest member first);
    groups of one become -1."""
    ids, first, inverse, counts = np.unique(raw, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    rank[counts < 2] = -1
    kept = rank >= 0
    # close the gaps left by the singletons
    remap = np.full(len(ids), -1, dtype=np.int64)
    remap[kept] = np.argsort(np.argsort(rank[kept]))
    return remap[inverse]


def size_distribution(labels: np.ndarray) -> dict:
    """How big the groups are: count, sizes (largest first), median, max and the share of
    neurons grouped; the report the original's giant clusters call for."""
    labels = np.asarray(labels)
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, dtype=np.int64)
    sizes = np.sort(sizes[sizes > 0])[::-1]
    return {"n_groups": int(len(sizes)), "sizes": sizes.tolist(),
            "median": float(np.median(sizes)) if len(sizes) else 0.0, "max": int(sizes.max()) if len(sizes) else 0,
            "grouped": float((labels >= 0).mean()) if len(labels) else 0.0}


def group_members(labels: np.ndarray) -> list[np.ndarray]:
    """Member indices of each group 0, 1, ... (in label order)."""
    labels = np.asarray(labels)
    grouped = np.flatnonzero(labels >= 0)
    if not len(grouped):
        return []
    order = grouped[np.argsort(labels[grouped], kind="stable")]
    counts = np.bincount(labels[grouped])
    return [m for m in np.split(order, np.cumsum(counts)[:-1]) if len(m)]
