"""Selections of inputs written as text: ``colour=red``, ``label!=cat``, ``colour=red,blue``,
``brightness>0.5``, several joined by `` and ``.

The command line names groups this way (``neurocarta compare --where ... --vs ...``). A
selection applies to any table of the atlas's rows: the input table, or a layer's row table
(:meth:`Atlas.row_table`), where each token row carries its input's columns, so a selection of
inputs selects their token rows too.

Values are compared as the column's type: numbers as numbers, ``true``/``false`` for boolean
columns, text as text. A column may name its values another way through ``aliases`` (the
label column, an index, by class name: ``label=checker``). A row whose value is missing
matches no clause, ``!=`` included: an unknown colour is not known to be "not red".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError

#: The comparisons, longest first so that ``>=`` is not read as ``>`` then ``=5``.
OPERATORS = ("!=", "==", ">=", "<=", "=", ">", "<")
ORDERED = (">", ">=", "<", "<=")
_CLAUSE = re.compile(r"^\s*(?P<column>.+?)\s*(?P<op>" + "|".join(map(re.escape, OPERATORS)) + r")\s*(?P<value>.*?)\s*$")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}
#: A value list in an error names every value of a column up to this many.
SHOW_VALUES = 20


@dataclass(frozen=True)
class Clause:
    """One comparison: ``column op value`` (``=`` and ``!=`` may list several values: any of them)."""

    column: str
    op: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.column}{self.op}{','.join(self.values)}"


def parse_where(expressions: str | Sequence[str]) -> list[Clause]:
    """The clauses of one expression or several (all must hold): ``"colour=red and size>2"``.

    Raises :class:`UserError` naming the clause that is not ``column<op>value``.
    """
    texts = [expressions] if isinstance(expressions, str) else list(expressions)
    clauses: list[Clause] = []
    for text in texts:
        for piece in _pieces(text):
            clauses.append(_clause(piece))
    if not clauses:
        raise UserError("an empty selection; write it as column=value, e.g. colour=red")
    return clauses


def _pieces(text: str) -> list[str]:
    """``text`` split at `` and ``, except where the part after it has no comparison: that
    ``and`` belongs to a value (``texture=salt and pepper``)."""
    pieces: list[str] = []
    for part in _AND.split(text.strip()):
        if pieces and not any(op in part for op in OPERATORS):
            pieces[-1] = f"{pieces[-1]} and {part}"
        else:
            pieces.append(part)
    return [p for p in pieces if p.strip()]


def _clause(text: str) -> Clause:
    m = _CLAUSE.match(text)
    if m is None or not m["column"]:
        raise UserError(f"cannot read the selection {text!r}; write column=value, column!=value, column=a,b "
                        f"or a number comparison such as column>0.5")
    op = "=" if m["op"] == "==" else m["op"]
    values = tuple(_unquote(v) for v in m["value"].split(",")) if op in ("=", "!=") else (_unquote(m["value"]),)
    if not all(values):
        raise UserError(f"the selection {text!r} has no value after {m['op']!r}; e.g. {m['column']}{op}VALUE")
    return Clause(_unquote(m["column"]), op, values)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def describe(clauses: Sequence[Clause]) -> str:
    """The clauses as one expression, as a user would type it."""
    return " and ".join(map(str, clauses))


def where_mask(table: pd.DataFrame, clauses: Sequence[Clause],
               aliases: Mapping[str, Mapping[str, Any]] | None = None) -> np.ndarray:
    """A boolean mask over the rows of ``table``: the rows where every clause holds.

    ``aliases`` maps a column to other names of its values (``{"label": {"checker": 3}}``).
    An unknown column or value raises :class:`UserError` listing what the table has.
    """
    mask = np.ones(len(table), dtype=bool)
    for clause in clauses:
        mask &= _clause_mask(table, clause, (aliases or {}).get(clause.column, {}))
    return mask


def _clause_mask(table: pd.DataFrame, clause: Clause, alias: Mapping[str, Any]) -> np.ndarray:
    if clause.column not in table.columns:
        raise UserError(f"no column {clause.column!r} in {clause}; columns: {', '.join(map(str, table.columns))}")
    column = _comparable(table[clause.column])
    present = column.notna().to_numpy()
    if clause.op in ORDERED:
        if not _is_number(column):
            raise UserError(f"{clause}: column {clause.column!r} is not numeric; select its values with = or !=")
        bound = _typed(column, clause.values[0], clause, alias)
        compare = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}[clause.op]
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return present & compare(values, float(bound))
    wanted = [_typed(column, v, clause, alias) for v in clause.values]
    have = set(column.dropna().unique().tolist())
    missing = [v for v, w in zip(clause.values, wanted) if w not in have]
    if missing:
        raise UserError(f"{clause}: no row has {clause.column}={missing[0]}; {_values_of(column, alias)}")
    hit = column.isin(wanted).to_numpy(dtype=bool, na_value=False)
    return present & (hit if clause.op == "=" else ~hit)


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _typed(column: pd.Series, text: str, clause: Clause, alias: Mapping[str, Any]) -> Any:
    """``text`` as a value of ``column``'s type, else through ``alias`` (a class name for the label).

    The column's own reading wins: ``label=3`` is class index 3 even where a class is named
    "3" at another index (``label_name=3`` selects by name), so a number never changes meaning
    with the class names.
    """
    if pd.api.types.is_bool_dtype(column):
        low = text.lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise UserError(f"{clause}: column {clause.column!r} is true/false, not {text!r}")
    if _is_number(column):
        try:
            number = float(text)
        except ValueError:
            if text in alias:
                return alias[text]
            names = f" or a class name ({', '.join(list(alias)[:SHOW_VALUES])})" if alias else ""
            raise UserError(f"{clause}: column {clause.column!r} holds numbers{names}, not {text!r}") from None
        return int(number) if pd.api.types.is_integer_dtype(column) and number.is_integer() else number
    return alias.get(text, text)


def _comparable(column: pd.Series) -> pd.Series:
    """``column`` with one type to compare against: object columns of booleans become boolean,
    categoricals and other mixed objects their text (missing values stay missing)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    if column.dtype != object:
        return column
    present = column.dropna()
    if len(present) and present.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        return column.astype("boolean")
    if present.map(lambda v: isinstance(v, str)).all():
        return column
    return column.where(column.isna(), column.astype(str))


def _values_of(column: pd.Series, alias: Mapping[str, Any]) -> str:
    """What a column holds, for an error line: its values when few, else a count and examples."""
    names = {v: k for k, v in alias.items()}
    values = sorted(column.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    shown = [f"{v} ({names[v]})" if v in names else str(v) for v in values[:SHOW_VALUES]]
    if len(values) <= SHOW_VALUES:
        return f"{column.name} has: {', '.join(shown)}"
    if _is_number(column):
        return f"{column.name} has {len(values)} values from {values[0]} to {values[-1]}"
    return f"{column.name} has {len(values)} values, e.g. {', '.join(shown[:8])}"
