"""NAP profiles from an atlas, full and summary alike (issue 3 groundwork)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import neurocarta as nc
from neurocarta.methods.topomap import atlas_profiles, nap


def test_nap_subtracts_the_unweighted_mean_of_groups():
    means = pd.DataFrame([[1.0, 4.0], [3.0, 0.0], [5.0, 2.0]], index=["a", "b", "c"])
    p = nap(means, pd.Series([10, 1, 1]))
    np.testing.assert_allclose(p.values, [[-2.0, 0.0, 2.0], [2.0, -2.0, 0.0]])
    assert p.groups == ["a", "b", "c"] and p.n_neurons == 2
    with pytest.raises(nc.UserError, match="at least 2 groups"):
        nap(means.iloc[:1])
    with pytest.raises(nc.UserError, match="NaN"):
        nap(pd.DataFrame([[np.nan], [1.0]]))


def test_profiles_from_full_and_summary_atlases_agree(tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, size=(200, 6, 6, 3)).astype(np.uint8),
             y=rng.integers(0, 4, 200))
    kw = dict(layers=["conv", "act"], batch_size=32, chunk_size=64, progress=False)
    full = nc.extract("py:tiny_models:cnn_bundle", f"npz:{tmp_path / 'd.npz'}", tmp_path / "f", **kw)
    summ = nc.extract("py:tiny_models:cnn_bundle", f"npz:{tmp_path / 'd.npz'}", tmp_path / "s", mode="summary",
                      group_by=["label"], **kw)
    a, b = atlas_profiles(full, "conv", by="label"), atlas_profiles(summ, "conv", by="label")
    assert a.values.shape == (6, 4) and a.groups == [0, 1, 2, 3]
    np.testing.assert_allclose(a.values, b.values, atol=1e-9)
    acts = full.activations("conv")[:]
    labels = full.inputs["label"].to_numpy()
    by_hand = np.stack([acts[labels == g].mean(0) for g in range(4)])
    np.testing.assert_allclose(a.values, (by_hand - by_hand.mean(0)).T, rtol=1e-5, atol=1e-6)
    with pytest.raises(nc.AtlasError, match="no column 'colour'"):
        atlas_profiles(full, "conv", by="colour")
