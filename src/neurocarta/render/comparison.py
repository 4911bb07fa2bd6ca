"""Heatmaps of layer similarity (CKA) and the figure-to-PNG helper notebooks display.

Takes plain tables (rows x columns of similarity), so it imports no method."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

#: one fixed scale for every panel: CKA of 0 and 1 look the same in every figure
VMIN, VMAX = 0.0, 1.0
CMAP = "viridis"


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def plot_similarity(panels: list[tuple[str, pd.DataFrame]], note: str = "", cell: float = 0.42):
    """One heatmap per ``(title, table)``, side by side on one colour scale (0..1), each cell
    written with its value when the table is small enough to read them; NaN cells are grey."""
    from matplotlib.figure import Figure

    widths = [max(2.4, cell * df.shape[1] + 1.6) for _, df in panels]
    height = max(2.8, cell * max(df.shape[0] for _, df in panels) + 1.9)
    fig = Figure(figsize=(sum(widths) + 0.8, height), layout="constrained")
    axes = fig.subplots(1, len(panels), width_ratios=widths, squeeze=False)[0]
    image = None
    for ax, (title, df) in zip(axes, panels):
        values = df.to_numpy(dtype=np.float64)
        masked = np.ma.masked_invalid(values)
        image = ax.imshow(masked, cmap=CMAP, vmin=VMIN, vmax=VMAX, aspect="auto", interpolation="nearest")
        image.cmap.set_bad("#cccccc")
        ax.set_xticks(range(df.shape[1]), [_short(str(c)) for c in df.columns], rotation=60, ha="right",
                      fontsize=7)
        ax.set_yticks(range(df.shape[0]), [_short(str(r)) for r in df.index], fontsize=7)
        ax.set_title(title, fontsize=8.5)
        if values.size <= 400:
            for (i, j), v in np.ndenumerate(values):
                if math.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if v > 0.6 else "white")
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="CKA")
    if note:
        fig.suptitle(note, fontsize=8)
    return fig


def figure_png(fig, dpi: int = 90) -> bytes:
    """A Figure as PNG bytes (what ``_repr_png_`` returns to Jupyter)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
