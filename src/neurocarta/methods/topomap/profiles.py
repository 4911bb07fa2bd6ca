"""Neuron profiles: what describes each neuron before it is laid out.

The original method's NAP (neuron activation profile): for each group of inputs (a class by
default), the group's mean activation minus the mean over all groups. Each neuron is then the
vector of its group values. neurocarta takes the group means from the atlas's group
statistics, so profiles come from full and summary atlases alike, and any input-table column
can define the groups (label, pred, correct, a planted attribute, a user column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...errors import UserError


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


def atlas_profiles(atlas, layer: str, by: str = "label", snapshot: str | None = None, stat: str = "mean",
                   min_count: int = 1) -> Profiles:
    """NAP profiles of one layer of an atlas, grouped by input-table column ``by``.

    Groups with fewer than ``min_count`` inputs are dropped (a group with no inputs never
    appears). Conv layers use the channel's spatial ``stat`` (mean, as in the original).
    """
    stats = atlas.group_stats(layer, by, snapshot=snapshot, stat=stat)
    keep = stats.count.to_numpy() >= max(1, min_count)
    if not keep.any():
        raise UserError(f"no group of column {by!r} has {min_count} or more inputs")
    return nap(stats.mean[keep], stats.count[keep], layer=layer, by=by)
