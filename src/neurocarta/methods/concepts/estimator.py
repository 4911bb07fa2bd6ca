"""``ConceptAtlas``: neurons grouped by the inputs that excite them most, in linear time.

The pipeline (NeuroCartography's, with its bugs fixed):

1. each neuron's exemplar set: its top-k inputs (tokens in context for text models);
2. MinHash signatures with hash functions shared by every neuron, then LSH banding with
   bands and rows derived from the Jaccard ``threshold`` (``lsh.py``);
3. candidate pairs verified by exact Jaccard, so only pairs at or above the threshold
   are edges; the verified graph is cut by Leiden (``groups.py``), within layers unless
   ``across_layers``;
4. an embedding of neurons by co-activation (PPMI + truncated SVD by default, skip-gram
   as an option) and its seeded 2-D projection, aligned to a reference when given
   (``embedding.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UserError
from .groups import METHODS, cluster_pairs, size_distribution

EMBEDDINGS = ("ppmi", "sgns")


@dataclass
class SimilarityGraph:
    """The verified neuron graph: pairs whose exact Jaccard index reaches the threshold."""

    n: int
    pairs: np.ndarray  # (m, 2) int64, i < j
    jaccard: np.ndarray  # (m,) float64

    def to_networkx(self):
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(self.n))
        g.add_weighted_edges_from(((int(a), int(b), float(j)) for (a, b), j in zip(self.pairs, self.jaccard)),
                                  weight="jaccard")
        return g

    def to_igraph(self):
        import igraph as ig

        g = ig.Graph(n=self.n, edges=self.pairs.tolist())
        g.es["jaccard"] = self.jaccard.tolist()
        return g


def as_sets(exemplars, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr, indices)`` of exemplar sets from a CSR tuple, a list of id arrays (best
    first) or a (neurons x k) id array (best first). ``k`` keeps the first k of each list;
    ids become unique and sorted within each set."""
    if isinstance(exemplars, tuple) and len(exemplars) == 2:
        indptr, indices = (np.asarray(a, dtype=np.int64) for a in exemplars)
        lists = [indices[indptr[i]:indptr[i + 1]] for i in range(len(indptr) - 1)]
    elif isinstance(exemplars, np.ndarray) and exemplars.ndim == 2:
        lists = list(np.asarray(exemplars, dtype=np.int64))
    else:
        lists = [np.asarray(s, dtype=np.int64).ravel() for s in exemplars]
    if k is not None:
        lists = [s[:k] for s in lists]
    lists = [np.unique(s) for s in lists]
    if any(len(s) and s[0] < 0 for s in lists):
        raise UserError("exemplar ids must be non-negative input ids")
    sizes = np.array([len(s) for s in lists], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    indices = np.concatenate(lists).astype(np.int64) if lists and sizes.sum() else np.zeros(0, dtype=np.int64)
    return indptr, indices


class ConceptAtlas:
    """Concept groups of neurons, their co-activation embedding and the similarity graph.

    Parameters
    ----------
    k : exemplars per neuron (the first k of each best-first list).
    threshold : Jaccard index, in (0, 1], that two neurons' exemplar sets must reach to be
        linked (default 0.2). LSH bands and rows follow from it (``lsh.lsh_params``) unless
        given. On the demo, 0.2 groups 62-77% of the deep conv neurons with class coherence
        0.76-0.80 (random groups: 0.36-0.46); 0.1 groups more but chains (coherence 0.56 in
        features.block3); 0.3 leaves most conv neurons alone.
    n_hashes, bands, rows : MinHash signature length and an explicit LSH banding.
    method : ``"leiden"`` (default) or ``"components"`` on the verified graph.
    resolution : Leiden's resolution (higher: smaller groups).
    across_layers : link neurons of different layers too (default: within layers).
    embedding : ``"ppmi"`` (PPMI + truncated SVD, deterministic) or ``"sgns"``.
    dim : embedding dimensions. seed : every random choice.

    Attributes: ``clusters_`` (group per neuron, -1 for none), ``graph_``
    (SimilarityGraph), ``embedding_`` (neurons x dim), ``projection_`` (neurons x 2),
    ``sizes_`` (the group-size distribution), ``bands_``, ``rows_``.
    """

    def __init__(self, k: int = 100, threshold: float = 0.2, n_hashes: int = 128, bands: int | None = None,
                 rows: int | None = None, method: str = "leiden", resolution: float = 1.0,
                 across_layers: bool = False, embedding: str = "ppmi", dim: int = 30, seed: int = 0):
        if int(k) < 1:
            raise UserError(f"k must be at least 1, got {k}")
        if not 0.0 < float(threshold) <= 1.0:
            raise UserError(f"threshold must lie in (0, 1], got {threshold}")
        if method not in METHODS:
            raise UserError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        if embedding not in EMBEDDINGS:
            raise UserError(f"embedding must be one of {', '.join(EMBEDDINGS)}, not {embedding!r}")
        self.k, self.threshold, self.n_hashes = int(k), float(threshold), int(n_hashes)
        self.bands, self.rows, self.method, self.resolution = bands, rows, method, float(resolution)
        self.across_layers, self.embedding, self.dim, self.seed = bool(across_layers), embedding, int(dim), int(seed)

    @property
    def params(self) -> dict:
        return {"k": self.k, "threshold": self.threshold, "n_hashes": self.n_hashes,
                "bands": getattr(self, "bands_", self.bands), "rows": getattr(self, "rows_", self.rows),
                "method": self.method, "resolution": self.resolution, "across_layers": self.across_layers,
                "embedding": self.embedding, "dim": self.dim, "seed": self.seed}

    def fit(self, exemplar_sets, layers: np.ndarray | None = None, n_inputs: int | None = None,
            reference: np.ndarray | None = None) -> "ConceptAtlas":
        """``exemplar_sets``: see :func:`as_sets`. ``layers``: a layer label per neuron
        (groups stay within a layer unless ``across_layers``). ``reference``: a previous
        projection (same neurons) to align the 2-D projection to, e.g. the last snapshot's."""
        from .embedding import ppmi_svd, project_2d, sgns
        from .lsh import lsh_params, similar_pairs

        indptr, indices = as_sets(exemplar_sets, self.k)
        n = len(indptr) - 1
        if n == 0:
            raise UserError("no neurons to group: the exemplar sets are empty")
        if layers is not None and len(layers) != n:
            raise UserError(f"layers has {len(layers)} labels for {n} neurons")
        bands, rows = (self.bands, self.rows) if self.bands and self.rows else lsh_params(self.threshold, self.n_hashes)
        pairs, jac = similar_pairs(indptr, indices, self.threshold, n_hashes=self.n_hashes, bands=bands, rows=rows,
                                   seed=self.seed)
        if layers is not None and not self.across_layers and len(pairs):
            lab = np.asarray(layers)
            same = lab[pairs[:, 0]] == lab[pairs[:, 1]]
            pairs, jac = pairs[same], jac[same]
        self.bands_, self.rows_ = int(bands), int(rows)
        self.graph_ = SimilarityGraph(n, pairs, jac)
        self.clusters_ = cluster_pairs(n, pairs, jac, self.method, self.resolution, self.seed)
        self.sizes_ = size_distribution(self.clusters_)
        if self.embedding == "ppmi":
            self.embedding_ = ppmi_svd(indptr, indices, dim=self.dim, seed=self.seed, n_inputs=n_inputs)
        else:
            self.embedding_ = sgns(indptr, indices, dim=self.dim, seed=self.seed, n_inputs=n_inputs)
        self.projection_ = project_2d(self.embedding_, seed=self.seed, reference=reference)
        self.indptr_, self.indices_ = indptr, indices
        return self

    def nearest(self, neuron: int, k: int = 10):
        """The ``k`` nearest neurons in the embedding space (not in 2-D): (indices, cosine)."""
        from .embedding import nearest_neurons

        return nearest_neurons(self.embedding_, neuron, k=k)
