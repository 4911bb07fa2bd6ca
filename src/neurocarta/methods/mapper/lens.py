"""Lenses: the function that spreads the inputs along the cover.

- ``l2``: the L2 norm of each activation vector (TopoAct's choice);
- ``pca`` / ``pca2``: the first one or two principal components;
- ``umap``: a seeded 2-D UMAP embedding;
- a column name of the input table (``confidence``, ``loss``, any numeric attribute);
- an array (inputs x dims) or a callable ``f(X) -> array``.

Lenses may be multi-dimensional; the cover then uses hypercubes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import UserError

BUILT_IN = ("l2", "pca", "pca2", "umap")


def row_norms(x: np.ndarray, block: int = 65536) -> np.ndarray:
    """L2 norm of every row in float64, a block at a time (no float64 copy of ``x``)."""
    out = np.empty(x.shape[0])
    for s in range(0, x.shape[0], block):
        part = np.asarray(x[s:s + block], dtype=np.float64)
        out[s:s + block] = np.sqrt(np.einsum("ij,ij->i", part, part))
    return out


def compute_lens(x: np.ndarray, lens="l2", table: pd.DataFrame | None = None, seed: int = 0) -> np.ndarray:
    """The lens values (inputs x dims, float64) of the rows of ``x``."""
    if callable(lens) and not isinstance(lens, str):
        values = np.asarray(lens(x), dtype=np.float64)
    elif isinstance(lens, str) and lens in BUILT_IN:
        if lens == "l2":
            values = row_norms(x)
        elif lens in ("pca", "pca2"):
            from sklearn.decomposition import PCA

            k = 1 if lens == "pca" else 2
            if x.shape[1] < k:
                raise UserError(f"lens {lens} needs at least {k} neurons, the layer has {x.shape[1]}")
            values = PCA(n_components=k, random_state=seed).fit_transform(np.asarray(x, dtype=np.float64))
        else:
            from ..umap_kernels import umap_module

            values = umap_module().UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(x)
    elif isinstance(lens, str):
        if table is None or lens not in table.columns:
            have = ", ".join(map(str, table.columns)) if table is not None else "none"
            raise UserError(f"no lens {lens!r}: use l2, pca, pca2, umap or a numeric column ({have})")
        values = pd.to_numeric(table[lens], errors="coerce").to_numpy(dtype=np.float64)
    else:
        values = np.asarray(lens, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    if values.shape[0] != x.shape[0]:
        raise UserError(f"the lens has {values.shape[0]} rows, the data {x.shape[0]}")
    if not np.isfinite(values).all():
        raise UserError("the lens holds NaN or Inf (a column with missing values?); pick another lens")
    return values
