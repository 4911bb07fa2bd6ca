"""Per-input maps (methods/topomap/inputs.py): layer moments streamed by chunks, z-scores and
the mean over each input's token rows, against plain numpy on the whole array."""

from __future__ import annotations

import numpy as np
import pytest

from neurocarta.methods.topomap.inputs import neuron_moments, segment_means, zscores


def test_moments_streamed_by_chunks_match_numpy_on_float16_rows():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(1000, 7)) * 3 + 50).astype(np.float16)  # far from 0: float16 sums would drift
    x[:, 3] = 2.5  # a neuron that never varies
    mean, std = neuron_moments(x[i:i + 128] for i in range(0, len(x), 128))
    exact = x.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, exact.std(axis=0), rtol=1e-6, atol=1e-9)
    assert std[3] == 0.0
    empty_mean, empty_std = neuron_moments(iter([]))
    assert empty_mean.shape == empty_std.shape == (0,)


def test_zscores_are_zero_for_a_neuron_that_never_varies():
    mean, std = np.array([1.0, 5.0, 0.0]), np.array([2.0, 0.0, 0.5])
    z = zscores(np.array([[3.0, 9.0, -1.0], [1.0, 5.0, 0.0]]), mean, std)
    np.testing.assert_allclose(z, [[1.0, 0.0, -2.0], [0.0, 0.0, 0.0]])


def test_segment_means_average_each_inputs_rows():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)  # rows 0..5
    got = segment_means(x, np.array([1, 3, 2]))
    np.testing.assert_allclose(got, [x[0], x[1:4].mean(axis=0), x[4:6].mean(axis=0)])
    assert segment_means(np.zeros((0, 2)), np.array([], dtype=np.int64)).shape == (0, 2)
    with pytest.raises(ValueError, match="at least one row"):
        segment_means(x, np.array([3, 0, 3]))
    with pytest.raises(ValueError, match="cover 5 rows"):
        segment_means(x, np.array([2, 3]))
