"""Linear CKA, checked against the textbook formulas written out directly in numpy: a
representation with itself is 1, CKA is invariant to orthogonal transforms and isotropic
scaling, and the minibatch form sums the per-batch unbiased HSIC."""

from __future__ import annotations

import numpy as np
import pytest

from neurocarta.errors import UserError
from neurocarta.methods.comparison import MinibatchCKA, linear_cka
from neurocarta.methods.comparison.layers import batches


def hsic_biased(k: np.ndarray, l: np.ndarray) -> float:
    """The textbook HSIC: tr(K H L H) / (n - 1)^2, H the centring matrix."""
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, term by term: K~, L~ the Grams with zero diagonals."""
    n = len(k)
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return float(np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
                 - 2.0 / (n - 2) * (one @ kt @ lt @ one)) / (n * (n - 3))


def cka_direct(x: np.ndarray, y: np.ndarray, hsic) -> float:
    k, l = x @ x.T, y @ y.T
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    """Two related representations of 60 inputs: Y is a noisy nonlinear read-out of X, with an
    offset (CKA must not care about the features' means)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12)) + 5.0
    y = np.tanh((x - 5.0) @ rng.normal(size=(12, 7)) / 3) + 0.5 * rng.normal(size=(60, 7))
    return x, y


def test_a_representation_with_itself_is_one(pair):
    x, _ = pair
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x, unbiased=False) == pytest.approx(1.0, abs=1e-12)
    acc = MinibatchCKA(2)
    for part in np.array_split(np.arange(60), 3):
        acc.update([x[part], x[part]])
    assert np.allclose(acc.matrix(), 1.0)


def test_cka_matches_the_textbook_formulas(pair):
    x, y = pair
    expected_unbiased = cka_direct(x, y, hsic_unbiased)
    expected_biased = cka_direct(x, y, hsic_biased)
    assert 0.1 < expected_unbiased < 0.95 and expected_unbiased != pytest.approx(expected_biased, abs=1e-3)
    assert linear_cka(x, y) == pytest.approx(expected_unbiased, rel=1e-9)
    assert linear_cka(x, y, unbiased=False) == pytest.approx(expected_biased, rel=1e-9)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(pair):
    x, y = pair
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    base = cka_direct(x, y, hsic_unbiased)
    for transformed in (x @ q, 3.7 * x, 0.01 * (x @ q)):
        assert linear_cka(transformed, y) == pytest.approx(base, rel=1e-9)
        assert cka_direct(transformed, y, hsic_unbiased) == pytest.approx(base, rel=1e-9)
    # not invariant to an anisotropic scaling: the check can fail
    assert abs(linear_cka(x * np.linspace(0.1, 10, 12), y) - base) > 1e-3


def test_minibatch_cka_sums_the_unbiased_hsic_of_each_batch(pair):
    x, y = pair
    parts = np.array_split(np.random.default_rng(2).permutation(60), 3)
    acc = MinibatchCKA(2)
    for part in parts:
        acc.update([x[part], y[part]])
    xy = sum(hsic_unbiased(x[p] @ x[p].T, y[p] @ y[p].T) for p in parts)
    xx = sum(hsic_unbiased(x[p] @ x[p].T, x[p] @ x[p].T) for p in parts)
    yy = sum(hsic_unbiased(y[p] @ y[p].T, y[p] @ y[p].T) for p in parts)
    assert acc.matrix()[0, 1] == pytest.approx(xy / np.sqrt(xx * yy), rel=1e-9)
    assert acc.n_batches == 3 and acc.n_inputs == 60


def test_batches_are_a_seeded_partition_without_a_short_last_batch():
    parts = batches(1000, 256, seed=0)
    sizes = [len(p) for p in parts]
    assert len(parts) == 3 and min(sizes) >= 256 and max(sizes) < 512
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))
    assert all((a == b).all() for a, b in zip(parts, batches(1000, 256, seed=0)))
    assert not (parts[0] == batches(1000, 256, seed=1)[0]).all()
    with pytest.raises(UserError, match="batch_size must be at least 4"):
        batches(100, 3, seed=0)


def test_token_layers_give_each_input_the_mean_of_its_token_rows(tmp_path):
    """A text layer compares through one row per input, the mean of its token rows: read from
    full activations and from a summary atlas's sample, the rows agree, and equal the mean
    computed directly from the token table."""
    import neurocarta as nc
    from neurocarta.methods.comparison.representations import Representation, available_inputs, input_rows
    from test_capture import _tiny_bert

    _, _, bundle = _tiny_bert(hidden=16, layers=1, intermediate=24)
    rng = np.random.default_rng(0)
    words = "the cat sat a dog ran far away sun birds sing at dawn end of it rain".split()
    (tmp_path / "t.txt").write_text("\n".join(" ".join(rng.choice(words, size=rng.integers(2, 8)))
                                              for _ in range(60)) + "\n")
    layer = "encoder.layer.0.intermediate"
    common = dict(layers=[layer], dtype="float32", progress=False)
    full = nc.extract(bundle, f"text:{tmp_path / 't.txt'}", tmp_path / "full", **common)
    summary = nc.extract(bundle, f"text:{tmp_path / 't.txt'}", tmp_path / "summary", mode="summary",
                         sample_size=40, **common)
    ids = available_inputs(summary)
    assert len(ids) == 40 and len(available_inputs(full)) == 60
    from_full = input_rows(Representation(full, "A", layer, full.snapshots[-1]), ids)
    from_sample = input_rows(Representation(summary, "B", layer, summary.snapshots[-1]), ids)
    np.testing.assert_allclose(from_full, from_sample, rtol=1e-6)
    tokens = full.tokens
    rows = tokens.loc[tokens["input_id"] == ids[0], "row"].to_numpy()
    assert len(rows) >= 2
    np.testing.assert_allclose(from_full[0], full.activations(layer)[rows].mean(axis=0), rtol=1e-5)


def test_concept_matching_rules_on_planted_groups():
    """Groups as exemplar sets with a planted kept group, an even split (halves have Jaccard 0.5
    with the whole: not a match), a merge, one that vanished and one that appeared; parts that
    lie inside two wholes count for one."""
    import pandas as pd

    from neurocarta.methods.comparison.concept_matching import match_groups

    r = lambda lo, hi: np.arange(lo, hi)  # noqa: E731
    first = {"kept": r(0, 100), "whole": r(100, 200), "half1": r(200, 250), "half2": r(250, 300),
             "gone": r(300, 360)}
    second = {"kept": r(5, 100), "part1": r(100, 150), "part2": r(150, 195), "merged": r(200, 300),
              "new": r(400, 450), "overlap": r(190, 300)}  # half1 and half2 lie inside merged and overlap

    def table(groups: dict) -> tuple[pd.DataFrame, list[np.ndarray]]:
        t = pd.DataFrame({"cluster": range(len(groups)), "layer": "l", "name": list(groups)})
        t["n_exemplars"] = [len(v) for v in groups.values()]
        return t, list(groups.values())

    m = match_groups(*table(first), *table(second), labels={"a": "first", "b": "second"})
    status_a = dict(zip(m.a["name"], m.a["status"]))
    status_b = dict(zip(m.b["name"], m.b["status"]))
    assert status_a == {"kept": "matched", "whole": "split", "half1": "merged", "half2": "merged", "gone": "vanished"}
    assert status_b["kept"] == "matched" and status_b["merged"] == "merged" and status_b["new"] == "appeared"
    assert status_b["part1"] == status_b["part2"] == "split"
    kinds = sorted(e["kind"] for e in m.events)
    assert kinds == ["appeared", "merged", "split", "vanished"]
    split = next(e for e in m.events if e["kind"] == "split")
    assert split["a"] == [{"layer": "l", "cluster": 1}]
    assert sorted(g["cluster"] for g in split["b"]) == [1, 2]
    merged = next(e for e in m.events if e["kind"] == "merged")  # one merge: a part counts for one whole
    assert merged["b"] == [{"layer": "l", "cluster": 3}] and sorted(g["cluster"] for g in merged["a"]) == [2, 3]
    assert status_b["overlap"] == "changed"
    assert m.a.loc[m.a["name"] == "kept", "jaccard"].item() == pytest.approx(0.95)
