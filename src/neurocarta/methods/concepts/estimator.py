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
from sklearn.base import BaseEstimator

from ...errors import UserError, check_choice, check_number
from ..defaults import (CONCEPTS_DIM, CONCEPTS_EMBEDDING, CONCEPTS_K, CONCEPTS_METHOD, CONCEPTS_N_HASHES,
                        CONCEPTS_RESOLUTION, CONCEPTS_THRESHOLD)
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


class ConceptAtlas(BaseEstimator):
    """Concept groups of neurons, their co-activation embedding and the similarity graph.

    Parameters (keyword only; checked by ``fit``)
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

    def __init__(self, *, k: int = CONCEPTS_K, threshold: float = CONCEPTS_THRESHOLD,
                 n_hashes: int = CONCEPTS_N_HASHES, bands: int | None = None, rows: int | None = None,
                 method: str = CONCEPTS_METHOD, resolution: float = CONCEPTS_RESOLUTION, across_layers: bool = False,
                 embedding: str = CONCEPTS_EMBEDDING, dim: int = CONCEPTS_DIM, seed: int = 0):
        self.k = k
        self.threshold = threshold
        self.n_hashes = n_hashes
        self.bands = bands
        self.rows = rows
        self.method = method
        self.resolution = resolution
        self.across_layers = across_layers
        self.embedding = embedding
        self.dim = dim
        self.seed = seed

    @property
    def params(self) -> dict:
        """The parameters as the atlas records them (after ``fit``, the LSH banding it used)."""
        return {"k": int(self.k), "threshold": float(self.threshold), "n_hashes": int(self.n_hashes),
                "bands": getattr(self, "bands_", self.bands), "rows": getattr(self, "rows_", self.rows),
                "method": self.method, "resolution": float(self.resolution),
                "across_layers": bool(self.across_layers), "embedding": self.embedding, "dim": int(self.dim),
                "seed": int(self.seed)}

    def fit(self, exemplar_sets, layers: np.ndarray | None = None, n_inputs: int | None = None,
            reference: np.ndarray | None = None) -> "ConceptAtlas":
        """``exemplar_sets``: see :func:`as_sets`. ``layers``: a layer label per neuron
        (groups stay within a layer unless ``across_layers``). ``reference``: a previous
        projection (same neurons) to align the 2-D projection to, e.g. the last snapshot's."""
        from .embedding import ppmi_svd, project_2d, sgns
        from .lsh import lsh_params, similar_pairs

        k = check_number("k", self.k, 1, integer=True)
        threshold = check_number("threshold", self.threshold, 0.0, 1.0, low_open=True)
        n_hashes = check_number("n_hashes", self.n_hashes, 1, integer=True)
        for name in ("bands", "rows"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), 1, integer=True)
        check_choice("method", self.method, METHODS)
        resolution = check_number("resolution", self.resolution, 0.0, low_open=True)
        check_choice("embedding", self.embedding, EMBEDDINGS)
        dim = check_number("dim", self.dim, 1, integer=True)
        seed = check_number("seed", self.seed, 0, integer=True)
        indptr, indices = as_sets(exemplar_sets, k)
        n = len(indptr) - 1
        if n == 0:
            raise UserError("no neurons to group: the exemplar sets are empty")
        if layers is not None and len(layers) != n:
            raise UserError(f"layers has {len(layers)} labels for {n} neurons")
        bands, rows = (self.bands, self.rows) if self.bands and self.rows else lsh_params(threshold, n_hashes)
        pairs, jac = similar_pairs(indptr, indices, threshold, n_hashes=n_hashes, bands=bands, rows=rows, seed=seed)
        if layers is not None and not self.across_layers and len(pairs):
            lab = np.asarray(layers)
            same = lab[pairs[:, 0]] == lab[pairs[:, 1]]
            pairs, jac = pairs[same], jac[same]
        self.bands_, self.rows_ = int(bands), int(rows)
        self.graph_ = SimilarityGraph(n, pairs, jac)
        self.clusters_ = cluster_pairs(n, pairs, jac, self.method, resolution, seed)
        self.sizes_ = size_distribution(self.clusters_)
        embed = ppmi_svd if self.embedding == "ppmi" else sgns
        self.embedding_ = embed(indptr, indices, dim=dim, seed=seed, n_inputs=n_inputs)
        self.projection_ = project_2d(self.embedding_, seed=seed, reference=reference)
        self.indptr_, self.indices_ = indptr, indices
        return self

    def nearest(self, neuron: int, k: int = 10):
        """The ``k`` nearest neurons in the embedding space (not in 2-D): (indices, cosine)."""
        from .embedding import nearest_neurons

        return nearest_neurons(self.embedding_, neuron, k=k)
