"""Statistics behind the maps: group differences that are not noise, and class separation.

- :func:`group_difference`: per neuron, the mean of group A minus the mean of group B, with
  a permutation test (full atlases: labels of the A and B inputs shuffled) or Welch's t-test
  (summary atlases, from the group statistics), and Benjamini-Hochberg FDR control, so a
  difference map can mark only the neurons whose difference is real. The whole map gets one
  statistic too (mean absolute standardised difference) with its own permutation p-value.
- :func:`rows_difference`: the same permutation test on two explicit sets of activation rows
  (any selection of inputs, e.g. ``neurocarta compare --where``); ``group_difference`` picks
  its rows from one grouping column and calls it.
- :func:`separation`: how much of each neuron's variance lies between groups (eta squared),
  averaged over neurons; the training use case shows it rising over snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...errors import UserError

if TYPE_CHECKING:
    from ...store import Atlas


@dataclass
class Difference:
    """Group A minus group B for every neuron of a layer."""

    a: list
    b: list
    n_a: int
    n_b: int
    values: np.ndarray  # mean_A - mean_B per neuron
    effect: np.ndarray  # standardised: difference / pooled std
    p: np.ndarray  # per-neuron p-values
    q: np.ndarray  # Benjamini-Hochberg adjusted
    significant: np.ndarray  # q <= fdr
    statistic: float  # mean |effect| over neurons
    statistic_p: float | None  # its permutation p-value (full atlases)
    test: str  # "permutation" or "welch"
    fdr: float

    def summary(self) -> dict:
        return {"a": [str(g) for g in self.a], "b": [str(g) for g in self.b], "n_a": self.n_a, "n_b": self.n_b,
                "statistic": self.statistic, "statistic_p": self.statistic_p, "test": self.test, "fdr": self.fdr,
                "n_significant": int(self.significant.sum()), "n_neurons": int(self.values.size)}


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values)."""
    p = np.asarray(p, dtype=np.float64)
    n = p.size
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def _as_list(groups) -> list:
    return list(groups) if isinstance(groups, (list, tuple, set, np.ndarray)) else [groups]


def _select(keys: np.ndarray, groups: list, by: str, which: str) -> np.ndarray:
    as_text = np.asarray([str(k) for k in keys], dtype=object)
    mask = np.isin(as_text, [str(g) for g in groups])
    if not mask.any():
        have = sorted({str(k) for k in keys})[:12]
        raise UserError(f"group {which} {groups} has no inputs in {by!r}; groups are: {', '.join(have)}")
    return np.flatnonzero(mask)


def _check_disjoint(rows_a: np.ndarray, rows_b: np.ndarray) -> None:
    if np.intersect1d(rows_a, rows_b).size:
        raise UserError("groups A and B share inputs; pick disjoint groups")


def _effect(diff: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    pooled = np.sqrt((xa.var(axis=0) * len(xa) + xb.var(axis=0) * len(xb)) / (len(xa) + len(xb)))
    return diff / np.where(pooled > 1e-12, pooled, 1.0)


def group_difference(atlas: Atlas, layer: str, by: str, a, b=None, snapshot: str | None = None, permutations: int = 1000,
                     fdr: float = 0.05, stat: str = "mean", seed: int = 0, max_rows: int = 20000) -> Difference:
    """Group(s) ``a`` minus group(s) ``b`` (default: every other input) of grouping ``by``."""
    a = _as_list(a)
    keys = atlas.group_keys(layer, by, snapshot)
    rows_a = _select(keys, a, by, "A")
    if b is None:
        rows_b = np.setdiff1d(np.arange(len(keys)), rows_a)
        b = ["rest"]
        if not rows_b.size:
            raise UserError(f"group B (every input not in {a}) is empty")
    else:
        b = _as_list(b)
        rows_b = _select(keys, b, by, "B")
    _check_disjoint(rows_a, rows_b)
    if atlas.mode == "summary":
        return _welch(atlas, layer, by, a, b, snapshot, stat, fdr)
    return rows_difference(atlas, layer, rows_a, rows_b, snapshot=snapshot, permutations=permutations, fdr=fdr,
                           stat=stat, seed=seed, max_rows=max_rows, names=(a, b))


def rows_difference(atlas: Atlas, layer: str, rows_a, rows_b, snapshot: str | None = None, permutations: int = 1000,
                    fdr: float = 0.05, stat: str = "mean", seed: int = 0, max_rows: int = 20000,
                    names=("A", "B")) -> Difference:
    """Activation rows ``rows_a`` minus rows ``rows_b`` of ``layer``, per neuron, with a permutation test.

    The rows index the layer's activation rows (inputs, or tokens on a text layer; see
    ``Atlas.row_table``), so any selection of inputs can be compared, not only the groups of
    one column. ``names`` label the two groups in the result. Needs per-input activations:
    a summary atlas keeps only group statistics, so it is compared by ``group_difference``.
    """
    if atlas.mode == "summary":
        raise UserError("this atlas keeps only group summaries, so arbitrary input sets cannot be compared; "
                        "compare its stored groups with group_difference, or re-extract with full activations")
    rows_a = np.unique(np.asarray(rows_a, dtype=np.int64))
    rows_b = np.unique(np.asarray(rows_b, dtype=np.int64))
    for which, rows in (("A", rows_a), ("B", rows_b)):
        if not rows.size:
            raise UserError(f"group {which} has no inputs; pick a selection that matches some")
    _check_disjoint(rows_a, rows_b)
    rng = np.random.default_rng(seed)
    # Bound memory on huge groups with a seeded subsample (the test stays valid on it).
    if len(rows_a) + len(rows_b) > max_rows:
        share = max_rows / (len(rows_a) + len(rows_b))
        rows_a = np.sort(rng.choice(rows_a, max(2, int(len(rows_a) * share)), replace=False))
        rows_b = np.sort(rng.choice(rows_b, max(2, int(len(rows_b) * share)), replace=False))
    rows = np.concatenate([rows_a, rows_b])
    order = np.argsort(rows)
    x = np.empty((len(rows), atlas.manifest.layer(layer).n_neurons), dtype=np.float64)
    x[order] = atlas.activations(layer, snapshot, stat=stat)[rows[order]]
    if not np.isfinite(x).all():
        raise UserError(f"the activations of layer {layer!r} hold NaN or Inf; re-extract the layer")
    na, nb = len(rows_a), len(rows_b)
    xa, xb = x[:na], x[na:]
    diff = xa.mean(axis=0) - xb.mean(axis=0)
    effect = _effect(diff, xa, xb)
    statistic = float(np.abs(effect).mean())
    # Permutations in blocks: each row of ``member`` marks which inputs play group A.
    exceed = np.zeros(x.shape[1])
    stat_exceed = 0
    centred = x - x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    total = centred.sum(axis=0)
    done = 0
    while done < permutations:
        m = min(200, permutations - done)
        member = np.zeros((m, len(rows)))
        for i in range(m):
            member[i, rng.permutation(len(rows))[:na]] = 1.0
        sum_a = member @ centred
        d = sum_a / na - (total - sum_a) / nb
        exceed += (np.abs(d) >= np.abs(diff) - 1e-12).sum(axis=0)
        # The map statistic under permutation (total-variance standardisation, a close and
        # cheap stand-in for the pooled std, used for the observed value below as well).
        stat_exceed += int((np.abs(d / sd).mean(axis=1) >= np.abs(diff / sd).mean() - 1e-12).sum())
        done += m
    p = (1.0 + exceed) / (1.0 + permutations)
    q = bh_adjust(p)
    return Difference(_as_list(names[0]), _as_list(names[1]), na, nb, diff, effect, p, q, q <= fdr, statistic,
                      (1.0 + stat_exceed) / (1.0 + permutations), "permutation", fdr)


def _welch(atlas: Atlas, layer, by, a, b, snapshot, stat, fdr) -> Difference:
    from scipy import stats as st

    gs = atlas.group_stats(layer, by, snapshot=snapshot, stat=stat)
    index = [str(g) for g in gs.count.index]

    def pooled(groups):
        if groups == ["rest"]:
            idx = [i for i, g in enumerate(index) if g not in {str(x) for x in a}]
        else:
            idx = [index.index(str(g)) for g in groups if str(g) in index]
        n = gs.count.to_numpy()[idx].astype(np.float64)
        mean = gs.mean.to_numpy()[idx]
        var = gs.std.to_numpy()[idx] ** 2
        tot = n.sum()
        m = (mean * n[:, None]).sum(axis=0) / tot
        v = ((var + mean ** 2) * n[:, None]).sum(axis=0) / tot - m ** 2
        return tot, m, np.maximum(v, 0.0)

    na, ma, va = pooled(a)
    nb, mb, vb = pooled(b)
    diff = ma - mb
    se = np.sqrt(va / max(na - 1, 1) + vb / max(nb - 1, 1))
    t = diff / np.where(se > 1e-12, se, np.inf)
    dof = max(min(na, nb) - 1, 1)
    p = 2 * st.t.sf(np.abs(t), dof)
    q = bh_adjust(p)
    pooled_sd = np.sqrt((va * na + vb * nb) / (na + nb))
    effect = diff / np.where(pooled_sd > 1e-12, pooled_sd, 1.0)
    return Difference(a, b, int(na), int(nb), diff, effect, p, q, q <= fdr, float(np.abs(effect).mean()), None,
                      "welch", fdr)


def separation(stats) -> float:
    """Mean over neurons of eta squared: between-group variance over total variance (0..1)."""
    n = stats.count.to_numpy(dtype=np.float64)
    keep = n > 0
    n, mean, std = n[keep], stats.mean.to_numpy()[keep], stats.std.to_numpy()[keep]
    grand = (mean * n[:, None]).sum(axis=0) / n.sum()
    between = (n[:, None] * (mean - grand) ** 2).sum(axis=0)
    within = (n[:, None] * std ** 2).sum(axis=0)
    total = between + within
    live = total > 1e-12
    if not live.any():
        return 0.0
    return float((between[live] / total[live]).mean())
