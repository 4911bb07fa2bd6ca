"""The defaults that a method's estimator, its atlas-level function and the CLI share, each
written once, here.

Plain constants and no imports: the CLI reads them while it builds its parser, and importing
the methods themselves (numpy, numba, umap) would add seconds to every command. A default
that only one of them has stays in that one's signature.
"""

# Topographic maps: TopoMap, topomap(), pipeline.build_topomaps and `neurocarta topomap`.
TOPOMAP_METHOD = "umap"
TOPOMAP_DISTANCE = "cosine"
TOPOMAP_PROFILE = "nap"  # the original's: each group's mean minus the mean of the groups
TOPOMAP_K = 5  # neighbourhood size of the layout quality metrics

# Mapper. Shared by the Mapper estimator, mapper() and `neurocarta mapper`:
MAPPER_COVER = "uniform"
MAPPER_CLUSTERER = "dbscan"
MAPPER_MIN_SAMPLES = 5
# The atlas defaults of mapper(), sweep() and `neurocarta mapper` (pick_stable's choice on the
# demo's layers, see methods/mapper/analysis.py). The Mapper estimator keeps TopoAct's and
# KeplerMapper's own (l2 lens, 10 intervals, 30% overlap, euclidean) in its signature.
MAPPER_LENS = "pca"
MAPPER_INTERVALS = 30
MAPPER_OVERLAP = 0.2
MAPPER_METRIC = "cosine"

# Concept atlas: ConceptAtlas, concepts() and `neurocarta concepts`.
CONCEPTS_K = 100  # exemplars per neuron
CONCEPTS_THRESHOLD = 0.2  # Jaccard index; why 0.2: see ConceptAtlas's docstring
CONCEPTS_N_HASHES = 128
CONCEPTS_METHOD = "leiden"
CONCEPTS_RESOLUTION = 1.0
CONCEPTS_EMBEDDING = "ppmi"
CONCEPTS_DIM = 30

# Comparison: layer_similarity(), compare_atlases() and `neurocarta compare-atlases`.
COMPARISON_BATCH_SIZE = 256  # CKA minibatch (Nguyen et al. 2021 use 256)
COMPARISON_MAX_INPUTS = 10_000  # a seeded subset of the shared inputs above this
