"""A PNG grid of feature visualizations, each beside its best dataset exemplar (the atlas's
thumbnail of that input), captioned with the layer, the target and both activations:
``neurocarta visualize --figure`` and the README figure."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ..store.atlas import Atlas
from .run import LayerVisualizations

CAPTION = 12  # pixels of caption under each pair


def save_featvis_figure(atlas: Atlas, runs: Sequence[LayerVisualizations], path: str | Path,
                        per_layer: int = 8, columns: int = 4, side: int = 96) -> Path:
    """Up to ``per_layer`` targets of each run (evenly spread over its targets), ``columns``
    pairs a row, each image drawn ``side`` pixels wide. Returns the path written."""
    cells = []
    for run in runs:
        picks = np.unique(np.linspace(0, len(run.table) - 1, num=min(per_layer, len(run.table))).astype(int))
        for i in picks:
            row = run.table.iloc[int(i)]
            vis = run.images[int(i), 0]
            ex_id = row["exemplar_input_id"]
            have = atlas.has_thumbnails and ex_id is not None and not _missing(ex_id)
            exemplar = atlas.thumbnail(int(ex_id)) if have else np.full_like(vis, 128)
            ex_act = "n/a" if _missing(row["exemplar_activation"]) else f"{row['exemplar_activation']:.2f}"
            cells.append((vis, exemplar, f"{run.layer} {row['kind']} {row['target']}: "
                                         f"{row['activation']:.2f} vs {ex_act}"))
    rows = -(-len(cells) // columns)
    pair_w, pair_h = 2 * side + 4, side + CAPTION
    canvas = Image.new("RGB", (columns * (pair_w + 8), rows * (pair_h + 8)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (vis, exemplar, caption) in enumerate(cells):
        r, c = divmod(k, columns)
        x, y = c * (pair_w + 8), r * (pair_h + 8)
        canvas.paste(_resized(vis, side), (x, y))
        canvas.paste(_resized(exemplar, side), (x + side + 4, y))
        draw.text((x, y + side + 1), caption[:40], fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _resized(image: np.ndarray, side: int) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image)).resize((side, side), Image.NEAREST)


def _missing(value) -> bool:
    return value is None or bool(pd.isna(value))
