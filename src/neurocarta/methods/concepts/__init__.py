"""The concept atlas (after NeuroCartography): neurons grouped by their top-k exemplars with
MinHash + LSH in linear time, a co-activation embedding, measured coherence and a concept
graph per class."""

from typing import TYPE_CHECKING

from .classes import class_graphs
from .coherence import coherence_report, group_coherence, random_coherence
from .embedding import align_procrustes, cooccurrence, nearest_neurons, ppmi, ppmi_svd, project_2d, sgns
from .estimator import ConceptAtlas, SimilarityGraph, as_sets
from .graph import ConceptGraph, cascade, class_importance, concept_graph, top_sets
from .groups import cluster_pairs, size_distribution
from .lsh import candidate_pairs, collision_probability, lsh_params, similar_pairs
from .minhash import estimate_jaccard, exact_jaccard, minhash_signatures
from .patches import crop_patches, exemplar_patches, patch_boxes, save_patches
from .result import ConceptResult, concepts

if TYPE_CHECKING:
    from ...store import Atlas


def load_concepts(atlas: "Atlas", snapshot: str | None = None) -> ConceptResult:
    """A concept atlas stored in ``atlas`` by ``concepts(..., save=True)`` or the CLI."""
    return ConceptResult.load(atlas, snapshot)


__all__ = ["ConceptAtlas", "ConceptGraph", "ConceptResult", "SimilarityGraph", "align_procrustes", "as_sets",
           "candidate_pairs", "cascade", "class_graphs", "class_importance", "cluster_pairs", "coherence_report",
           "collision_probability", "concept_graph", "concepts", "cooccurrence", "crop_patches", "estimate_jaccard",
           "exact_jaccard", "exemplar_patches", "group_coherence", "load_concepts", "lsh_params", "minhash_signatures",
           "nearest_neurons", "patch_boxes", "ppmi", "ppmi_svd", "project_2d", "random_coherence", "save_patches",
           "sgns", "similar_pairs", "size_distribution", "top_sets"]
