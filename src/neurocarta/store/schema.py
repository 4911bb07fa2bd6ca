"""The atlas's tables: their columns (names, dtypes), each column's role, and the one rule for
which columns are categorical.

Three tables describe the rows of an atlas (see layout.py for the files): the input table
(one row per input, written once from the data source), the outputs (per snapshot and input,
from the model's logits) and the tokens (one row per token row of sequence layers). A row
table (:meth:`Atlas.row_table`) joins them for one layer.

Every column has one role:

- ``label``: the class of an input: ``label`` (int), ``label_name``, and any column that says
  the same as the label both ways (the demo's drawn ``shape``): never a grouping *beside* it.
- ``attribute``: what describes an input (``colour``, ``background``, a user column, a
  token's ``category``): what maps are grouped by, concepts are measured on and shortcuts
  are looked for in.
- ``output``: what the model said (``pred``, ``pred_name``, ``confidence``, ``loss``, ``correct``).
- ``bookkeeping``: ids, offsets, the split, the source index, line numbers, flags and free
  text: never an attribute.

Known columns have their role here; any other column is an attribute, unless it is id-like
(a different value on every row: an id, a file name) or label-like, which :func:`column_roles`
infers. A user's declaration wins over both (:meth:`Atlas.declare_columns` keeps them in the
manifest). Explicit choices (``group_by``, ``colour_by``, a lens column) may name any column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from ..errors import UserError

# the roles; LABEL also names the class column, "label"
LABEL, ATTRIBUTE, OUTPUT, BOOKKEEPING = "label", "attribute", "output", "bookkeeping"
ROLES = (LABEL, ATTRIBUTE, OUTPUT, BOOKKEEPING)

# --- column names -------------------------------------------------------------------------
INPUT_ID = "input_id"
LABEL_NAME = "label_name"
SPLIT = "split"
SOURCE_INDEX = "source_index"
PATH = "path"
TEXT = "text"
LINE = "line"
RELABELLED = "relabelled"
SNAPSHOT = "snapshot"
PRED = "pred"
PRED_NAME = "pred_name"
CONFIDENCE = "confidence"
LOSS = "loss"
CORRECT = "correct"
ROW = "row"
POSITION = "position"
TOKEN_ID = "token_id"
TOKEN = "token"
TOKEN_START = "token_start"
TOKEN_END = "token_end"

#: Categorical columns hold at most this many distinct values by default ...
MAX_CATEGORIES = 50
#: ... and a float column at most this many (more is a measurement: a size, an angle).
MAX_FLOAT_CATEGORIES = 20
#: A column whose values and the label's predict each other this well (both ways) is label-like.
LABEL_LIKE_PURITY = 0.9
#: Summary atlases keep group statistics for grouping columns of up to this many values
#: (ImageNet's 1,000 classes included).
MAX_SUMMARY_GROUPS = 1000


@dataclass(frozen=True)
class Column:
    """A column the atlas itself writes: its name, table, dtype and role."""

    name: str
    table: str  # "inputs", "outputs" or "tokens"
    dtype: str
    role: str
    meaning: str


COLUMNS: dict[str, Column] = {c.name: c for c in (
    Column(INPUT_ID, "inputs", "int64", BOOKKEEPING, "0..n-1, the row of the input in every per-input array"),
    Column(LABEL, "inputs", "int64", LABEL, "the class index (-1 when unknown)"),
    Column(LABEL_NAME, "inputs", "str", LABEL, "the class name"),
    Column(SPLIT, "inputs", "str", BOOKKEEPING, "train or test, when the source has splits"),
    Column(SOURCE_INDEX, "inputs", "int64", BOOKKEEPING, "the input's index in the source before --limit"),
    Column(PATH, "inputs", "str", BOOKKEEPING, "the file of a folder: input"),
    Column(TEXT, "inputs", "str", BOOKKEEPING, "the text of a text input"),
    Column(LINE, "inputs", "int64", BOOKKEEPING, "the 1-based line of a text: input in its file"),
    Column(RELABELLED, "inputs", "bool", BOOKKEEPING, "a planted flag: the label was changed on purpose"),
    Column(SNAPSHOT, "outputs", "str", BOOKKEEPING, "the snapshot the outputs belong to"),
    Column(PRED, "outputs", "int64", OUTPUT, "the predicted class (argmax of the logits)"),
    Column(PRED_NAME, "outputs", "str", OUTPUT, "the predicted class's name: the model's class names, else "
           "the data's when its labels are the model's classes, else the index as text"),
    Column(CONFIDENCE, "outputs", "float32", OUTPUT, "the softmax probability of pred"),
    Column(LOSS, "outputs", "float32", OUTPUT, "the cross-entropy loss against label"),
    Column(CORRECT, "outputs", "bool", OUTPUT, "pred == label; NA where the label is unknown or the data's "
           "labels are not the model's classes (models/classes.py)"),
    Column(ROW, "tokens", "int64", BOOKKEEPING, "0..rows-1, the token's row in token-layer arrays"),
    Column(POSITION, "tokens", "int32", BOOKKEEPING, "the token's position in its sequence"),
    Column(TOKEN_ID, "tokens", "int64", BOOKKEEPING, "the tokenizer's id"),
    Column(TOKEN, "tokens", "str", BOOKKEEPING, "the token's text"),
    Column(TOKEN_START, "tokens", "int32", BOOKKEEPING, "the token's first character in the text"),
    Column(TOKEN_END, "tokens", "int32", BOOKKEEPING, "one past the token's last character in the text"),
)}


def check_roles(declared: Mapping[str, str] | None) -> dict[str, str]:
    """``declared`` as a plain dict, with every role checked (a :class:`UserError` names a bad one)."""
    out = {str(k): str(v) for k, v in (declared or {}).items()}
    for name, role in out.items():
        if role not in ROLES:
            raise UserError(f"column {name!r}: role {role!r} is not one of {', '.join(ROLES)}")
    return out


def column_roles(table: pd.DataFrame, declared: Mapping[str, str] | None = None) -> dict[str, str]:
    """The role of every column of ``table``, in table order.

    A declared role wins; then a known column's (:data:`COLUMNS`); any other column is
    ``bookkeeping`` when id-like (:func:`is_id_like`), ``label`` when label-like
    (:func:`is_label_like`), else ``attribute``. Declarations of columns the table lacks are
    ignored (one declaration serves the input table and the token rows alike).
    """
    declared = check_roles(declared)
    label = table[LABEL] if LABEL in table.columns else None
    roles = {}
    for name in map(str, table.columns):
        if name in declared:
            roles[name] = declared[name]
        elif name in COLUMNS:
            roles[name] = COLUMNS[name].role
        elif is_id_like(table[name]):
            roles[name] = BOOKKEEPING
        elif label is not None and is_label_like(table[name], label):
            roles[name] = LABEL
        else:
            roles[name] = ATTRIBUTE
    return roles


def is_id_like(values: pd.Series) -> bool:
    """A different value on every row of 2 or more (an id, a file name, a hash), in an integer
    or text column; a float unique per row is a measurement, not an id."""
    if len(values) < 2 or values.dtype.kind in "fcb":
        return False
    return bool(values.nunique(dropna=False) == len(values))


def is_label_like(values: pd.Series, label: pd.Series, purity: float = LABEL_LIKE_PURITY) -> bool:
    """Whether ``values`` says (almost) what the label says, both ways: each value mostly
    comes with one label and each label mostly with one value (the drawn shape of a
    relabelled set, a class name in other words). Its values cannot be a grouping *beside*
    the label, nor a shortcut to it."""
    both = pd.DataFrame({"v": values.astype(str).to_numpy(), "y": label.to_numpy()})
    if label.dtype.kind in "iu":
        both = both[both["y"] >= 0]  # -1: no label
    n = len(both)
    if both["y"].nunique() < 2:  # one class (or none): every column would "predict" it
        return False
    v_to_y = both.groupby(["v", "y"]).size().groupby(level=0).max().sum() / n
    y_to_v = both.groupby(["y", "v"]).size().groupby(level=0).max().sum() / n
    return bool(v_to_y >= purity and y_to_v >= purity)


def is_categorical(values: pd.Series, most_values: int = MAX_CATEGORIES) -> bool:
    """The one rule for a categorical column: 2 to ``most_values`` distinct values (missing
    values aside), and for floats at most :data:`MAX_FLOAT_CATEGORIES` (a float column with
    more is a measurement). Booleans, integers, text and pandas categories qualify alike."""
    n = values.nunique(dropna=True)
    if values.dtype.kind in "fc" and n > MAX_FLOAT_CATEGORIES:
        return False
    return 2 <= n <= most_values


def categorical_columns(table: pd.DataFrame, include: Iterable[str] = (ATTRIBUTE,),
                        roles: Mapping[str, str] | None = None, most_values: int = MAX_CATEGORIES) -> list[str]:
    """The categorical columns of ``table`` whose role is one of ``include``, in table order.

    ``roles``: the columns' roles (e.g. :attr:`Atlas.column_roles`, which include what the
    user declared); when missing or silent on a column, :func:`column_roles` infers it.
    """
    wanted = set(include)
    unknown = wanted - set(ROLES)
    if unknown:
        raise ValueError(f"include holds unknown roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
    roles = dict(roles or {})
    missing = [c for c in map(str, table.columns) if c not in roles]
    if missing:  # inferred with the label beside them, for the label-like test
        with_label = missing + [LABEL] if LABEL in table.columns and LABEL not in missing else missing
        inferred = column_roles(table[with_label])
        roles.update({c: inferred[c] for c in missing})
    return [c for c in map(str, table.columns)
            if roles[c] in wanted and is_categorical(table[c], most_values)]


def grouping_columns(table: pd.DataFrame, roles: Mapping[str, str] | None = None,
                     most_values: int = MAX_CATEGORIES) -> list[str]:
    """What maps group by and concepts are measured on by default: the class ``label`` and
    every categorical attribute, in table order (label-like columns repeat the label, so only
    ``label`` itself stands for the class). ``roles`` as in :func:`categorical_columns`."""
    attributes = set(categorical_columns(table, include=(ATTRIBUTE,), roles=roles, most_values=most_values))
    return [c for c in map(str, table.columns)
            if c in attributes or (c == LABEL and is_categorical(table[c], most_values))]
