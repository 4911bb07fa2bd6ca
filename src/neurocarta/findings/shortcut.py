"""The shortcut rule: attribute values that push the model toward one class.

What is tested. For every attribute A (a categorical column with the role ``attribute``,
store/schema.py; a numeric attribute with many distinct values is binned into
``SHORTCUT_BINS`` quantile bins, "brightness 0.71–0.93"), every value v of A and every class
Y, two contrasts of v against *all* the other values of A, each conditioned on the class:

- ``recognition``: among inputs labelled Y, how often they are predicted Y with v against
  without v;
- ``attraction``: among inputs of the other labels, how often they are predicted Y with v
  against without v.

Both are stratified: by ``split`` when the table has one, and by the true label for
attraction, so a value that is merely more common in one class, or in the test split, cannot
fire. The old rule compared v with *each* other value and kept the weakest comparison; one
harmless neighbour (red against magenta, 1.00 against 0.97) then hid a real shortcut (red
against everything else, 1.00 against 0.49).

The test. One-sided (v raises the share predicted Y) exact conditional test of the
stratified 2x2 tables: given each stratum's margins (how many inputs have v, how many are
predicted Y), the count predicted Y with v is hypergeometric under "no association", and the
p-value is the upper tail of the sum of these independent hypergeometrics, computed exactly
by convolving their distributions. It is the exact form of the Cochran-Mantel-Haenszel test:
exact because strata are often small (a class's inputs with one colour in one split), where a
normal approximation misstates tiny p-values, and conditional on the margins, so class
balance and the model's accuracy per stratum are taken as given. Every (attribute, value,
class, contrast) test counts in one Benjamini-Hochberg correction (q <= ``SHORTCUT_FDR``).

The effect floor. A significant difference is a shortcut only when it is large: the
stratified difference of shares (Mantel-Haenszel weights, in the split where it is largest)
must reach ``SHORTCUT_MIN_DIFFERENCE``. A value that makes every class easier (a clean
background) raises every class's accuracy, which is no push toward one class, so the
recognition effect counted is the class's gain beyond the mean gain of the other classes.
A test below the floor gets p = 1 without being computed: a larger p-value is still a valid
one, the test still counts in the correction, and it could not become a finding anyway.

What the training data says. Outputs alone cannot tell a shortcut from a value that makes
one class look different (small crosses are hard to recognise; so large ones are "recognised
more"): both raise the class's recognition with the value. A shortcut is learned from the
training data, where the value comes with the class more often than with the others. So
when the table holds a training split (a ``split`` value starting with "train"), a test
counts only where the value is over-represented among the class's training inputs: at least
``SHORTCUT_TRAINING_LIFT`` times as common as among the other classes' (a value tied to one
class is a little more common in every other class too: patch False among the digits where a
patch marked the 7s, 100% against 89%, which is no reason to learn "no patch means 9"), by at
least a small effect (Cohen's h >= 0.2, the convention concept names use) and beyond chance
(one-sided exact test, p <= ``SHORTCUT_TRAINING_P``; a necessary condition, not a discovery,
so it is not corrected for multiplicity). Without a training split this check is not
possible, and the finding rests on the outputs alone.

One cause, one finding. Significant tests are grouped by (attribute, value); the strongest
test of a group names the class. The other classes that lose accuracy under the same value
are its ``collateral`` (evidence, never findings of their own), and other classes the value
also pushes toward are listed in ``also_toward``. Within one attribute the strongest value
is taken first; a further value counts as a cause of its own only when its effect survives
with each earlier cause's inputs left out (and all of theirs together): "not red" (and
``False`` beside a binary ``True``) only mirrors red and is named in red's ``explains``.
Several values of one attribute that each push the same class (red, magenta and orange
toward checker; two bins of a brightness) are one dependency of that class on the attribute:
one finding, the strongest value, the others in ``also_values``.

The representation. Where the atlas keeps per-input activations, the class's inputs with v
are compared with its inputs without v in a layer (a permutation test per neuron with FDR,
:func:`~neurocarta.methods.topomap.stats.rows_difference`), and stored concept groups named
by that attribute value are listed; the finding's selection opens that map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping
from weakref import WeakKeyDictionary

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ..methods.concepts.labels import MIN_EFFECT, cohen_h
from ..methods.topomap.stats import bh_adjust, rows_difference
from ..store.schema import ATTRIBUTE, categorical_columns, column_roles, is_categorical
from .common import MAX_SELECTED_INPUTS, class_names, make_finding, name_list, pct, short_number

if TYPE_CHECKING:
    from ..store import Atlas

#: shortcut: Benjamini-Hochberg FDR level over every (attribute, value, class, contrast) test
SHORTCUT_FDR = 0.05
#: shortcut: the smallest difference in the share predicted as the class, with the value
#: against without it (for recognition: beyond the other classes' mean gain)
SHORTCUT_MIN_DIFFERENCE = 0.2
#: shortcut: inputs needed on each side of a contrast (with the value, without it) in a split
SHORTCUT_MIN_COUNT = 10
#: shortcut: with a training split, the value must be over-represented among the class's
#: training inputs at this one-sided p-value
SHORTCUT_TRAINING_P = 0.05
#: ... and at least this many times as common among the class's training inputs as among the others'
SHORTCUT_TRAINING_LIFT = 1.5
#: shortcut: quantile bins of a continuous attribute
SHORTCUT_BINS = 4
#: shortcut: permutations of the representation check (kept small: findings stay fast)
SHORTCUT_PERMUTATIONS = 200
#: shortcut: at most this many concept groups named in a finding's evidence
SHORTCUT_MAX_CONCEPTS = 5

CONTRASTS = ("recognition", "attraction")
_TEST = "exact conditional test (stratified hypergeometric), one-sided"
_NOUN_FIRST = ("colour", "color", "texture", "background")


# ============================================================================ the data
@dataclass
class _Rows:
    """The labelled inputs with outputs, as codes: classes 0..K-1, splits 0..Q-1, and one
    stratum per (label, split)."""

    input_id: np.ndarray
    label: np.ndarray
    pred: np.ndarray
    split: np.ndarray
    classes: np.ndarray  # class ids of codes 0..K-1
    class_names: list[str]
    split_names: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_splits(self) -> int:
        return len(self.split_names)

    @property
    def training(self) -> np.ndarray | None:
        """Which inputs belong to a training split (None when the table has none)."""
        train = [i for i, name in enumerate(self.split_names) if name is not None and name.lower().startswith("train")]
        return np.isin(self.split, train) if train else None

    @property
    def strata(self) -> np.ndarray:
        return self.label * self.n_splits + self.split


@dataclass
class _Attribute:
    """An attribute's values as codes per row (-1: missing), with their display values."""

    name: str
    codes: np.ndarray
    values: list[str]
    ranges: list[tuple[float, float]] | None = None  # continuous: each bin's smallest and largest value

    def without(self, values: list[int]) -> "_Attribute":
        """The same attribute with the rows of ``values`` left out."""
        codes = np.where(np.isin(self.codes, values), -1, self.codes)
        return _Attribute(self.name, codes, self.values, self.ranges)


def _rows(table: pd.DataFrame, names: list[str] | None) -> tuple[_Rows, pd.DataFrame] | None:
    if "label" not in table or "pred" not in table:
        return None
    t = table[(table["label"] >= 0) & table["pred"].notna()].reset_index(drop=True)
    if not len(t):
        return None
    label_id = t["label"].to_numpy(np.int64)
    pred_id = t["pred"].to_numpy(np.int64)
    classes = np.unique(np.concatenate([label_id, pred_id]))
    if "split" in t:
        split_code, split_names = pd.factorize(t["split"].astype(str), sort=True)
    else:  # one stratum per label, reported as split None
        split_code, split_names = np.zeros(len(t), dtype=np.int64), [None]
    names = names or []
    rows = _Rows(input_id=t["input_id"].to_numpy(np.int64) if "input_id" in t else np.arange(len(t)),
                 label=np.searchsorted(classes, label_id), pred=np.searchsorted(classes, pred_id),
                 split=split_code.astype(np.int64), classes=classes,
                 class_names=[names[c] if 0 <= c < len(names) else str(int(c)) for c in classes],
                 split_names=[None if s is None else str(s) for s in split_names])
    return rows, t


def _number(x: float) -> str:
    return f"{x:.3g}"


def _attributes(t: pd.DataFrame, roles: Mapping[str, str] | None) -> list[_Attribute]:
    """The categorical attributes, then the continuous ones binned by quantiles."""
    roles = column_roles(t, roles)  # declared roles win; the rest inferred (store/schema.py)
    out = []
    categorical = categorical_columns(t, include=(ATTRIBUTE,), roles=roles)
    for col in categorical:
        codes, uniq = pd.factorize(t[col], sort=True)
        out.append(_Attribute(col, codes.astype(np.int64), [str(u) for u in uniq]))
    for col in map(str, t.columns):
        values = t[col]
        if (col in categorical or roles.get(col) != ATTRIBUTE or values.dtype.kind not in "iuf"
                or is_categorical(values) or values.nunique() <= SHORTCUT_BINS):
            continue
        bins = pd.qcut(values, SHORTCUT_BINS, labels=False, duplicates="drop")
        codes = bins.fillna(-1).to_numpy(np.int64)
        present = np.unique(codes[codes >= 0])
        codes = np.searchsorted(present, codes).astype(np.int64)
        codes[bins.isna().to_numpy()] = -1
        v = values.to_numpy(np.float64)
        ranges = [(float(v[codes == b].min()), float(v[codes == b].max())) for b in range(len(present))]
        out.append(_Attribute(col, codes, [f"{_number(lo)}–{_number(hi)}" for lo, hi in ranges], ranges))
    return out


# ============================================================================ the exact test
def _log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def _sum_hypergeom_tail(total: np.ndarray, hits: np.ndarray, drawn: np.ndarray, observed: int,
                        upper: bool = True) -> float:
    """P(sum of independent hypergeometrics >= observed) (``upper``; else <=).

    Stratum i draws ``drawn[i]`` of ``total[i]`` inputs of which ``hits[i]`` are hits. Each
    stratum's distribution is normalised on its support before the convolution, so the tail
    keeps its relative precision far below 1e-16 (no 1 - cdf cancellation).
    """
    lowest = np.maximum(0, drawn + hits - total)
    highest = np.minimum(drawn, hits)
    dist = np.ones(1)
    for n, k, d, lo, hi in zip(total, hits, drawn, lowest, highest):
        if hi == lo:
            continue  # one possible count: it only shifts the sum
        x = np.arange(lo, hi + 1, dtype=np.float64)
        log_p = _log_choose(k, x) + _log_choose(n - k, d - x)
        p = np.exp(log_p - log_p.max())
        dist = np.convolve(dist, p / p.sum())
    at = int(observed - lowest.sum())  # the sum's distribution starts at the sum of the lowest counts
    tail = dist[max(at, 0):].sum() if upper else dist[:max(at + 1, 0)].sum()
    return float(np.clip(tail, np.finfo(np.float64).tiny, 1.0))


# ============================================================================ the contrasts
@dataclass
class _Contrast:
    """One contrast of every value (rows) of an attribute for one class, per stratum and split."""

    n_with: np.ndarray  # values x strata: inputs with the value
    n_all: np.ndarray  # strata: inputs with any value
    hit_with: np.ndarray  # values x strata: ... predicted as the class
    hit_all: np.ndarray  # strata
    strata: np.ndarray  # the strata this contrast reads (bool over strata)

    def valid(self) -> np.ndarray:
        n0 = self.n_all - self.n_with
        return (self.n_with > 0) & (n0 > 0) & self.strata

    def per_split(self, split_of: np.ndarray, n_splits: int) -> dict[str, np.ndarray]:
        """values x splits: the Mantel-Haenszel difference of shares, its weight, the inputs
        and pooled shares on each side (over the strata where both sides have inputs)."""
        ok = self.valid()
        n1 = np.where(ok, self.n_with, 0).astype(np.float64)
        n0 = np.where(ok, self.n_all - self.n_with, 0).astype(np.float64)
        x1 = np.where(ok, self.hit_with, 0).astype(np.float64)
        x0 = np.where(ok, self.hit_all - self.hit_with, 0).astype(np.float64)
        w = np.divide(n1 * n0, n1 + n0, out=np.zeros_like(n1), where=ok)
        d = np.divide(x1, n1, out=np.zeros_like(n1), where=ok) - np.divide(x0, n0, out=np.zeros_like(n0), where=ok)
        to_split = np.zeros((len(split_of), n_splits))
        to_split[np.arange(len(split_of)), split_of] = 1.0
        weight = w @ to_split
        out = {"weight": weight, "n_with": n1 @ to_split, "n_without": n0 @ to_split}
        out["difference"] = np.divide((w * d) @ to_split, weight, out=np.zeros_like(weight), where=weight > 0)
        out["share_with"] = np.divide(x1 @ to_split, out["n_with"], out=np.zeros_like(weight), where=out["n_with"] > 0)
        out["share_without"] = np.divide(x0 @ to_split, out["n_without"], out=np.zeros_like(weight),
                                         where=out["n_without"] > 0)
        return out

    def p_value(self, value: int, upper: bool = True) -> float:
        ok = self.valid()[value]
        return _sum_hypergeom_tail(self.n_all[ok], self.hit_all[ok], self.n_with[value, ok],
                                   int(self.hit_with[value, ok].sum()), upper)


class _Counts:
    """The counts of one attribute: inputs per (value, stratum), and per predicted class."""

    def __init__(self, rows: _Rows, attribute: _Attribute):
        self.rows, self.attribute = rows, attribute
        m, s = len(attribute.values), rows.n_classes * rows.n_splits
        self.n_values, self.n_strata = m, s
        ok = attribute.codes >= 0
        self._cell = attribute.codes[ok] * s + rows.strata[ok]
        self._pred = rows.pred[ok]
        self.n = np.bincount(self._cell, minlength=m * s).reshape(m, s)
        self.n_all = self.n.sum(axis=0)
        self.stratum_label = np.arange(s) // rows.n_splits
        self.stratum_split = np.arange(s) % rows.n_splits

    def contrast(self, cls: int, which: str) -> _Contrast:
        hit = np.bincount(self._cell[self._pred == cls], minlength=self.n_values * self.n_strata)
        hit = hit.reshape(self.n_values, self.n_strata)
        own = self.stratum_label == cls
        return _Contrast(self.n, self.n_all, hit, hit.sum(axis=0), own if which == "recognition" else ~own)


def _attribute_tests(rows: _Rows, attribute: _Attribute, floor: float) -> pd.DataFrame:
    """Every (value, class, contrast) test of one attribute, with its effect and p-value."""
    counts = _Counts(rows, attribute)
    k, q = rows.n_classes, rows.n_splits
    stats = {c: [counts.contrast(y, c) for y in range(k)] for c in CONTRASTS}
    per = {c: [s.per_split(counts.stratum_split, q) for s in stats[c]] for c in CONTRASTS}
    # recognition: a class's gain beyond the mean gain of the other classes (values x splits)
    rec_w = np.stack([p["weight"] for p in per["recognition"]])
    rec_wd = np.stack([p["weight"] * p["difference"] for p in per["recognition"]])
    records = []
    for contrast in CONTRASTS:
        for y in range(k):
            p = per[contrast][y]
            effect = p["difference"].copy()
            if contrast == "recognition":
                rest_w = rec_w.sum(axis=0) - rec_w[y]
                rest = np.divide(rec_wd.sum(axis=0) - rec_wd[y], rest_w, out=np.zeros_like(rest_w),
                                 where=rest_w > 0)
                effect -= np.maximum(rest, 0.0)
            enough = (p["n_with"] >= SHORTCUT_MIN_COUNT) & (p["n_without"] >= SHORTCUT_MIN_COUNT)
            made = p["weight"].sum(axis=1) > 0
            for v in np.flatnonzero(made):
                splits = np.flatnonzero(enough[v])
                best = splits[np.argmax(effect[v, splits])] if splits.size else int(np.argmax(p["weight"][v]))
                eff = float(effect[v, best]) if splits.size else float("nan")
                pv = stats[contrast][y].p_value(v) if eff >= floor else 1.0
                records.append({"attribute": attribute.name, "value": attribute.values[v], "value_index": int(v),
                                "class": int(rows.classes[y]), "class_index": int(y),
                                "class_name": rows.class_names[y], "contrast": contrast, "effect": eff,
                                "difference": float(p["difference"][v, best]), "split": rows.split_names[best],
                                "share_with": float(p["share_with"][v, best]),
                                "share_without": float(p["share_without"][v, best]),
                                "n_with": int(p["n_with"][v, best]), "n_without": int(p["n_without"][v, best]),
                                "p": pv})
    return pd.DataFrame.from_records(records, columns=_COLUMNS[:-1])


_COLUMNS = ["attribute", "value", "value_index", "class", "class_index", "class_name", "contrast", "effect",
            "difference", "split", "share_with", "share_without", "n_with", "n_without", "p", "q"]


# ============================================================================ the rule
class _Analysis:
    """Every test over a table, and the causes they add up to."""

    def __init__(self, table: pd.DataFrame, names: list[str] | None, roles: Mapping[str, str] | None,
                 fdr: float, floor: float):
        self.fdr, self.floor = fdr, floor
        prepared = _rows(table, names)
        self.rows, t = prepared if prepared else (None, None)
        self.attributes = _attributes(t, roles) if prepared else []
        parts = [_attribute_tests(self.rows, a, floor) for a in self.attributes]
        tests = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_COLUMNS[:-1])
        tests["q"] = bh_adjust(tests["p"].to_numpy(np.float64)) if len(tests) else []
        self.tests = tests
        significant = tests[(tests["q"] <= fdr) & (tests["effect"] >= floor)]
        # BH with R rejections among m tests rejects every p <= fdr R / m: re-tests face that cut
        self.p_cut = fdr * len(significant) / max(1, len(tests))
        self.training = {}
        for key in significant[["attribute", "value_index", "class_index"]].drop_duplicates().itertuples(index=False):
            self.training[tuple(key)] = self._training_association(*key)
        learned = [_taught(self.training[key])
                   for key in significant[["attribute", "value_index", "class_index"]].itertuples(index=False)]
        self.significant = significant[np.asarray(learned, dtype=bool)]

    def _training_association(self, attribute: str, v: int, y: int) -> dict | None:
        """How much more often the value comes with the class than with the others among the
        training inputs (None without a training split)."""
        train = self.rows.training
        if train is None:
            return None
        codes = next(a for a in self.attributes if a.name == attribute).codes
        known = train & (codes >= 0)
        own, has = self.rows.label[known] == y, codes[known] == v
        p = _sum_hypergeom_tail(np.array([known.sum()]), np.array([own.sum()]), np.array([has.sum()]),
                                int((own & has).sum()))
        return {"share_in_class": float(has[own].mean()) if own.any() else 0.0,
                "share_in_others": float(has[~own].mean()) if (~own).any() else 0.0, "p": p}

    def causes(self) -> list[dict]:
        out = []
        for attribute in self.attributes:
            sig = self.significant[self.significant["attribute"] == attribute.name]
            if not len(sig):
                continue
            strongest = sig.groupby("value_index")["effect"].max().sort_values(ascending=False, kind="stable")
            accepted: list[int] = []
            explained: dict[int, list[str]] = {}
            for v in strongest.index:
                cause = self._explained_by(attribute, accepted, sig[sig["value_index"] == v])
                if cause is None:
                    accepted.append(int(v))
                else:
                    explained.setdefault(cause, []).append(attribute.values[v])
            found = [self._cause(attribute, v, explained.get(v, [])) for v in accepted]
            out += _merge_values(found)
        return out

    def _explained_by(self, attribute: _Attribute, accepted: list[int], group: pd.DataFrame) -> int | None:
        """The accepted value whose effect ``group`` (a value's significant tests) only mirrors,
        or None when the value is a cause of its own.

        Re-tested with one accepted value's inputs left out, a mirror loses its effect (or has
        nothing left to be compared with: ``False`` once ``True`` is out). With several causes
        in the rest ("not red" beside red and orange), all of them are left out together; that
        counts only when something is left to compare with, since a value of its own (the
        third of three colours, each pushing its class) would also run out of comparisons.
        """
        for v in accepted:
            if self._retest(attribute.without([v]), group) != "survives":
                return v
        if len(accepted) > 1 and self._retest(attribute.without(accepted), group) == "gone":
            return accepted[0]
        return None

    def _retest(self, reduced: _Attribute, group: pd.DataFrame) -> str:
        """``survives`` (some test of ``group`` still passes against the values left in
        ``reduced``), ``gone`` (testable, none passes) or ``untestable`` (too few inputs left)."""
        again = _attribute_tests(self.rows, reduced, self.floor)
        again = again.merge(group[["value_index", "class_index", "contrast"]])
        if not again["effect"].notna().any():
            return "untestable"
        return "survives" if ((again["p"] <= self.p_cut) & (again["effect"] >= self.floor)).any() else "gone"

    def _cause(self, attribute: _Attribute, v: int, explains: list[str]) -> dict:
        group = self.significant[(self.significant["attribute"] == attribute.name)
                                 & (self.significant["value_index"] == v)]
        group = group.sort_values(["effect", "p"], ascending=[False, True], kind="stable")
        main = group.iloc[0].to_dict()
        same_class = self.tests[(self.tests["attribute"] == attribute.name) & (self.tests["value_index"] == v)
                                & (self.tests["class_index"] == main["class_index"])]
        cause = {**main, "contrasts": {r["contrast"]: _contrast_evidence(r) for r in same_class.to_dict("records")},
                 "also_toward": [_contrast_evidence(r) | {"class": r["class_name"]}
                                 for r in group.iloc[1:].to_dict("records")
                                 if r["class_index"] != main["class_index"]],
                 "collateral": self._collateral(attribute, v, main),
                 "explains": explains, "n_tests": len(self.tests), "n_splits": self.rows.n_splits, "range": None,
                 "training": self.training.get((attribute.name, v, main["class_index"]))}
        if attribute.ranges:
            cause["range"] = list(attribute.ranges[v])
        return cause

    def _collateral(self, attribute: _Attribute, v: int, main: dict) -> list[dict]:
        """The other classes that lose accuracy with the value (one-sided exact test the other
        way, BH over these classes), in the split the finding reports."""
        counts = _Counts(self.rows, attribute)
        split = self.rows.split_names.index(main["split"])
        found = []
        for y in range(self.rows.n_classes):
            if y == main["class_index"]:
                continue
            c = counts.contrast(y, "recognition")
            p = c.per_split(counts.stratum_split, self.rows.n_splits)
            n1, n0 = p["n_with"][v, split], p["n_without"][v, split]
            if n1 < SHORTCUT_MIN_COUNT or n0 < SHORTCUT_MIN_COUNT or p["difference"][v, split] > -self.floor:
                continue
            found.append({"class": self.rows.class_names[y], "accuracy_with": float(p["share_with"][v, split]),
                          "accuracy_without": float(p["share_without"][v, split]), "n_with": int(n1),
                          "n_without": int(n0), "p": c.p_value(v, upper=False)})
        if not found:
            return []
        q = bh_adjust(np.array([f["p"] for f in found]))
        kept = [f | {"q": float(qi)} for f, qi in zip(found, q) if qi <= self.fdr]
        return sorted(kept, key=lambda f: f["accuracy_with"] - f["accuracy_without"])


def _taught(training: dict | None) -> bool:
    """Whether the training split gives the model a reason to tie the value to the class
    (True without a training split: then nothing can be checked)."""
    if training is None:
        return True
    in_class, in_others = training["share_in_class"], training["share_in_others"]
    return bool(in_class >= SHORTCUT_TRAINING_LIFT * in_others and cohen_h(in_class, in_others) >= MIN_EFFECT
                and training["p"] <= SHORTCUT_TRAINING_P)


def _contrast_evidence(r: dict) -> dict:
    return {key: r[key] for key in ("contrast", "share_with", "share_without", "difference", "effect", "split",
                                    "n_with", "n_without", "p", "q")}


def _merge_values(causes: list[dict]) -> list[dict]:
    """One finding per (attribute, class): several values of one attribute that each push
    toward the same class (red, magenta and orange toward checker; two adjacent brightness
    bins) are one dependency of that class on the attribute. The strongest value names the
    finding; the others are its ``also_values``."""
    out: dict[int, dict] = {}
    for c in sorted(causes, key=lambda c: -c["effect"]):
        if c["class_index"] in out:
            first = out[c["class_index"]]
            first.setdefault("also_values", []).append(c["value"])
            first["explains"] = first["explains"] + c["explains"]
        else:
            out[c["class_index"]] = c
    return list(out.values())


def shortcut_candidates(table: pd.DataFrame, class_names: list[str] | None = None,
                        roles: Mapping[str, str] | None = None, fdr: float = SHORTCUT_FDR,
                        min_difference: float = SHORTCUT_MIN_DIFFERENCE) -> pd.DataFrame:
    """Every (attribute, value, class, contrast) test the shortcut rule makes, most significant first.

    ``table``: inputs with ``label`` and ``pred`` (and ``split``, attributes); ``roles`` as
    :attr:`Atlas.column_roles` (inferred from ``table`` when missing): only columns with the
    role ``attribute`` are tested. Columns: attribute, value, value_index, class,
    class_index, class_name, contrast (``recognition`` or ``attraction``), effect (the
    difference the floor applies to), difference, split (the split both are read in),
    share_with, share_without, n_with, n_without, p (one-sided exact; 1 where the effect is
    below ``min_difference``) and q (BH over every row). See the module docstring.
    """
    tests = _Analysis(table, class_names, roles, fdr, min_difference).tests
    return tests.sort_values(["q", "effect"], ascending=[True, False], kind="stable").reset_index(drop=True)


def shortcut_causes(table: pd.DataFrame, class_names: list[str] | None = None,
                    roles: Mapping[str, str] | None = None, fdr: float = SHORTCUT_FDR,
                    min_difference: float = SHORTCUT_MIN_DIFFERENCE) -> list[dict]:
    """The shortcuts of ``table``, one per cause, strongest first.

    Each is the strongest significant test of its (attribute, value) (the keys of
    :func:`shortcut_candidates`) with ``contrasts`` (both contrasts of its class),
    ``collateral`` (classes that lose accuracy with the value: class, accuracy_with,
    accuracy_without, n, p, q), ``also_toward`` (other classes the value pushes toward),
    ``explains`` (values of the attribute whose effect this one explains), ``n_tests`` and,
    for a binned attribute, ``range`` and ``also_values``.
    """
    causes = _Analysis(table, class_names, roles, fdr, min_difference).causes()
    return sorted(causes, key=lambda c: (-c["effect"], c["p"]))


#: each open atlas's causes per snapshot: the shortcut rule and the label rules (which leave a
#: shortcut's victims to it) read the same causes, computed once, as the atlas caches its tables
_CAUSES: WeakKeyDictionary = WeakKeyDictionary()


def atlas_shortcut_causes(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """:func:`shortcut_causes` of ``atlas``'s inputs and ``snapshot``'s outputs, once per open
    atlas and snapshot (read-only: callers copy what they keep)."""
    snap = atlas.snapshot_name(snapshot)
    per_snapshot = _CAUSES.setdefault(atlas, {})
    if snap not in per_snapshot:
        per_snapshot[snap] = shortcut_causes(atlas.inputs_with_outputs(snap), class_names(atlas),
                                             atlas.column_roles)
    return per_snapshot[snap]


# ============================================================================ findings
def shortcut_findings(atlas: Atlas, snapshot: str | None = None) -> list[dict]:
    """Attribute values that push the model toward one class (:func:`shortcut_causes`), one
    finding per cause, backed by the representation where the atlas has per-input
    activations. Fires from the model outputs alone when no map is stored."""
    table = atlas.inputs_with_outputs(snapshot)
    causes = atlas_shortcut_causes(atlas, snapshot)
    if not causes:
        return []
    layer = _map_layer(atlas)
    labelled = table[(table["label"] >= 0) & table["pred"].notna()]
    out = []
    for c in causes:
        col, cls = c["attribute"], c["class_name"]
        in_value = _has_value(labelled, c)
        own = labelled["label"] == c["class"]
        if c["contrast"] == "recognition":
            chosen = labelled[in_value & own]
        else:
            chosen = labelled[in_value & ~own & (labelled["pred"] == c["class"])]
        selection = {"layer": layer, "group_by": col, "group": c["value"], "class": cls,
                     "inputs": np.sort(chosen["input_id"].to_numpy())[:MAX_SELECTED_INPUTS]}
        if c["range"]:
            selection["range"] = c["range"]
        evidence = {key: c[key] for key in ("attribute", "value", "contrast", "share_with", "share_without",
                                            "difference", "effect", "split", "n_with", "n_without", "contrasts",
                                            "collateral", "also_toward", "explains", "range", "training")}
        evidence["class"] = cls
        if c.get("also_values"):
            evidence["also_values"] = c["also_values"]
        evidence["representation"] = _representation(atlas, snapshot, layer, labelled, own, in_value)
        evidence["concepts"] = _concepts(atlas, snapshot, col, c["value"])
        confidence = {"test": f"{_TEST}, Benjamini-Hochberg over {c['n_tests']} tests", "p": c["p"], "q": c["q"],
                      "n_tests": c["n_tests"]}
        out.append(make_finding("shortcut", _text(c), "topomap",
                                selection, c["effect"], evidence, confidence, _check(c, layer)))
    return out


def _has_value(table: pd.DataFrame, cause: dict) -> pd.Series:
    if cause["range"]:
        lo, hi = cause["range"]
        return table[cause["attribute"]].between(lo, hi)
    return table[cause["attribute"]].astype(str) == cause["value"]


def shortcut_victims(table: pd.DataFrame, causes: list[dict]) -> np.ndarray:
    """Which rows of ``table`` (label, pred and the attributes) one of ``causes`` explains: with
    the cause's value and predicted as its class though labelled otherwise (pulled in), and,
    for a class recognised mostly with the value, its inputs without the value predicted as
    another class (left out). Their disagreement with the label is the shortcut's doing, so
    the label rules must not call them mislabelled (one cause, one finding)."""
    label, pred = table["label"].to_numpy(), table["pred"].to_numpy()
    out = np.zeros(len(table), dtype=bool)
    for c in causes:
        with_value = _has_value(table, c).to_numpy(dtype=bool)
        out |= with_value & (pred == c["class"]) & (label != c["class"])
        if c["contrast"] == "recognition":
            out |= ~with_value & (label == c["class"]) & (pred != c["class"])
    return out


def _noun(attribute: str, value: str) -> str:
    return f"{value} {attribute}" if attribute in _NOUN_FIRST else f"{attribute} {value}"


def _clause(contrast: dict, cls: str, noun: str, split: str | None) -> str:
    where = f" of the {split} split" if split else ""
    if contrast["contrast"] == "recognition":
        what = f"{cls} inputs{where} are recognised"
    else:
        what = f"inputs{where} of other classes are called {cls}"
    return (f"{what} {pct(contrast['share_with'])} of the time with {noun} and {pct(contrast['share_without'])} "
            f"without (q = {short_number(contrast['q'])})")


def _text(c: dict) -> str:
    cls, noun, n_splits = c["class_name"], _noun(c["attribute"], c["value"]), c["n_splits"]
    main = c["contrasts"][c["contrast"]]
    parts = [_clause(main, cls, noun, main["split"] if n_splits > 1 else None)]
    other = c["contrasts"].get("attraction" if c["contrast"] == "recognition" else "recognition")
    if other and other["q"] <= SHORTCUT_FDR and other["effect"] >= SHORTCUT_MIN_DIFFERENCE:
        parts.append(_clause(other, cls, noun, other["split"] if n_splits > 1 else None))
    if c.get("also_values"):
        also = name_list([_noun(c["attribute"], v) for v in c["also_values"]])
        parts.append(f"{also} push{'es' if len(c['also_values']) == 1 else ''} toward class {cls} too")
    if c["training"]:
        parts.append(f"in training, {pct(c['training']['share_in_class'])} of {cls} inputs have {noun} against "
                     f"{pct(c['training']['share_in_others'])} of the others")
    lost = c["collateral"]
    if len(lost) == 1:
        parts.append(f"class {lost[0]['class']} loses accuracy with {noun} ({pct(lost[0]['accuracy_with'])} "
                     f"against {pct(lost[0]['accuracy_without'])})")
    elif lost:
        parts.append(f"{len(lost)} other classes lose accuracy with {noun}")
    return f"Inputs with {noun} push the model toward class {cls}, a shortcut: " + "; ".join(parts) + "."


def _check(c: dict, layer: str | None) -> str:
    if c["range"]:
        pick = f"select the inputs with {c['attribute']} from {_number(c['range'][0])} to {_number(c['range'][1])}"
    else:
        pick = f"group by {c['attribute']} and pick {c['value']}"
    where = f" of {layer}" if layer else ""
    return f"Open the topomap{where}, {pick}, and compare class {c['class_name']}'s inputs with and without it."


# ============================================================================ representation
def _map_layer(atlas: Atlas) -> str | None:
    """The layer whose map shows a shortcut: the deepest per-input layer with a stored
    topomap, else the deepest per-input layer (token layers hold rows per token)."""
    layers = [name for name in atlas.layer_names if atlas.manifest.layer(name).rows != "token"]
    if not layers:
        return None
    mapped = {name.split("@")[0] for name in atlas.maps("topomap")}
    with_map = [name for name in layers if name in mapped]
    return (with_map or layers)[-1]


def _representation(atlas: Atlas, snapshot: str | None, layer: str | None, labelled: pd.DataFrame,
                    own: pd.Series, in_value: pd.Series) -> dict | None:
    """The class's inputs with the value against its inputs without it, per neuron of ``layer``."""
    if layer is None or atlas.mode != "full":
        return None
    rows_a = labelled.loc[own & in_value, "input_id"].to_numpy()
    rows_b = labelled.loc[own & ~in_value, "input_id"].to_numpy()
    if len(rows_a) < 2 or len(rows_b) < 2:
        return None
    diff = rows_difference(atlas, layer, rows_a, rows_b, snapshot=snapshot, permutations=SHORTCUT_PERMUTATIONS,
                           fdr=SHORTCUT_FDR, max_rows=5000)
    significant = int(diff.significant.sum())
    return {"layer": layer, "significant_neurons": significant, "n_neurons": int(diff.values.size),
            "share": significant / max(1, diff.values.size), "n_with": diff.n_a, "n_without": diff.n_b,
            "test": f"permutation ({SHORTCUT_PERMUTATIONS}), Benjamini-Hochberg q <= {SHORTCUT_FDR}"}


def _concepts(atlas: Atlas, snapshot: str | None, attribute: str, value: str) -> list[dict]:
    """Stored concept groups that the concepts method named by this attribute value."""
    from ..methods.concepts import load_concepts

    stored = atlas.maps("concepts")
    if not stored:
        return []
    snap = atlas.snapshot_name(snapshot)
    c = load_concepts(atlas, snap if snap in stored else stored[-1])
    if "describe" not in c.clusters:
        return []
    named = c.clusters[c.clusters["describe"].astype(str).str.startswith(f"{attribute}={value} (")]
    named = named.sort_values("size", ascending=False).head(SHORTCUT_MAX_CONCEPTS)
    return [{"layer": r["layer"], "cluster": int(r["cluster"]), "size": int(r["size"]), "describe": r["describe"]}
            for r in named.to_dict("records")]
