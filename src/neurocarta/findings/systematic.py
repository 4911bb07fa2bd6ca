"""Label noise or a systematic error? The test that keeps shortcut victims out of mislabels.

Confident learning assumes that a wrong label depends only on the input's true class, not on
the input (class-conditional noise). Inputs labelled A that the model and the representation
both put in class B are then, if truly mislabelled, B inputs like any other: an attribute
(background, colour, ...) is distributed among them as among the inputs that are B and
labelled B, and they are no more often in the held-out split. A shortcut breaks exactly
this: the circles off their shortcut background that the model calls hexagon all share one
background. Such a pair is the model's systematic error (a confusion finding), not noise in
the labels.

Each (label A, looks-like B) pair with enough candidates is tested against the reference
"labelled B and predicted B": every categorical attribute by a G-test of homogeneity,
Benjamini-Hochberg across every test. Where an attribute explains a pair, the candidates
that carry its over-represented values leave mislabels; the others stay.
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


def systematic_disagreements(candidates: np.ndarray, labels: np.ndarray, pred: np.ndarray,
                             factors: pd.DataFrame) -> tuple[np.ndarray, list[dict]]:
    """Which of ``candidates`` (inputs the model and the neighbours put in class ``pred``, not
    their label) an attribute explains: (mask over every input, one explanation per explained
    pair). ``factors``: the categorical attribute columns, aligned with ``labels``.
    """
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
    moved = np.zeros(len(labels), dtype=bool)
    if not tests:
        return moved, []
    q = bh_adjust(np.array([t[3] for t in tests]))
    explained: list[dict] = []
    best: dict[tuple[int, int], int] = {}
    for i, (a, b, *_rest) in enumerate(tests):
        if q[i] < FDR and ((a, b) not in best or q[i] < q[best[(a, b)]]):
            best[(a, b)] = i
    for (a, b), i in best.items():
        _, _, factor, p, over = tests[i]
        values = factors[factor].astype("string").fillna("<NA>").to_numpy()
        hit = candidates & (labels == a) & (pred == b) & np.isin(values, list(over))
        moved |= hit
        explained.append({"label": int(a), "looks_like": int(b), "factor": factor,
                          "values": sorted(map(str, over)), "n": int(hit.sum()), "p": p, "q": float(q[i])})
    return moved, explained
