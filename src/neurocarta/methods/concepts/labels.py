"""The short text that names a concept group (the ``describe`` column): an attribute only when
the group holds it beyond chance, else its top classes.

A group's coherence on an attribute (coherence.py: the share of its members' pooled exemplars
that hold the most common value) is always high for small groups and for unbalanced
attributes, so a share alone says little: a group whose exemplars are 10% "astronaut" is not
an astronaut detector when 10% of all exemplars are astronauts. The rule:

- For every attribute column, the group's coherence is compared with the coherence of random
  groups of the same size, drawn from the same candidates (the live neurons of its layer).
- The attribute may name the group only when both hold:

  1. *significance*: its coherence exceeds the (1 - ALPHA/m) quantile of the random groups',
     m being the number of attributes tried: a one-sided permutation test at level
     ALPHA = 0.05 with a Bonferroni correction over the attributes, so a group of random
     neurons gets an attribute name in at most about 5% of cases, however many columns the
     data has;
  2. *size*: it beats the random groups' mean by at least a small effect, Cohen's h >= 0.2
     (h = 2 asin(sqrt(p)) - 2 asin(sqrt(q)), Cohen's convention for a small difference of
     proportions). Large groups make tiny differences significant (61 neurons: 0.77 against
     0.76), which are true but name nothing.

  A test and a conventional effect size rather than a fixed margin, because chance coherence
  moves with the group size, k, the number of values and their balance (random groups score
  about 0.55 on a balanced two-valued attribute, 0.1 on 21 balanced classes); a margin tuned
  on the demo would not follow.
- Among the attributes that pass, the one with the largest effect names the group, with its
  coherence and the random groups' mean: ``colour=cyan (0.95 vs 0.57 random)``.
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
#: The smallest effect that names a group: Cohen's h of a "small" difference of proportions.
MIN_EFFECT = 0.2
#: How many classes the fallback name lists.
TOP_CLASSES = 2
NO_NAME = "no attribute beyond chance"


def draws_for(n_attributes: int, alpha: float = ALPHA) -> int:
    """Random groups per size for a test at ``alpha / n_attributes``."""
    return max(MIN_DRAWS, math.ceil(4 * max(1, n_attributes) / alpha) - 1)


def cohen_h(p: float | np.ndarray, q: float | np.ndarray) -> float | np.ndarray:
    """Cohen's h, the effect size of proportion ``p`` over ``q`` (arcsine-transformed difference)."""
    return 2 * np.arcsin(np.sqrt(p)) - 2 * np.arcsin(np.sqrt(q))


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
    # per group: (effect size, name) of the best attribute that passes so far
    best: list[tuple[float, str]] = [(-np.inf, "")] * len(members)
    for c in cols:
        code, uniques = codes[c]
        level, chance = _null(members, pools, indptr, indices, values[c], draws, q, seed)
        for g, rows in enumerate(pooled):
            v = code[rows]
            v = v[v >= 0]
            if not len(v) or not np.isfinite(level[g]):
                continue
            counts = np.bincount(v)
            share = counts.max() / len(v)
            effect = float(cohen_h(share, chance[g]))
            if share > level[g] and effect >= MIN_EFFECT and effect > best[g][0]:
                name = "class" if c == schema.LABEL else c
                best[g] = (effect, f"{name}={uniques[int(counts.argmax())]} ({share:.2f} vs {chance[g]:.2f} random)")
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


def _null(members: list[np.ndarray], pools: dict, indptr: np.ndarray, indices: np.ndarray, values: pd.Series,
          draws: int, q: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group, from same-size random groups of its pool: the ``q`` quantile of their
    coherence and its mean (NaN where no random group has a known value)."""
    level, chance = np.full(len(members), np.nan), np.full(len(members), np.nan)
    for candidates, groups in pools.values():
        sizes = np.array([len(members[g]) for g in groups], dtype=np.int64)
        unique, which = np.unique(np.minimum(sizes, len(candidates)), return_inverse=True)
        null = random_coherence_draws(unique, indptr, indices, values, draws=draws, seed=seed, candidates=candidates)
        finite = np.isfinite(null).any(axis=0)
        qs, means = np.full(unique.size, np.nan), np.full(unique.size, np.nan)
        if finite.any():
            qs[finite] = np.nanquantile(null[:, finite], q, axis=0, method="higher")
            means[finite] = np.nanmean(null[:, finite], axis=0)
        level[np.asarray(groups)], chance[np.asarray(groups)] = qs[which], means[which]
    return level, chance


def _top_classes(rows: np.ndarray, classes: pd.Series | None) -> str:
    """"top classes: star 41%, circle 22%": the most common classes of the pooled exemplar ``rows``."""
    if classes is None:
        return NO_NAME
    shares = classes.iloc[rows].value_counts(normalize=True, dropna=True)
    if not len(shares):
        return NO_NAME
    top = ", ".join(f"{name} {share:.0%}" for name, share in shares.head(TOP_CLASSES).items())
    return f"top classes: {top}"
