"""Per-input maps: how one input (or a set of inputs) activates every neuron of a layer,
relative to what the layer does on average.

A topographic map paints each neuron by a value. For a group of inputs that value is the
group's NAP profile (:func:`~neurocarta.methods.topomap.profiles.nap`); for a single input
it is the z-score of the input's activation against the neuron's mean and standard
deviation over every row of the layer, so neurons of very different scales share one
colour scale. Token layers have several rows per input: the input's value is the mean over
its rows before the z-score.

Pure numpy: the caller reads the rows (and streams the layer's chunks for the moments).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def neuron_moments(blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron mean and standard deviation over all rows of ``blocks`` (rows x neurons
    arrays, e.g. a layer's chunks), accumulated in float64 so a long layer of float16 rows
    does not lose precision. An empty stream gives zeros."""
    total = total_sq = None
    count = 0
    for block in blocks:
        b = np.asarray(block, dtype=np.float64)
        if total is None:
            total, total_sq = np.zeros(b.shape[1]), np.zeros(b.shape[1])
        total += b.sum(axis=0)
        total_sq += (b * b).sum(axis=0)
        count += b.shape[0]
    if total is None:
        return np.zeros(0), np.zeros(0)
    mean = total / max(count, 1)
    # E[x^2] - E[x]^2 can dip below zero by rounding for a constant neuron
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean * mean, 0.0))
    return mean, std


def zscores(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per neuron (the last axis of ``x``); 0 for a neuron that never
    varies, whose z-score is undefined and whose map cell should stay neutral."""
    x = np.asarray(x, dtype=np.float64)
    varies = std > 0
    return np.where(varies, (x - mean) / np.where(varies, std, 1.0), 0.0)


def segment_means(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The mean of consecutive segments of rows of ``x``: segment i is the next
    ``lengths[i]`` rows (an input's token rows). Every length must be positive."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if (lengths <= 0).any():
        raise ValueError("every segment needs at least one row")
    if lengths.sum() != len(x):
        raise ValueError(f"the segments cover {int(lengths.sum())} rows, x has {len(x)}")
    if not len(lengths):
        return np.zeros((0,) + np.shape(x)[1:])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    sums = np.add.reduceat(np.asarray(x, dtype=np.float64), starts, axis=0)
    return sums / lengths[:, None]
