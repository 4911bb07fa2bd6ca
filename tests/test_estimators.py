"""The three estimators follow scikit-learn's conventions (issue 14, code health 6): keyword-only
constructors that store their parameters unchanged, so that ``get_params`` / ``clone`` round
trip; every check in ``fit``, raising the one exception family for the same kind of bad
parameter; and each shared default written once."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone

import neurocarta as nc
from neurocarta.errors import ParameterError, UserError
from neurocarta.methods import defaults

ESTIMATORS = [nc.TopoMap, nc.Mapper, nc.ConceptAtlas]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_constructor_is_keyword_only_and_stores_parameters_unchanged(cls):
    params = inspect.signature(cls.__init__).parameters
    assert all(p.kind is p.KEYWORD_ONLY for name, p in params.items() if name != "self")
    with pytest.raises(TypeError):
        cls("positional")
    # Odd but storable values come back as given: no casting or checking in __init__.
    odd = {"seed": np.int64(7)}
    est = cls(**odd)
    assert est.get_params()["seed"] is odd["seed"]


@pytest.mark.parametrize("cls, params", [
    (nc.TopoMap, {"method": "pca", "distance": "euclidean", "k": 7, "seed": 3, "grid": True}),
    (nc.Mapper, {"lens": "pca", "intervals": [3, 4], "overlap": 0.25, "eps": 1.5, "metric": "cosine", "n_jobs": 1}),
    (nc.ConceptAtlas, {"k": 20, "threshold": 0.3, "bands": 8, "rows": 4, "method": "components", "dim": 5}),
])
def test_get_params_and_clone_round_trip(cls, params):
    est = cls(**params)
    got = est.get_params()
    assert set(got) == set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert all(got[name] is value for name, value in params.items())
    twin = clone(est)
    assert twin is not est and twin.get_params() == got
    assert cls(**got).get_params() == got
    twin.set_params(seed=11)
    assert twin.seed == 11 and est.get_params()["seed"] == got["seed"]


@pytest.fixture(scope="module")
def small_inputs():
    """One small valid input per estimator, so that fit reaches its parameter checks."""
    rng = np.random.default_rng(0)
    return {nc.TopoMap: rng.normal(size=(12, 4)), nc.Mapper: rng.normal(size=(60, 3)),
            nc.ConceptAtlas: [rng.choice(50, size=10, replace=False) for _ in range(6)]}


# The same kinds of bad parameter, one of each per estimator: a choice that does not exist,
# a count below its minimum, a count that is not a whole number, a fraction out of range, a
# seed that is not a number.
BAD = [
    (nc.TopoMap, {"method": "isomap"}, "method must be one of"),
    (nc.TopoMap, {"k": 0}, "k must be a whole number >= 1"),
    (nc.TopoMap, {"n_neighbors": 2.5}, "n_neighbors must be a whole number"),
    (nc.TopoMap, {"seed": "zero"}, "seed must be a whole number"),
    (nc.Mapper, {"metric": "manhattan"}, "metric must be one of"),
    (nc.Mapper, {"cover": "ragged"}, "cover must be one of"),
    (nc.Mapper, {"clusterer": "kmeans"}, "clusterer must be"),
    (nc.Mapper, {"min_samples": 0}, "min_samples must be a whole number >= 1"),
    (nc.Mapper, {"intervals": 0}, "intervals must be a whole number >= 1"),
    (nc.Mapper, {"intervals": 2.5}, "intervals must be a whole number"),
    (nc.Mapper, {"overlap": 1.2}, r"overlap .* must be a number in \(0, 1\)"),
    (nc.Mapper, {"overlap": 0.0}, r"overlap .* must be a number in \(0, 1\)"),
    (nc.Mapper, {"eps": -1.0}, "eps must be a number > 0"),
    (nc.Mapper, {"n_jobs": 0}, "n_jobs"),
    (nc.Mapper, {"seed": "zero"}, "seed must be a whole number"),
    (nc.ConceptAtlas, {"method": "louvain"}, "method must be one of"),
    (nc.ConceptAtlas, {"embedding": "word2vec"}, "embedding must be one of"),
    (nc.ConceptAtlas, {"k": 0}, "k must be a whole number >= 1"),
    (nc.ConceptAtlas, {"dim": 2.5}, "dim must be a whole number"),
    (nc.ConceptAtlas, {"threshold": 1.5}, r"threshold must be a number in \(0, 1\]"),
    (nc.ConceptAtlas, {"seed": "zero"}, "seed must be a whole number"),
]


@pytest.mark.parametrize("cls, params, message", BAD)
def test_bad_parameters_raise_at_fit_not_init(small_inputs, cls, params, message):
    est = cls(**params)  # storing a bad value is fine...
    with pytest.raises(ParameterError, match=message) as caught:  # ...fitting with it is not
        est.fit(small_inputs[cls])
    # one exception family: a UserError (one line from the CLI, exit 2) and a ValueError
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


def test_the_same_kind_of_bad_parameter_raises_the_same_type(small_inputs):
    kinds = {}
    for cls, params, _ in BAD:
        with pytest.raises(Exception) as caught:
            cls(**params).fit(small_inputs[cls])
        kinds.setdefault(type(caught.value), set()).add(cls.__name__)
    assert kinds == {ParameterError: {"TopoMap", "Mapper", "ConceptAtlas"}}


def test_shared_defaults_are_written_once():
    """The estimator, the atlas-level function and the CLI read the same constants."""
    from neurocarta.cli import build_parser
    from neurocarta.methods.concepts import concepts
    from neurocarta.methods.mapper import mapper
    from neurocarta.methods.topomap import topomap

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    assert default(nc.ConceptAtlas.__init__, "threshold") == default(concepts, "threshold") \
        == defaults.CONCEPTS_THRESHOLD == 0.2
    assert default(nc.ConceptAtlas.__init__, "k") == defaults.CONCEPTS_K
    assert default(concepts, "k") is None  # CONCEPTS_K, lowered to fit a small atlas (test_concepts_atlas.py)
    assert default(nc.TopoMap.__init__, "method") == default(topomap, "method") == defaults.TOPOMAP_METHOD
    assert default(nc.Mapper.__init__, "min_samples") == default(mapper, "min_samples") \
        == defaults.MAPPER_MIN_SAMPLES
    parser = build_parser()
    concepts_cli = parser.parse_args(["concepts", "atlas"])
    assert (concepts_cli.threshold, concepts_cli.k) == (defaults.CONCEPTS_THRESHOLD, None)
    mapper_cli = parser.parse_args(["mapper", "atlas"])
    assert (mapper_cli.lens, mapper_cli.intervals, mapper_cli.overlap, mapper_cli.metric) == (
        default(mapper, "lens"), default(mapper, "intervals"), default(mapper, "overlap"), default(mapper, "metric"))
