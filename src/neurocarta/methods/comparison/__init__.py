"""Comparing layers, snapshots and models: minibatch linear CKA between every pair of layers
(``layers.layer_similarity``) and concept matching across two snapshots or two models
(``concept_matching.compare_concepts``). Pure numpy and scipy, no torch."""

from .cka import MinibatchCKA, linear_cka
from .compare import AtlasComparison, compare_atlases
from .concept_matching import ConceptMatch, compare_concepts, match_concepts
from .layers import LayerSimilarity, layer_similarity

__all__ = ["AtlasComparison", "ConceptMatch", "LayerSimilarity", "MinibatchCKA", "compare_atlases", "compare_concepts", "layer_similarity", "linear_cka",
           "match_concepts"]
