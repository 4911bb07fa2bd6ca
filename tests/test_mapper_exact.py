"""Mapper is exact on big layers far from the origin (issue 14, bug 1).

Above 20,000 rows Mapper's DBSCAN multiplies float32 rows. It used to form distances as
|a|^2 + |b|^2 - 2 a.b on uncentred rows, so adding a constant to every row (a residual stream,
a ReLU layer with large biases) moved pairs across eps: at offset 100, 19 of 22 nodes of the
issue's example differed from scikit-learn's. Now every interval is centred and the pairs the
float32 products cannot decide are measured again in float64, so the nodes are scikit-learn's
DBSCAN clusters in float64 at every offset.

The reference is scikit-learn's DBSCAN on each cover interval's rows in float64, as
KeplerMapper builds its nodes. 25,000 rows put Mapper on its float32 path; ten intervals keep
scikit-learn's part of the test to a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import DBSCAN

from neurocarta.methods.mapper import Cover, Mapper

N, DIMS, INTERVALS, OVERLAP, MIN_SAMPLES = 25_000, 32, 10, 0.1, 5
OFFSETS = [0, 30, 100, 1000]
EPS = 5.6  # euclidean, as in the reproduction


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    """The issue's data: three gaussian blobs in 32 dimensions, on a grid of 2^-12 so that
    ``blobs + offset`` is exact in float32 for every offset here (the float64 rows are then
    the same points at every offset, and so is the true clustering)."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, DIMS)) * 4)[rng.integers(0, 3, N)] + rng.normal(size=(N, DIMS))
    return np.round(x * 4096) / 4096


@pytest.fixture(scope="module")
def lens() -> np.ndarray:
    return np.arange(N, dtype=np.float64)


def sklearn_nodes(x64: np.ndarray, lens: np.ndarray, eps: float) -> list[tuple[int, ...]]:
    """Mapper's nodes by KeplerMapper's recipe: scikit-learn's DBSCAN per cover interval."""
    nodes = []
    for _, rows in Cover(INTERVALS, OVERLAP).members(lens):
        labels = DBSCAN(eps=eps, min_samples=MIN_SAMPLES).fit_predict(x64[rows])
        nodes += [tuple(rows[labels == k]) for k in np.unique(labels[labels >= 0])]
    return sorted(nodes)


def mapper_nodes(x: np.ndarray, lens: np.ndarray, eps: float, metric: str) -> list[tuple[int, ...]]:
    g = Mapper(lens=lens, intervals=INTERVALS, overlap=OVERLAP, eps=eps, min_samples=MIN_SAMPLES, metric=metric,
               n_jobs=1).fit(x).graph_
    return sorted(tuple(m.tolist()) for m in g.nodes)


@pytest.fixture(scope="module")
def euclidean_reference(blobs, lens) -> list[tuple[int, ...]]:
    return sklearn_nodes(blobs, lens, EPS)


@pytest.mark.parametrize("offset", OFFSETS)
def test_euclidean_nodes_equal_scikit_learn_at_every_offset(blobs, lens, euclidean_reference, offset):
    x = (blobs + offset).astype(np.float32)
    assert np.array_equal(x.astype(np.float64) - offset, blobs)  # the same points, exactly
    ours = mapper_nodes(x, lens, EPS, "euclidean")
    assert ours == euclidean_reference
    assert len(ours) >= 2 * INTERVALS  # every interval holds several clusters: a real test


@pytest.mark.parametrize("offset", OFFSETS)
def test_cosine_nodes_equal_scikit_learn_at_every_offset(blobs, lens, offset):
    """Mapper's cosine is the chord distance between unit rows, sqrt(2 (1 - cos)): scikit-learn's
    DBSCAN on the float64 unit rows (the same as its metric="cosine" with eps^2 / 2, which is
    five times slower). Far from the origin all rows point almost the same way, so eps is small
    there: the issue's euclidean eps over the typical row norm (0.24 at offset 0, 0.001 at 1,000)."""
    x = (blobs + offset).astype(np.float32)
    x64 = x.astype(np.float64)
    unit = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
    eps = EPS / float(np.median(np.linalg.norm(x64, axis=1)))
    ours = mapper_nodes(x, lens, eps, "cosine")
    assert ours == sklearn_nodes(unit, lens, eps)
    assert len(ours) >= INTERVALS
