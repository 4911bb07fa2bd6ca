"""Colours for categories (classes, concept groups, layers): one palette and one legend rule for
every figure and for the viewer, which receives both in its manifest.

The palette is colorcet's ``glasbey`` (Glasbey, van der Heijden, Toh and Gray 2007): each colour
is picked to lie as far as possible, in a perceptually uniform space, from every colour before
it, and black, white and greys are left out. Its first 30 colours stay at least 23 CIELAB units
apart (a hand-made list of 20 repeated its colours past 20 classes), and since none of them is
grey, the grey of "other" and "no group" never reads as a category. (``glasbey_category10``
starts with matplotlib's familiar ten, but the grey among them would collide with "other".)

The legend rule: a legend holds at most :data:`MAX_ENTRIES` entries. Up to that many
categories, every one is listed with its own colour, in its own order (a class's label code),
so class ``i`` has the same colour in every figure and in the viewer. Beyond it, the
``MAX_ENTRIES - 1`` largest keep distinct colours and the rest fold into one grey "other" entry
that says what it holds ("other: 4 classes, 312 inputs"): nothing is dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from ..store import schema

if TYPE_CHECKING:
    from ..store import Atlas

#: The most entries a legend lists: every category up to this many (a 21-class folder shows
#: all 21), else the largest ``MAX_ENTRIES - 1`` plus "other".
MAX_ENTRIES = 30
#: "other" and "no group": a neutral grey that no palette colour comes near (glasbey has no greys).
OTHER_COLOUR = "#9a9a9a"


@cache
def palette() -> tuple[str, ...]:
    """The categorical palette as ``#rrggbb`` strings (colorcet's ``glasbey``: 256 colours)."""
    import colorcet  # imports matplotlib: deferred so that importing render stays light

    return tuple(str(c).lower() for c in colorcet.glasbey)


def category_colour(i: int) -> str:
    """Colour of category number ``i`` (cycling past the palette's end); grey for ``i < 0``."""
    colours = palette()
    return OTHER_COLOUR if i < 0 else colours[i % len(colours)]


@dataclass(frozen=True)
class Legend:
    """Which colour each category gets, and what the legend says.

    ``entries``: ``(name, colour)`` of the categories shown, in their order. ``other``: the
    names folded into "other" and ``other_count`` the items they hold (``unit`` names them:
    inputs, neurons). ``noun``: what a category is called ("classes", "groups").
    """

    entries: tuple[tuple[str, str], ...]
    other: tuple[str, ...] = ()
    other_count: int = 0
    noun: str = "classes"
    unit: str = "inputs"
    _colours: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_colours", dict(self.entries))

    def colour(self, name: object) -> str:
        """The colour of ``name``: its own when shown, else the grey of "other"."""
        return self._colours.get(str(name), OTHER_COLOUR)

    @property
    def other_label(self) -> str:
        """"other: 4 classes, 312 inputs" (empty when nothing is folded)."""
        if not self.other:
            return ""
        return f"other: {len(self.other)} {self.noun}, {self.other_count:,} {self.unit}"  # always 2 or more

    def labels(self) -> list[tuple[str, str]]:
        """Every legend line as ``(text, colour)``: the shown categories, then "other"."""
        return list(self.entries) + ([(self.other_label, OTHER_COLOUR)] if self.other else [])

    def to_json(self) -> dict:
        """What the viewer draws: the shown entries and the "other" line (None without one)."""
        return {"entries": [{"name": n, "colour": c} for n, c in self.entries],
                "other": {"label": self.other_label, "colour": OTHER_COLOUR, "names": list(self.other),
                          "count": int(self.other_count)} if self.other else None}


def make_legend(names: Sequence[object], counts: Sequence[int] | None = None, max_entries: int = MAX_ENTRIES,
                noun: str = "classes", unit: str = "inputs") -> Legend:
    """The legend of ``names`` (categories in their display order, distinct), with ``counts``
    (items per category; needed only to rank when there are more than ``max_entries``)."""
    names = [str(n) for n in names]
    if len(names) <= max_entries:
        return Legend(tuple((n, category_colour(i)) for i, n in enumerate(names)), noun=noun, unit=unit)
    sizes = np.asarray(counts if counts is not None else np.zeros(len(names)), dtype=np.int64)
    # the largest first (ties: earlier first), then shown in their own order
    kept = np.sort(np.argsort(-sizes, kind="stable")[:max_entries - 1])
    folded = np.setdiff1d(np.arange(len(names)), kept)
    return Legend(tuple((names[i], category_colour(j)) for j, i in enumerate(kept)),
                  other=tuple(names[i] for i in folded), other_count=int(sizes[folded].sum()), noun=noun, unit=unit)


def natural_order(names: Sequence[object]) -> list[str]:
    """``names`` as strings, sorted with digit runs compared as numbers (``2`` before ``10``)."""
    def key(s: str) -> list:
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s)]

    return sorted({str(n) for n in names}, key=key)


def table_legend(table: pd.DataFrame, column: str = schema.LABEL, max_entries: int = MAX_ENTRIES,
                 unit: str = "inputs") -> Legend | None:
    """The legend of one category column of an input (or row) table, None when it is absent
    or empty. ``label`` lists classes by name (``label_name``) in label-code order, unknown
    labels (-1) left out; any other column lists its values in natural order."""
    if column not in table.columns:
        return None
    if column == schema.LABEL:
        known = table[pd.to_numeric(table[schema.LABEL], errors="coerce").fillna(-1) >= 0]
        codes = known[schema.LABEL].astype(np.int64)
        names = known[schema.LABEL_NAME].astype(str) if schema.LABEL_NAME in known else codes.astype(str)
        first = pd.DataFrame({"code": codes.to_numpy(), "name": names.to_numpy()}).drop_duplicates("name")
        order = first.sort_values("code", kind="stable")["name"].tolist()
        counts = names.value_counts()
    else:
        values = table[column].dropna().astype(str)
        order, counts = natural_order(values.unique()), values.value_counts()
    if not order:
        return None
    return make_legend(order, [int(counts.get(n, 0)) for n in order], max_entries=max_entries, unit=unit)


def class_legend(atlas: Atlas) -> Legend | None:
    """The class legend of an atlas (from its input table's labels): what the viewer and the
    Mapper figures colour classes by. None for an atlas without labels."""
    return table_legend(atlas.input_table, schema.LABEL)
