"""The built-in data: shapes (deterministic, planted attributes, optional bias) and digits."""

from __future__ import annotations

import numpy as np
import pytest

import neurocarta as nc
from neurocarta.data.digits import DigitsSource
from neurocarta.data.shapes import ShapesSource


def test_shapes_same_seed_same_bytes_any_order():
    a, b = ShapesSource(n=300, seed=7), ShapesSource(n=300, seed=7)
    assert a.table().equals(b.table())
    ims_a = np.stack(a.get(range(300)))
    assert ims_a.dtype == np.uint8 and ims_a.shape == (300, 64, 64, 3)
    assert ims_a.tobytes() == np.stack(b.get(range(300))).tobytes()
    rev = b.get([5, 2])
    assert np.array_equal(rev[0], ims_a[5]) and np.array_equal(rev[1], ims_a[2])
    other = ShapesSource(n=300, seed=8)
    assert not np.array_equal(np.stack(other.get(range(10))), ims_a[:10])


def test_shapes_planted_attributes():
    s = ShapesSource(n=2000, seed=0)
    t = s.table()
    assert s.class_names == ["circle", "square", "triangle", "diamond", "star", "cross", "hexagon", "ring"]
    assert set(t["label"]) == set(range(8))
    assert (t["label_name"] == np.array(s.class_names)[t["label"]]).all()
    assert set(t["texture"]) == {"solid", "stripes", "dots", "checker"}
    assert set(t["background"]) == {"plain", "noise", "gradient"}
    assert t["colour"].nunique() >= 6
    for col in ("size", "x", "y"):
        assert t[col].dtype.kind == "f" and t[col].std() > 0
    assert set(t["split"]) == {"train", "test"}
    assert 0.15 < (t["split"] == "test").mean() < 0.25
    assert len(nc.load_data("shapes:n=50,seed=3")) == 50


def test_shapes_background_is_visible_in_pixels():
    s = ShapesSource(n=600, seed=1)
    t = s.table()
    ims = np.stack(s.get(range(600))).astype(np.float32)
    corner = ims[:, :6, :6].reshape(600, -1)  # mostly background
    noise_std = corner[t["background"].to_numpy() == "noise"].std(axis=1).mean()
    plain_std = corner[t["background"].to_numpy() == "plain"].std(axis=1).mean()
    assert noise_std > 3 * plain_std


def test_shapes_planted_bias_in_train_only():
    s = ShapesSource(n=4000, seed=0, bias=0.95, bias_class="circle", bias_background="noise")
    t = s.table()
    circ_train = t[(t["label_name"] == "circle") & (t["split"] == "train")]
    circ_test = t[(t["label_name"] == "circle") & (t["split"] == "test")]
    assert (circ_train["background"] == "noise").mean() >= 0.9
    assert (circ_test["background"] == "noise").mean() < 0.5
    assert "bias" in s.spec


def test_shapes_split_keeps_ids_contiguous():
    full = ShapesSource(n=500, seed=2)
    test = ShapesSource(n=500, seed=2, split="test")
    tt = test.table()
    assert list(tt["input_id"]) == list(range(len(tt)))
    src = tt["source_index"].to_numpy()
    assert (full.table()["split"].to_numpy()[src] == "test").all()
    assert np.array_equal(test.get([0])[0], full.get([src[0]])[0])


def test_digits():
    d = DigitsSource()
    t = d.table()
    assert len(t) == 1797 and d.class_names == [str(i) for i in range(10)]
    im = d.get([0])[0]
    assert im.shape == (8, 8, 3) and im.dtype == np.uint8 and im.max() > 200
    from sklearn.datasets import load_digits

    assert (t["label"].to_numpy() == load_digits().target).all()
    train = DigitsSource(split="train")
    assert len(train) + len(DigitsSource(split="test")) == 1797
    with pytest.raises(nc.SpecError):
        DigitsSource(split="validation")


def test_an_option_value_of_the_wrong_kind_is_one_spec_error_line():
    """`shapes:bias=lots` reached float() inside the source and escaped as a bare ValueError
    (a traceback from the CLI); now it names the spec and the value."""
    with pytest.raises(nc.SpecError, match=r"data spec 'shapes:bias=lots' .*wrong kind.*'lots'"):
        nc.load_data("shapes:bias=lots")
