"""Neuron profiles: what describes each neuron before it is laid out.

The original method's NAP (neuron activation profile): for each group of inputs (a class by
default), the group's mean activation minus the mean over all groups. Each neuron is then the
vector of its group values. neurocarta takes the group means from the atlas's group
statistics, so profiles come from full and summary atlases alike, and any input-table column
can define the groups (label, pred, correct, a planted attribute, a user column).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...errors import UserError

if TYPE_CHECKING:
    from ...store import Atlas


@dataclass
class Profiles:
    """A (neurons x groups) profile matrix with its group labels and sizes."""

    values: np.ndarray  # float64 (n_neurons, n_groups)
    groups: list
    counts: np.ndarray  # inputs per group
    layer: str = ""
    by: str = ""

    @property
    def n_neurons(self) -> int:
        return self.values.shape[0]


def nap(group_means: pd.DataFrame, counts: pd.Series | np.ndarray | None = None, layer: str = "",
        by: str = "") -> Profiles:
    """NAP profiles from per-group means (groups x neurons): each group minus the mean of groups.

    The mean over groups is unweighted, as in the original, so a large class does not set the
    zero point for the others.
    """
    means = group_means.to_numpy(dtype=np.float64)
    if means.shape[0] < 2:
        raise UserError(f"profiles need at least 2 groups of inputs{f' in column {by!r}' if by else ''}, "
                        f"found {means.shape[0]}; group by a column with more values")
    if not np.isfinite(means).all():
        raise UserError(f"the group means of layer {layer!r} hold NaN or Inf; re-extract the layer")
    counts_arr = np.asarray(counts if counts is not None else np.ones(len(means)), dtype=np.int64)
    return Profiles(values=(means - means.mean(axis=0, keepdims=True)).T, groups=list(group_means.index),
                    counts=counts_arr, layer=layer, by=by)


def atlas_profiles(atlas: Atlas, layer: str, by: str = "label", snapshot: str | None = None, stat: str = "mean",
                   min_count: int = 1) -> Profiles:
    """NAP profiles of one layer of an atlas, grouped by input-table column ``by``.

    Groups with fewer than ``min_count`` inputs are dropped (a group with no inputs never
    appears). Conv layers use the channel's spatial ``stat`` (mean, as in the original).
    """
    return profiles_from_stats(atlas.group_stats(layer, by, snapshot=snapshot, stat=stat), "nap", min_count, layer)


def profiles_from_stats(stats, kind: str = "nap", min_count: int = 1, layer: str = "") -> Profiles:
    """NAP or contrastive profiles from a layer's group statistics, groups with fewer than
    ``min_count`` inputs left out."""
    by = stats.column
    keep = stats.count.to_numpy() >= max(1, min_count)
    if not keep.any():
        raise UserError(f"no group of column {by!r} has {min_count} or more inputs")
    if kind == "nap":
        return nap(stats.mean[keep], stats.count[keep], layer=layer, by=by)
    kept = type(stats)(by, stats.count[keep], stats.mean[keep], stats.std[keep])
    p = contrastive(kept)
    p.layer = layer
    return p


def contrastive(stats) -> Profiles:
    """Contrastive profiles: each group against all other inputs (one vs rest).

    A neuron's value for group g is (mean_g - mean_rest) / pooled std, a standardised effect
    size, so a neuron that fires for g and nothing else stands out even when the groups are
    unbalanced. Computed from group statistics (count, mean, std), so summary atlases work.
    """
    count = stats.count.to_numpy(dtype=np.float64)
    keep = count > 0
    if keep.sum() < 2:
        raise UserError(f"contrastive profiles need at least 2 non-empty groups in column {stats.column!r}")
    count = count[keep]
    mean = stats.mean.to_numpy(dtype=np.float64)[keep]
    std = stats.std.to_numpy(dtype=np.float64)[keep]
    total = count.sum()
    s = mean * count[:, None]
    ss = (std ** 2 + mean ** 2) * count[:, None]
    n_rest = np.maximum(total - count, 1.0)[:, None]
    mean_rest = (s.sum(axis=0) - s) / n_rest
    var_rest = np.maximum((ss.sum(axis=0) - ss) / n_rest - mean_rest ** 2, 0.0)
    pooled = np.sqrt((std ** 2 * count[:, None] + var_rest * n_rest) / total)
    values = (mean - mean_rest) / np.where(pooled > 1e-12, pooled, 1.0)
    if not np.isfinite(values).all():
        raise UserError("the group statistics hold NaN or Inf; re-extract the layer")
    groups = [g for g, k in zip(stats.mean.index, keep) if k]
    return Profiles(values=values.T, groups=groups, counts=count.astype(np.int64), by=stats.column)


def sample_rows(table: pd.DataFrame, n: int, balanced_by: str | None = None, seed: int = 0) -> np.ndarray:
    """Seeded row indices of ``table``: ``n`` at random, or spread evenly over the values of
    column ``balanced_by`` (as many per value as ``n`` allows)."""
    rng = np.random.default_rng(seed)
    if n < 2:
        raise UserError(f"raw-sample profiles need at least 2 samples, got {n}")
    if balanced_by is None:
        return np.sort(rng.choice(len(table), size=min(n, len(table)), replace=False))
    if balanced_by not in table.columns:
        raise UserError(f"no column {balanced_by!r} to balance the sample by; columns: {', '.join(map(str, table.columns))}")
    codes, uniques = pd.factorize(table[balanced_by], use_na_sentinel=False)
    per = max(1, n // len(uniques))
    picked = []
    for c in range(len(uniques)):
        rows = np.flatnonzero(codes == c)
        picked.append(rng.choice(rows, size=min(per, len(rows)), replace=False))
    return np.sort(np.concatenate(picked))


def raw_profiles(atlas: Atlas, layer: str, n: int = 1000, balanced_by: str | None = None, snapshot: str | None = None,
                 stat: str = "mean", seed: int = 0) -> Profiles:
    """The original's unsupervised variant: each neuron described by its raw activations on
    ``n`` inputs, drawn at random or balanced over a column (e.g. ``label``).

    Full atlases read the chosen rows; summary atlases draw from their stored row sample.
    """
    table = atlas.row_table(layer, snapshot)
    if atlas.mode == "summary":
        rows, values = atlas.sample(layer, snapshot, stat=stat)
        picked = sample_rows(table.iloc[rows].reset_index(drop=True), n, balanced_by, seed)
        x, ids = values[picked], rows[picked]
    else:
        ids = sample_rows(table, n, balanced_by, seed)
        x = atlas.activations(layer, snapshot, stat=stat)[ids]
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise UserError(f"the activations of layer {layer!r} hold NaN or Inf; re-extract the layer")
    return Profiles(values=x.T, groups=[int(i) for i in ids], counts=np.ones(len(ids), dtype=np.int64), layer=layer,
                    by=f"sample:{balanced_by or 'random'}")
