"""Label noise or a systematic error? The test that keeps shortcut victims out of mislabels.

Confident learning assumes that a wrong label depends only on the input's true class, not on
the input (class-conditional noise). Inputs labelled A that the model and the representation
both put in class B are then, if truly mislabelled, B inputs like any other: an attribute
(background, colour, ...) is distributed among them as among the inputs that are B and
labelled B. A shortcut breaks exactly this: the circles off their shortcut background that
the model calls hexagon all share one background, and they gather in the held-out split,
where the model was not fitted to their labels. Such a pair is the model's systematic error
(a confusion finding), not noise in the labels.

Each (label A, looks-like B) pair with enough candidates is tested against the reference
"labelled B and predicted B": every categorical attribute by a G-test of homogeneity, and
the split by a one-sided Fisher exact test (more held-out inputs than the reference has);
the split once more over all candidates together (pairs too small to test alone included)
against every input the model gets right. Benjamini-Hochberg across every test. Where a
factor explains a pair, its candidates that carry the over-represented values (or sit in
the held-out split) leave mislabels; the others stay. The split test can only move inputs
out of mislabels, so where noise is in both splits and the model memorises part of it in
training, the cost is recall, never a wrong finding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..methods.topomap.stats import bh_adjust

#: a pair needs at least this many candidates to be tested (fewer cannot show a pattern)
MIN_PAIR = 5
#: a factor explains a pair when its BH-adjusted q is below this
FDR = 0.01
#: the factor name of the held-out split
SPLIT = "split"
#: the pair of the pooled split test over every candidate
ANY = -1


def _attribute_test(values: pd.Series, flagged: np.ndarray, reference: np.ndarray) -> tuple[float, set]:
    """G-test of homogeneity of ``values`` between the flagged and the reference inputs:
    (p, the values over-represented among the flagged)."""
    v = values.astype("string").fillna("<NA>").to_numpy()
    table = pd.crosstab(pd.Series(v[flagged | reference]), pd.Series(flagged[flagged | reference]))
    if table.shape != (table.shape[0], 2) or table.shape[0] < 2:
        return 1.0, set()
    _, p, _, expected = stats.chi2_contingency(table.to_numpy(), lambda_="log-likelihood")
    over = table.index[table[True].to_numpy() > expected[:, list(table.columns).index(True)]]
    return float(p), set(over)


def _split_test(flagged: np.ndarray, reference: np.ndarray, held_out: np.ndarray) -> float:
    """One-sided Fisher exact p: the flagged are held out more often than the reference."""
    table = [[int((flagged & held_out).sum()), int((flagged & ~held_out).sum())],
             [int((reference & held_out).sum()), int((reference & ~held_out).sum())]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def systematic_disagreements(candidates: np.ndarray, labels: np.ndarray, pred: np.ndarray,
                             factors: pd.DataFrame, held_out: np.ndarray | None = None
                             ) -> tuple[np.ndarray, list[dict]]:
    """Which of ``candidates`` (inputs the model and the neighbours put in class ``pred``, not
    their label) a factor explains: (mask over every input, one explanation per explained pair).

    ``factors``: the categorical attribute columns, aligned with ``labels``; ``held_out``: True
    outside the training split (None, or all False, when the data has no split).
    """
    split = held_out is not None and held_out.any() and (~held_out).any()
    tests: list[tuple[int, int, str, float, set]] = []
    pairs = pd.DataFrame({"a": labels[candidates], "b": pred[candidates]}).value_counts()
    for (a, b), n in pairs.items():
        if n < MIN_PAIR:
            continue
        flagged = candidates & (labels == a) & (pred == b)
        reference = ~candidates & (labels == b) & (pred == b)
        if not reference.any():
            continue
        for column in factors.columns:
            p, over = _attribute_test(factors[column], flagged, reference)
            tests.append((a, b, column, p, over))
        if split:
            tests.append((a, b, SPLIT, _split_test(flagged, reference, held_out), {"held-out"}))
    if split and candidates.sum() >= MIN_PAIR:
        right = ~candidates & (labels == pred)
        tests.append((ANY, ANY, SPLIT, _split_test(candidates, right, held_out), {"held-out"}))
    moved = np.zeros(len(labels), dtype=bool)
    if not tests:
        return moved, []
    q = bh_adjust(np.array([t[3] for t in tests]))
    best: dict[tuple[int, int], int] = {}  # the most significant factor of each pair
    for i, (a, b, *_rest) in enumerate(tests):
        if q[i] < FDR and ((a, b) not in best or q[i] < q[best[(a, b)]]):
            best[(a, b)] = i
    explained: list[dict] = []
    for (a, b), i in best.items():
        _, _, factor, p, over = tests[i]
        flagged = candidates if a == ANY else candidates & (labels == a) & (pred == b)
        if factor == SPLIT:
            hit = flagged & held_out
        else:
            values = factors[factor].astype("string").fillna("<NA>").to_numpy()
            hit = flagged & np.isin(values, list(over))
        moved |= hit
        explained.append({"label": int(a), "looks_like": int(b), "factor": factor,
                          "values": sorted(map(str, over)), "n": int(hit.sum()), "p": p, "q": float(q[i])})
    return moved, explained
