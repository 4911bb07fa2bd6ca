"""Data sources read from the user's files: image folders, text files and npz arrays."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from .base import DataSource

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class FolderSource(DataSource):
    """``folder:PATH``: one subfolder per class holding image files (sorted by name)."""

    modality = "image"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.spec = f"folder:{root}"
        classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        rows = []
        if classes:
            for ci, name in enumerate(classes):
                for f in sorted((self.root / name).rglob("*")):
                    if f.suffix.lower() in IMAGE_SUFFIXES:
                        rows.append((str(f.relative_to(self.root)), ci, name))
        else:  # a flat folder of images: no labels
            for f in sorted(self.root.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    rows.append((f.name, -1, ""))
        if not rows:
            raise SpecError(f"folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                            "put them in one subfolder per class")
        self.class_names = classes or None
        self._table = pd.DataFrame(rows, columns=["path", "label", "label_name"])
        self._table.insert(0, "input_id", np.arange(len(rows), dtype=np.int64))

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        from PIL import Image

        out = []
        for i in indices:
            path = self.root / self._table.at[int(i), "path"]
            try:
                with Image.open(path) as im:
                    out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            except OSError as e:
                raise SpecError(f"cannot read image {path}: {e}") from e
        return out


class TextSource(DataSource):
    """``text:PATH``: one text per line; an optional tab-separated second column is the label.

    Blank lines are skipped (with one warning saying how many), so input ids count texts,
    not lines; the ``line`` column keeps each text's 1-based line number in the file.
    """

    modality = "text"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.spec = f"text:{path}"
        raw = self.path.read_bytes()
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise SpecError(f"{path} is not UTF-8 text (bad byte at line {line}); re-save it as UTF-8") from e
        all_lines = content.splitlines()
        numbered = [(number, l) for number, l in enumerate(all_lines, start=1) if l.strip()]
        if not numbered:
            raise SpecError(f"{path} holds no text: write one input per line")
        if len(numbered) < len(all_lines):
            blank = len(all_lines) - len(numbered)
            warnings.warn(f"{path}: skipped {blank} blank line{'s' if blank != 1 else ''}, so input ids count "
                          "texts, not lines; the 'line' column keeps each text's line number in the file")
        texts, labels = [], []
        for _, line in numbered:
            text, tab, label = line.partition("\t")
            texts.append(text.strip())
            labels.append(label.strip() if tab else None)
        table = pd.DataFrame({"input_id": np.arange(len(texts), dtype=np.int64),
                              "line": np.array([number for number, _ in numbered], dtype=np.int64), "text": texts})
        if any(l is not None for l in labels):
            names = sorted({l for l in labels if l})
            index = {n: i for i, n in enumerate(names)}
            table["label"] = np.array([index.get(l, -1) if l else -1 for l in labels], dtype=np.int64)
            table["label_name"] = [l or "" for l in labels]
            self.class_names = names
        else:
            self.class_names = None
        self._table = table

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        texts = self._table["text"].to_numpy()
        return [str(texts[int(i)]) for i in indices]


class TextListSource(DataSource):
    """Texts given in memory (``neurocarta layers`` uses one sentence of it)."""

    modality = "text"

    def __init__(self, texts: Sequence[str], spec: str = "texts"):
        self.spec = spec
        self._table = pd.DataFrame({"input_id": np.arange(len(texts), dtype=np.int64), "text": list(texts)})

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        return [str(self._table.at[int(i), "text"]) for i in indices]


class NpzSource(DataSource):
    """``npz:PATH``: arrays ``x`` (inputs) and optional ``y`` (integer labels).

    ``uint8`` inputs shaped (N, H, W) or (N, H, W, C) are treated as images; anything else is
    fed to the model as float32 arrays.
    """

    def __init__(self, path: str | Path):
        self.spec = f"npz:{path}"
        try:
            with np.load(path, allow_pickle=False) as z:
                if "x" not in z.files:
                    raise SpecError(f"{path} has no array 'x' (it has: {', '.join(z.files)}); save inputs as x=...")
                self._x = z["x"]
                y = z["y"] if "y" in z.files else None
        except (OSError, ValueError) as e:
            raise SpecError(f"cannot read {path} as .npz: {e}") from e
        n = self._x.shape[0]
        if y is not None and len(y) != n:
            raise SpecError(f"{path}: x has {n} rows but y has {len(y)}; they must match")
        self.modality = "image" if self._x.dtype == np.uint8 and self._x.ndim in (3, 4) else "array"
        table = pd.DataFrame({"input_id": np.arange(n, dtype=np.int64)})
        if y is not None:
            table["label"] = np.asarray(y).astype(np.int64)
            self.class_names = [str(c) for c in range(int(table["label"].max()) + 1)]
        self._table = table

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        if self.modality == "image":
            return [self._x[i] for i in idx]
        return [np.asarray(self._x[i], dtype=np.float32) for i in idx]
