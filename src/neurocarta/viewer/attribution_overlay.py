"""The heat overlay the inspector lays over an input's thumbnail: a stored per-pixel
attribution map (store/attributions.py) as an RGBA image at the thumbnail's size, warm where
the attribution is large and transparent where it is small."""

from __future__ import annotations

import numpy as np

#: below this share of the map's high value a pixel stays transparent
FLOOR = 0.15
#: the map's "high" value: this percentile, so one extreme pixel does not wash out the rest
HIGH_PERCENTILE = 99.5
MAX_ALPHA = 215


def overlay_rgba(values: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 4) uint8: dark red through orange to yellow as the attribution grows,
    alpha rising from 0 at ``FLOOR`` of the high value to ``MAX_ALPHA`` at it."""
    from PIL import Image

    values = np.nan_to_num(np.abs(np.asarray(values, dtype=np.float32)))
    if values.shape != (size, size):  # the model's input size to the thumbnail's
        values = np.asarray(Image.fromarray(values, mode="F").resize((size, size), Image.Resampling.BILINEAR))
    high = float(np.percentile(values, HIGH_PERCENTILE))
    v = np.clip(values / high, 0.0, 1.0) if high > 0 else np.zeros_like(values)
    out = np.zeros((size, size, 4), dtype=np.uint8)
    out[..., 0] = np.round(150 + 105 * np.clip(v * 2, 0, 1))
    out[..., 1] = np.round(230 * np.clip(v * 1.4 - 0.3, 0, 1))
    out[..., 2] = np.round(60 * np.clip(v * 2 - 1, 0, 1))
    out[..., 3] = np.round(MAX_ALPHA * np.clip((v - FLOOR) / (1 - FLOOR), 0, 1))
    return out
