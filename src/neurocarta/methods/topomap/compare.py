"""Two groups of inputs, named by selections, compared neuron by neuron: ``neurocarta compare``.

``compare(atlas, "head.relu", where="colour=red", vs="colour!=red", within="label=checker")``
selects the layer's activation rows of each group (see :mod:`neurocarta.store.where`; on a
token layer an input's selection takes all its token rows), runs the permutation test of
:func:`~.stats.rows_difference` with FDR control, and keeps what is needed to report it: the
groups as typed, their sizes, the per-neuron table. The figure paints the difference on the
layer's stored topomap layout (:func:`stored_layout`).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ...errors import UserError
from ...store import schema
from ...store.layout import node
from ...store.where import describe, parse_where, where_mask
from .result import KIND, TopoMapResult
from .stats import Difference, rows_difference

if TYPE_CHECKING:
    from ...store import Atlas

Selection = str | Sequence[str]


@dataclass
class Group:
    """One side of a comparison: its selection as typed and how many inputs and rows it holds."""

    where: str
    n_inputs: int
    n_rows: int

    def summary(self) -> dict[str, Any]:
        return {"where": self.where, "n_inputs": self.n_inputs, "n_rows": self.n_rows}


@dataclass
class Comparison:
    """Group A minus group B on every neuron of one layer, with the test's results."""

    layer: str
    snapshot: str
    a: Group
    b: Group
    within: str | None
    permutations: int
    difference: Difference

    @property
    def subsampled(self) -> bool:
        """Whether the test ran on a seeded subsample of the selected rows (too many to hold)."""
        return self.difference.n_a + self.difference.n_b < self.a.n_rows + self.b.n_rows

    def figure_stem(self) -> str:
        """A file name for the figure: the layer and both selections, made safe for any filesystem."""
        groups = re.sub(r"[^A-Za-z0-9.,=_-]+", "_", f"{self.a.where}_vs_{self.b.where}").strip("_")[:120]
        return f"{node(self.layer)}@{groups}"

    def neurons(self) -> pd.DataFrame:
        """One row per neuron, strongest standardised effect first."""
        d = self.difference
        table = pd.DataFrame({"neuron": np.arange(d.values.size), "difference": d.values, "effect": d.effect,
                              "p": d.p, "q": d.q, "significant": d.significant})
        order = np.lexsort((table["neuron"].to_numpy(), -np.abs(d.effect)))
        return table.iloc[order].reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """Everything as plain JSON types: the groups, the test and the neurons table."""
        d = self.difference
        return {"layer": self.layer, "snapshot": self.snapshot,
                # n_tested: the rows the test ran on (a seeded subsample beyond rows_difference's max_rows)
                "groups": {"a": {**self.a.summary(), "n_tested": d.n_a}, "b": {**self.b.summary(), "n_tested": d.n_b}},
                "within": self.within,
                "test": d.test, "permutations": self.permutations, "fdr": d.fdr,
                "statistic": d.statistic, "statistic_p": d.statistic_p,
                "n_neurons": int(d.values.size), "n_significant": int(d.significant.sum()),
                "neurons": [{"neuron": int(r.neuron), "difference": float(r.difference), "effect": float(r.effect),
                             "p": float(r.p), "q": float(r.q), "significant": bool(r.significant)}
                            for r in self.neurons().itertuples()]}


def value_aliases(atlas: Atlas) -> dict[str, dict[str, int]]:
    """Class names as values of the index columns: ``label=checker``, ``pred=checker``."""
    aliases: dict[str, dict[str, int]] = {}
    if atlas.class_names:
        aliases[schema.LABEL] = {name: i for i, name in enumerate(atlas.class_names)}
    predicted = atlas.prediction_names()
    if predicted:
        aliases[schema.PRED] = {name: i for i, name in predicted.items()}
    return aliases


def compare(atlas: Atlas, layer: str, where: Selection, vs: Selection | None = None, within: Selection | None = None,
            snapshot: str | None = None, permutations: int = 1000, fdr: float = 0.05, stat: str = "mean",
            seed: int = 0, max_rows: int = 20000) -> Comparison:
    """The inputs selected by ``where`` (group A) against those selected by ``vs`` (group B;
    default: every other input), both inside ``within`` when given, on ``layer``.

    Raises :class:`UserError` with one line for an unknown column or value, an empty group,
    or groups that share inputs.
    """
    if permutations < 1:
        raise UserError(f"permutations must be 1 or more, got {permutations}")
    if not 0 < fdr < 1:
        raise UserError(f"the FDR level must be between 0 and 1, got {fdr}")
    n_neurons = atlas.manifest.layer(layer).n_neurons  # an unknown layer fails here, naming the layer
    _warn_if_too_few(permutations, n_neurons, fdr)
    snap = atlas.snapshot_name(snapshot)
    table = atlas.row_table(layer, snap)
    aliases = value_aliases(atlas)
    inside = np.ones(len(table), dtype=bool)
    within_text = None
    if within:
        clauses = parse_where(within)
        within_text = describe(clauses)
        inside = where_mask(table, clauses, aliases)
        if not inside.any():
            raise UserError(f"--within {within_text} matches no inputs")
    a_clauses = parse_where(where)
    in_a = inside & where_mask(table, a_clauses, aliases)
    if vs:
        b_clauses = parse_where(vs)
        b_text = describe(b_clauses)
        in_b = inside & where_mask(table, b_clauses, aliases)
    else:
        b_text = f"not ({describe(a_clauses)})"
        in_b = inside & ~in_a
    a_text = describe(a_clauses)
    scope = f" within {within_text}" if within_text else ""
    for name, text, mask in (("A", a_text, in_a), ("B", b_text, in_b)):
        if not mask.any():
            raise UserError(f"group {name} ({text}) has no inputs{scope}; choose a selection that matches some")
    shared = in_a & in_b
    if shared.any():
        raise UserError(f"groups A ({a_text}) and B ({b_text}) share {_count_inputs(table, shared)} input(s); "
                        f"make --vs exclude what --where selects")
    diff = rows_difference(atlas, layer, np.flatnonzero(in_a), np.flatnonzero(in_b), snapshot=snap,
                           permutations=permutations, fdr=fdr, stat=stat, seed=seed, max_rows=max_rows,
                           names=(a_text, b_text))
    return Comparison(layer, snap, _group(table, a_text, in_a), _group(table, b_text, in_b), within_text,
                      permutations, diff)


def _warn_if_too_few(permutations: int, n_neurons: int, fdr: float) -> None:
    """Say so when the permutation p-values are too coarse for any lone neuron to pass the FDR:
    the smallest p is 1/(permutations+1), and Benjamini-Hochberg multiplies it by the number of
    neurons (a silent "0 significant" would read as "no difference")."""
    if n_neurons / (permutations + 1) > fdr:
        needed = math.ceil(n_neurons / fdr)
        warnings.warn(f"with {permutations} permutations the smallest p-value is 1/{permutations + 1}, too coarse "
                      f"for a single neuron of {n_neurons} to pass FDR {fdr:g}; use --permutations {needed} or more")


def _count_inputs(table: pd.DataFrame, mask: np.ndarray) -> int:
    """How many inputs the selected rows belong to (token rows of one input count once)."""
    if schema.INPUT_ID in table.columns:
        return int(table.loc[mask, schema.INPUT_ID].nunique())
    return int(mask.sum())


def _group(table: pd.DataFrame, text: str, mask: np.ndarray) -> Group:
    return Group(text, _count_inputs(table, mask), int(mask.sum()))


def stored_layout(atlas: Atlas, layer: str) -> TopoMapResult | None:
    """The layer's stored topographic map, for its layout (the one grouped by label when there
    are several), or None when ``neurocarta topomap`` has not mapped the layer."""
    prefix = f"{layer}@"
    names = [n for n in atlas.maps(KIND) if n.startswith(prefix)]
    if not names:
        return None
    preferred = f"{prefix}{schema.LABEL}"
    name = preferred if preferred in names else sorted(names)[0]
    return TopoMapResult.load(atlas, layer, name[len(prefix):])
