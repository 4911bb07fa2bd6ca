"""``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, shipped with sklearn)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .base import DataSource


class DigitsSource(DataSource):
    """sklearn digits as uint8 (8, 8, 3) images; a deterministic 80/20 train/test split.

    Parameters
    ----------
    split : ``"train"``, ``"test"`` or ``None`` (all), renumbered with ``source_index``.
    seed : seeds the split.
    """

    modality = "image"

    def __init__(self, split: str | None = None, seed: int = 0):
        from sklearn.datasets import load_digits

        self.split, self.seed = split, seed
        d = load_digits()
        images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
        n = len(images)
        rng = np.random.default_rng(seed)
        is_test = np.zeros(n, dtype=bool)
        is_test[rng.permutation(n)[: n // 5]] = True
        table = pd.DataFrame({
            "input_id": np.arange(n, dtype=np.int64),
            "label": d.target.astype(np.int64),
            "label_name": [str(t) for t in d.target],
            "split": np.where(is_test, "test", "train"),
            "ink": images.reshape(n, -1).mean(axis=1) / 255.0,
        })
        keep = np.arange(n) if split is None else np.nonzero(table["split"].to_numpy() == split)[0]
        if split not in (None, "train", "test"):
            from ..errors import SpecError

            raise SpecError(f"digits split must be train or test, not {split!r}")
        self._images = images[keep]
        table = table.iloc[keep].reset_index(drop=True)
        table.insert(1, "source_index", keep.astype(np.int64))
        table["input_id"] = np.arange(len(table), dtype=np.int64)
        self._table = table
        self.class_names = [str(i) for i in range(10)]
        options = [f"split={split}"] * bool(split) + [f"seed={seed}"] * bool(seed)
        self.spec = "digits" + (":" + ",".join(options) if options else "")

    def with_split(self, split: str | None) -> "DigitsSource":
        """The same set restricted to ``split`` (``None``: all of it)."""
        return DigitsSource(split=split, seed=self.seed)

    def table(self) -> pd.DataFrame:
        return self._table.copy()

    def get(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        n = len(self._images)
        out = []
        for i in indices:
            if not 0 <= int(i) < n:
                raise IndexError(f"digits has inputs 0..{n - 1}, not {int(i)}")
            out.append(np.repeat(self._images[int(i)][:, :, None], 3, axis=2))
        return out
