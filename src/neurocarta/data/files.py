"""Data sources read from the user's files: image folders and text files (``npz:`` is in npz.py)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from .base import DataSource
from .columns import encode_labels, label_columns

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _images(paths: Iterable[Path]) -> list[Path]:
    """The image files among ``paths`` by suffix (no stat per file: ImageNet has 1.2M), sorted,
    hidden ones (``._x.jpg`` from macOS) left out."""
    return sorted(p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


class FolderSource(DataSource):
    """``folder:PATH``: one subfolder per class holding image files (sorted by name).

    A folder with no subfolders is a set of unlabelled images (said once, in a warning):
    its table has no ``label`` column at all. Hidden files and folders are skipped. Other
    attributes come from a metadata table joined on ``path`` (``extract --inputs``,
    metadata.py).
    """

    modality = "image"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.spec = f"folder:{root}"
        if not self.root.is_dir():
            raise SpecError(f"folder:{root} is a file, not a folder; give the folder that holds the images")
        classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        loose = _images(p for p in self.root.iterdir() if p.is_file())
        if not classes and not loose:
            raise SpecError(f"folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                            "put them in one subfolder per class")
        if classes:
            rows = [(str(f.relative_to(self.root).as_posix()), ci, name) for ci, name in enumerate(classes)
                    for f in _images(self.root.joinpath(name).rglob("*"))]
            if loose:
                warnings.warn(f"{root}: {len(loose)} image(s) beside the class subfolders are left out "
                              f"({', '.join(p.name for p in loose[:3])}); move them into a class subfolder")
            table = pd.DataFrame(rows, columns=["path", "label", "label_name"])
            self.class_names = classes
        else:
            warnings.warn(f"{root} has no class subfolders, so its images are unlabelled (maps by class and "
                          "findings about labels are skipped); put them in one subfolder per class to label them")
            table = pd.DataFrame({"path": [p.name for p in loose]})
            self.class_names = None
        if not len(table):
            raise SpecError(f"the class subfolders of {root} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                            "put them in one subfolder per class")
        table.insert(0, "input_id", np.arange(len(table), dtype=np.int64))
        self._table = table

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
            codes, names = encode_labels(np.array(labels, dtype=object), str(path))
            label_columns(table, codes, names)
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
