"""Layout-faithfulness metrics pinned on hand-made cases (issue 3 groundwork)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness

from neurocarta.methods.topomap import (continuity, distance_spearman, layout_quality,
                                        neighbourhood_preservation, trustworthiness)


@pytest.fixture
def points():
    return np.random.default_rng(0).normal(size=(300, 2))


def test_identical_layout_is_perfect(points):
    q = layout_quality(points, points, k=5, metric="euclidean")
    assert q["trustworthiness"] == pytest.approx(1.0)
    assert q["continuity"] == pytest.approx(1.0)
    assert q["neighbourhood_preservation"] == pytest.approx(1.0)
    assert q["spearman"] == pytest.approx(1.0)
    # rotation, reflection and scale change nothing
    turned = points @ np.array([[0.0, -1.0], [-1.0, 0.0]]) * 3.0
    assert trustworthiness(points, turned, k=5, metric="euclidean") == pytest.approx(1.0)


def test_shuffled_layout_falls_near_the_random_expectation(points):
    shuffled = points[np.random.default_rng(1).permutation(len(points))]
    t = trustworthiness(points, shuffled, k=5, metric="euclidean")
    c = continuity(points, shuffled, k=5, metric="euclidean")
    assert 0.4 < t < 0.6 and 0.4 < c < 0.6
    assert neighbourhood_preservation(points, shuffled, k=5, metric="euclidean") < 0.1
    assert abs(distance_spearman(points, shuffled, metric="euclidean")) < 0.1


def test_trustworthiness_matches_scikit_learn_and_block_size_does_not_matter():
    rng = np.random.default_rng(2)
    high = rng.normal(size=(200, 12))
    low = high[:, :2] + 0.3 * rng.normal(size=(200, 2))
    ours = trustworthiness(high, low, k=7, metric="euclidean", block=37)
    assert ours == pytest.approx(sk_trustworthiness(high, low, n_neighbors=7), abs=1e-12)
    assert ours == pytest.approx(trustworthiness(high, low, k=7, metric="euclidean", block=500), abs=1e-12)
    # continuity is trustworthiness with the spaces swapped
    assert continuity(high, low, k=7, metric="euclidean") == pytest.approx(
        sk_trustworthiness(low, high, n_neighbors=7), abs=1e-12)


def _trustworthiness_by_definition(high, low, k):
    """Venna and Kaski's formula, written as plainly as possible (distinct distances only)."""
    n = len(high)
    total = 0
    for i in range(n):
        dh = [abs(high[i] - high[j]) if j != i else np.inf for j in range(n)]
        dl = [np.linalg.norm(low[i] - low[j]) if j != i else np.inf for j in range(n)]
        rank = {j: r + 1 for r, j in enumerate(np.argsort(dh))}
        near_high = set(np.argsort(dh)[:k])
        for j in np.argsort(dl)[:k]:
            if j not in near_high:
                total += rank[j] - k
    return 1 - 2 / (n * k * (2 * n - 3 * k - 1)) * total


def test_swapped_ends_on_a_line_match_the_definition():
    high = np.cumsum(np.arange(1, 13)).astype(float)  # gaps 2, 3, 4, ...: no tied distances
    low = np.c_[high, np.zeros(12)]
    low[[0, 11]] = low[[11, 0]]  # the two ends trade places on the map
    for k in (1, 2, 3):
        want = _trustworthiness_by_definition(high, low, k)
        assert want < 0.95
        assert trustworthiness(high[:, None], low, k=k, metric="euclidean") == pytest.approx(want, abs=1e-12)


def test_cosine_profiles_and_bad_input():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(100, 8))
    high = base * rng.uniform(0.5, 5.0, size=(100, 1))  # scale does not change cosine distance
    layout = base[:, :2]
    assert trustworthiness(high, layout, k=5) == pytest.approx(trustworthiness(base, layout, k=5), abs=1e-12)
    with pytest.raises(ValueError, match="finite"):
        trustworthiness(np.full((10, 3), np.nan), np.zeros((10, 2)), k=2)
    with pytest.raises(ValueError, match="below n/2"):
        trustworthiness(base, base[:, :2], k=60)
    with pytest.raises(ValueError, match="metric"):
        trustworthiness(base, base[:, :2], k=5, metric="manhattan")


def test_methods_never_import_torch():
    import subprocess
    import sys

    code = "import sys, neurocarta.methods.topomap as t; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
