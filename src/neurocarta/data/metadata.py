"""A metadata table joined onto a data source's input table (``extract --inputs meta.csv``).

The table brings attributes the files themselves cannot carry (site, scanner, colour,
source). It is joined on the key both sides share: ``path`` for a ``folder:`` source (each
image's path relative to the folder, as ``a_class/img01.png``), otherwise ``input_id``. Its
rows must name exactly the inputs of the source: a missing or unknown input is an error
naming how many and the first few, never a silent NA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from .base import DataSource
from .columns import encode_labels, label_columns

#: How many missing or unknown keys an error names.
SHOWN = 3
SUFFIXES = (".csv", ".parquet", ".pq")


def read_inputs_table(inputs: "str | Path | pd.DataFrame") -> tuple[pd.DataFrame, str]:
    """The metadata table and a short name for it (its file name, or ``"inputs"``)."""
    if isinstance(inputs, pd.DataFrame):
        return inputs.copy(), "the inputs table"
    path = Path(inputs).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        raise SpecError(f"--inputs {inputs}: give a .csv or .parquet table (one row per input)")
    if not path.is_file():
        raise SpecError(f"--inputs {inputs} does not exist; check the spelling or the working directory")
    try:
        # paths and ids stay text as written: "007.png" must not become 7
        table = (pd.read_csv(path, dtype={"path": str}) if path.suffix.lower() == ".csv"
                 else pd.read_parquet(path))
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise SpecError(f"cannot read --inputs {inputs}: {str(e).splitlines()[0]}") from e
    return table, path.name


def with_inputs(source: DataSource, inputs: "str | Path | pd.DataFrame | None") -> DataSource:
    """``source`` with the columns of the metadata table ``inputs`` joined onto its table
    (``source`` itself when ``inputs`` is ``None``)."""
    if inputs is None:
        return source
    meta, name = read_inputs_table(inputs)
    return AnnotatedSource(source, meta, name)


class AnnotatedSource(DataSource):
    """A data source whose input table gains a metadata table's columns; items are the parent's.

    A ``label`` column in the table labels an unlabelled source (class names or integer
    classes); a source's own label is never overridden.
    """

    def __init__(self, parent: DataSource, meta: pd.DataFrame, name: str):
        self.parent = parent
        self.spec = f"{parent.spec}|inputs={name}"
        self.modality = parent.modality
        self.class_names = parent.class_names
        self.span_attributes = parent.span_attributes
        self.span_fill = parent.span_fill
        base = parent.table()
        meta = meta.rename(columns=str)
        key = "path" if "path" in base.columns else "input_id"
        if "label_name" in meta.columns:
            raise SpecError(f"{name} has a label_name column; give the class names in a 'label' column instead")
        if key not in meta.columns:
            hint = ("the image paths relative to the folder, e.g. a_class/img01.png" if key == "path"
                    else "0..N-1 in the data's order")
            raise SpecError(f"{name} has no {key!r} column to join on; add one ({hint})")
        clash = [c for c in meta.columns if c != key and c in base.columns]
        if clash:
            raise SpecError(f"{name} column {clash[0]!r} is already in the input table (from {parent.spec}); "
                            "rename it or drop it")
        keys = _keys(meta[key], key)
        _check_keys(keys, base[key].astype(str) if key == "path" else base[key], name, key)
        meta = meta.assign(**{key: keys.to_numpy()})
        table = base.merge(meta, on=key, how="left", validate="one_to_one")
        if "label" in meta.columns:
            codes, names = encode_labels(table.pop("label").to_numpy(), f"{name}: label")
            label_columns(table, codes, names)
            self.class_names = names or self.class_names
        self._table = table

    def table(self) -> pd.DataFrame:
        return self._table

    def get(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        return self.parent.get(indices)

    def spans(self, indices: Sequence[int] | np.ndarray) -> list:
        return self.parent.spans(indices)


def _keys(values: pd.Series, key: str) -> pd.Series:
    """The join keys as the source writes them: posix paths without ``./``, or integers."""
    if key == "path":
        return values.astype(str).str.replace("\\", "/", regex=False).str.removeprefix("./")
    try:
        return values.astype(np.int64)
    except (ValueError, TypeError) as e:
        raise SpecError(f"the input_id column must hold whole numbers (0..N-1): {e}") from e


def _check_keys(keys: pd.Series, have: pd.Series, name: str, key: str) -> None:
    """Exactly one row per input of the source, and none for anything else."""
    twice = keys[keys.duplicated()]
    if len(twice):
        raise SpecError(f"{name} names {twice.nunique()} {key}(s) more than once ({_first(twice.unique())}); "
                        "keep one row per input")
    known = set(have.tolist())
    given = set(keys.tolist())
    missing = [k for k in have.tolist() if k not in given]
    if missing:
        raise SpecError(f"{name} misses {len(missing)} of the {len(have)} inputs ({_first(missing)}); "
                        f"add a row for each, keyed by {key}")
    unknown = [k for k in keys.tolist() if k not in known]
    if unknown:
        raise SpecError(f"{name} names {len(unknown)} {key}(s) that are not in the data ({_first(unknown)}); "
                        "remove those rows or check the paths (relative to the folder)")


def _first(values: Sequence[Any]) -> str:
    shown = ", ".join(map(str, list(values)[:SHOWN]))
    return shown + (", ..." if len(values) > SHOWN else "")
