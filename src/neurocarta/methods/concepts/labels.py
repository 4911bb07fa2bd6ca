"""The short text that names a concept group (the ``describe`` column): an attribute only when
the group holds it beyond chance, else its top classes.

A group's coherence on an attribute (coherence.py: the share of its members' pooled exemplars
that hold the most common value) is always high for small groups and for unbalanced
attributes, so a share alone says little: a group whose exemplars are 10% "astronaut" is not
an astronaut detector when 10% of all exemplars are astronauts. The rule:

- For every attribute column, the group's coherence is compared with the coherence of random
  groups of the same size, drawn from the same candidates (the live neurons of its layer).
- The attribute may name the group only when its coherence *exceeds the (1 - ALPHA/m)
  quantile* of those random groups', m being the number of attributes tried. That is a
  one-sided permutation test at level ALPHA = 0.05 with a Bonferroni correction over the
  attributes, so a group of random neurons gets an attribute name in at most about 5% of
  cases, however many columns the data has. A test and not a fixed margin, because chance
  coherence moves with the group size, k, the number of values and their balance (random
  groups score about 0.55 on a balanced two-valued attribute and 0.1 on 21 balanced classes);
  the quantile of same-size random groups follows all of them, a number tuned on the demo
  would not.
- Among the attributes that pass, the one furthest above its threshold names the group, with
  both numbers: ``colour=cyan (0.95 vs 0.57 random)``, 0.57 being the random groups' quantile
  it had to exceed.
- A group that passes on none is named by its exemplars' most common classes:
  ``top classes: star 41%, circle 22%`` (or, without labels, ``no attribute beyond chance``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ...store import schema
from .coherence import random_coherence_draws

#: The test's level: the chance that a random group gets an attribute name.
ALPHA = 0.05
#: Random groups per group size: at least this many, more when many attributes are tried, so
#: the (1 - ALPHA/m) quantile stays an estimate from about 4 draws above it, not the maximum.
MIN_DRAWS = 199
#: How many classes the fallback name lists.
TOP_CLASSES = 2
NO_NAME = "no attribute beyond chance"


def draws_for(n_attributes: int, alpha: float = ALPHA) -> int:
    """Random groups per size for a test at ``alpha / n_attributes``."""
    return max(MIN_DRAWS, math.ceil(4 * max(1, n_attributes) / alpha) - 1)


def _display_values(table: pd.DataFrame, column: str) -> pd.Series:
    """The values to test and show: class names for ``label`` (unknown labels, -1, missing)."""
    if column != schema.LABEL:
        return table[column]
    known = pd.to_numeric(table[schema.LABEL], errors="coerce").fillna(-1).to_numpy() >= 0
    names = table[schema.LABEL_NAME] if schema.LABEL_NAME in table else table[schema.LABEL].astype(str)
    return names.where(known)


def _pooled(members: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The group's exemplar rows as a multiset (a row in three members' top-k counts three times)."""
    if not len(members):
        return np.zeros(0, np.int64)
    return np.concatenate([indices[indptr[i]:indptr[i + 1]] for i in members])


def describe_clusters(members: list[np.ndarray], indptr: np.ndarray, indices: np.ndarray, table: pd.DataFrame,
                      columns: list[str] | None = None, pool: np.ndarray | None = None,
                      seed: int = 0) -> list[str]:
    """The name of each group (see the module docstring for the rule).

    ``members``: neuron indices per group; ``indptr``/``indices``: every neuron's exemplar rows
    (rows of ``table``); ``columns``: the attributes to try (default: the table's grouping
    columns, the label included). ``pool``: per neuron, the key of the candidates its group's
    random groups are drawn from (its layer), None for a neuron never drawn (silent); default:
    one pool of every neuron with exemplars."""
    cols = columns if columns is not None else schema.grouping_columns(table)
    values = {c: _display_values(table, c) for c in cols}
    codes = {c: pd.factorize(v, use_na_sentinel=True) for c, v in values.items()}
    pools = _pools(members, indptr, pool)
    draws = draws_for(len(cols))
    q = 1.0 - ALPHA / max(1, len(cols))
    pooled = [_pooled(m, indptr, indices) for m in members]
    # per group: (margin over its threshold, name) of the best attribute that passes so far
    best: list[tuple[float, str]] = [(-np.inf, "")] * len(members)
    for c in cols:
        code, uniques = codes[c]
        thresholds = _thresholds(members, pools, indptr, indices, values[c], draws, q, seed)
        for g, rows in enumerate(pooled):
            v = code[rows]
            v = v[v >= 0]
            if not len(v) or not np.isfinite(thresholds[g]):
                continue
            counts = np.bincount(v)
            share = counts.max() / len(v)
            margin = share - thresholds[g]
            if margin > 0 and margin > best[g][0]:
                name = "class" if c == schema.LABEL else c
                best[g] = (margin, f"{name}={uniques[int(counts.argmax())]} ({share:.2f} vs {thresholds[g]:.2f} random)")
    classes = _display_values(table, schema.LABEL) if schema.LABEL in table else None
    return [text if text else _top_classes(rows, classes) for rows, (_, text) in zip(pooled, best)]


def _pools(members: list[np.ndarray], indptr: np.ndarray, pool: np.ndarray | None) -> dict:
    """Pool key -> (candidate neurons, indices of the groups drawn from it)."""
    keys = np.asarray(pool, dtype=object) if pool is not None else np.where(np.diff(indptr) > 0, "all", None)
    out: dict = {}
    for g, m in enumerate(members):
        key = keys[m[0]] if len(m) else None
        if key is None:
            continue
        if key not in out:
            out[key] = (np.flatnonzero(keys == key), [])
        out[key][1].append(g)
    return out


def _thresholds(members: list[np.ndarray], pools: dict, indptr: np.ndarray, indices: np.ndarray,
                values: pd.Series, draws: int, q: float, seed: int) -> np.ndarray:
    """Per group, the ``q`` quantile of the coherence of same-size random groups from its pool
    (NaN where no random group has a known value)."""
    out = np.full(len(members), np.nan)
    for candidates, groups in pools.values():
        sizes = np.array([len(members[g]) for g in groups], dtype=np.int64)
        unique, which = np.unique(np.minimum(sizes, len(candidates)), return_inverse=True)
        null = random_coherence_draws(unique, indptr, indices, values, draws=draws, seed=seed, candidates=candidates)
        finite = np.isfinite(null).any(axis=0)
        level = np.full(unique.size, np.nan)
        if finite.any():
            level[finite] = np.nanquantile(null[:, finite], q, axis=0, method="higher")
        out[np.asarray(groups)] = level[which]
    return out


def _top_classes(rows: np.ndarray, classes: pd.Series | None) -> str:
    """"top classes: star 41%, circle 22%": the most common classes of the pooled exemplar ``rows``."""
    if classes is None:
        return NO_NAME
    shares = classes.iloc[rows].value_counts(normalize=True, dropna=True)
    if not len(shares):
        return NO_NAME
    top = ", ".join(f"{name} {share:.0%}" for name, share in shares.head(TOP_CLASSES).items())
    return f"top classes: {top}"
