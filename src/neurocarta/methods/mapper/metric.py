"""The rows Mapper measures: the activation rows themselves (euclidean), or scaled to unit
length (cosine, where the euclidean distance is the chord ``sqrt(2 (1 - cos))``)."""

from __future__ import annotations

import numpy as np

from ...errors import check_choice

METRICS = ("euclidean", "cosine")


def check_metric(metric: str) -> None:
    """Raise a :class:`~neurocarta.errors.ParameterError` unless Mapper knows ``metric``."""
    check_choice("metric", metric, METRICS)


def prepare(x: np.ndarray, metric: str, dtype=np.float32) -> np.ndarray:
    """Rows in which euclidean distance gives ``metric`` (unit rows for cosine: d^2 = 2 - 2 cos).

    All-zero rows stay zero under cosine (they have no direction)."""
    check_metric(metric)
    x = np.asarray(x, dtype=dtype)
    if metric == "cosine":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norm > 0, norm, 1.0)
    return x
