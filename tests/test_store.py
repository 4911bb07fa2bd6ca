"""The atlas on disk: round trip, summary mode, validation on open."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import neurocarta as nc
from neurocarta.errors import AtlasError

import tiny_models


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "img.npz"
    np.savez(path, x=rng.integers(0, 256, size=(300, 6, 6, 3)).astype(np.uint8), y=rng.integers(0, 4, 300))
    return path


def _assert_float16_of(stored: np.ndarray, outputs: np.ndarray) -> None:
    """Stored values are the model's outputs rounded to float16. Extraction runs the model in
    batches and preprocesses on its own path, so a float32 output may differ in its last bits
    and round to the neighbouring float16: allow one float16 step, no more."""
    want = outputs.astype(np.float16).astype(np.float32)
    step = np.abs(np.spacing(want.astype(np.float16)).astype(np.float32))
    assert (np.abs(stored - want) <= step).all()
    assert (stored == want).mean() > 0.99


def _extract(npz, out, **kw):
    kw.setdefault("layers", ["conv", "act", "head"])
    return nc.extract("py:tiny_models:cnn_bundle", f"npz:{npz}", out, batch_size=32, chunk_size=64, topk=7,
                      progress=False, **kw)


def test_round_trip_reopens_with_the_same_content(tmp_path, npz):
    atlas = _extract(npz, tmp_path / "a")
    again = nc.open_atlas(tmp_path / "a")
    assert again.complete and again.n_inputs == 300 and again.snapshots == ["final"]
    assert [l.name for l in again.layers] == ["conv", "act", "head"]
    np.testing.assert_array_equal(again.activations("act")[:], atlas.activations("act")[:])
    assert again.activations("conv", stat="max").dtype == np.float16
    # stored values are the float16-rounded model outputs
    x = np.load(npz)["x"]
    model = tiny_models.cnn().eval()
    t = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        logits = model(t).numpy()
    _assert_float16_of(again.activations("head")[:], logits)
    table = again.inputs
    assert list(table["input_id"]) == list(range(300))
    assert (table["pred"].to_numpy() == logits.argmax(1)).all()
    np.testing.assert_allclose(table["confidence"], torch.softmax(torch.from_numpy(logits), 1).max(1).values,
                               rtol=1e-5)
    assert table["correct"].sum() == (logits.argmax(1) == np.load(npz)["y"]).sum()
    assert np.isfinite(table["loss"]).all()
    # lazy reads: a slice reads only what it needs and chunks iterate in order
    acts = again.activations("act")
    starts = [s for s, _ in acts.iter_chunks()]
    assert starts == [0, 64, 128, 192, 256]
    assert again.thumbnail(3).shape == (64, 64, 3)
    top = again.topk("act")
    assert top.values.shape == (7, 8)
    np.testing.assert_array_equal(top.values[0], again.activations("act")[:].max(0))


def test_summary_group_means_equal_full_mode_means(tmp_path, npz):
    full = _extract(npz, tmp_path / "full")
    summ = _extract(npz, tmp_path / "summ", mode="summary", sample_size=50, group_by=["label", "pred", "correct"])
    for layer, stat in (("conv", "mean"), ("conv", "max"), ("act", "mean")):
        for by in ("label", "pred", "correct"):
            a = full.group_stats(layer, by, stat=stat)
            b = summ.group_stats(layer, by, stat=stat)
            assert list(a.count.index) == list(b.count.index)
            np.testing.assert_array_equal(a.count.to_numpy(), b.count.to_numpy())
            np.testing.assert_allclose(a.mean.to_numpy(), b.mean.to_numpy(), rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(a.std.to_numpy(), b.std.to_numpy(), rtol=1e-6, atol=1e-7)
    # the same top-k either way, and the sample rows hold the full-mode values
    np.testing.assert_array_equal(full.topk("conv").input_ids, summ.topk("conv").input_ids)
    rows, values = summ.sample("act")
    assert len(rows) == 50 and len(set(rows)) == 50
    np.testing.assert_array_equal(values, full.activations("act")[rows])
    with pytest.raises(AtlasError, match="summary"):
        summ.activations("act")
    assert not (summ.root / "acts").exists()


def test_full_mode_refuses_a_layer_over_the_size_limit(tmp_path, npz):
    with pytest.raises(nc.UserError, match="--mode summary"):
        _extract(npz, tmp_path / "big", max_layer_bytes=1000)
    assert not (tmp_path / "big").exists()


def test_open_errors_are_clear(tmp_path, npz):
    with pytest.raises(AtlasError, match="does not exist"):
        nc.open_atlas(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match="no manifest.json"):
        nc.open_atlas(tmp_path / "empty")
    _extract(npz, tmp_path / "a")
    # schema mismatch
    bad = tmp_path / "schema"
    shutil.copytree(tmp_path / "a", bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["schema_version"] = 99
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AtlasError, match="schema version 99"):
        nc.open_atlas(bad)
    # shape mismatch
    bad = tmp_path / "shape"
    shutil.copytree(tmp_path / "a", bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["layers"][1]["n_neurons"] = 9
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AtlasError, match="9 neurons"):
        nc.open_atlas(bad)
    # a missing array
    bad = tmp_path / "missing"
    shutil.copytree(tmp_path / "a", bad)
    shutil.rmtree(bad / "acts" / "final" / "act")
    with pytest.raises(AtlasError, match="missing array"):
        nc.open_atlas(bad)
    # a truncated manifest
    bad = tmp_path / "corrupt"
    shutil.copytree(tmp_path / "a", bad)
    (bad / "manifest.json").write_text("{\"schema_ver")
    with pytest.raises(AtlasError, match="corrupt manifest"):
        nc.open_atlas(bad)


def test_limit_takes_a_seeded_subset_and_keeps_the_source_index(tmp_path, npz):
    a = _extract(npz, tmp_path / "a", limit=40, seed=3)
    b = _extract(npz, tmp_path / "b", limit=40, seed=3)
    assert a.n_inputs == 40
    src = a.inputs["source_index"].to_numpy()
    assert (np.diff(src) > 0).all() and src.max() < 300
    np.testing.assert_array_equal(src, b.inputs["source_index"].to_numpy())
    full = _extract(npz, tmp_path / "full")
    np.testing.assert_array_equal(a.activations("act")[:], full.activations("act")[src])


def test_snapshots_capture_each_checkpoint(tmp_path, npz):
    model = tiny_models.cnn()
    paths = []
    for epoch in (1, 2, 10):
        with torch.no_grad():
            model.head.weight.mul_(-1.0 if epoch == 2 else 1.5)
        path = tmp_path / f"epoch{epoch}.pt"
        torch.save(model.state_dict(), path)
        paths.append(path)
    atlas = _extract(npz, tmp_path / "a", layers=["head"], snapshots=str(tmp_path / "epoch*.pt"))
    assert atlas.snapshots == ["epoch1", "epoch2", "epoch10"]  # natural order
    x = np.load(npz)["x"]
    t = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    for name, path in zip(atlas.snapshots, paths):
        m = tiny_models.cnn()
        m.load_state_dict(torch.load(path))
        with torch.no_grad():
            want = m.eval()(t).numpy()
        _assert_float16_of(atlas.activations("head", snapshot=name)[:], want)
        assert (atlas.outputs(name)["pred"].to_numpy() == want.argmax(1)).all()
    assert not np.array_equal(atlas.outputs("epoch1")["pred"], atlas.outputs("epoch2")["pred"])


def test_reading_an_atlas_never_imports_torch(tmp_path, npz):
    import subprocess
    import sys

    _extract(npz, tmp_path / "a")
    code = ("import sys, neurocarta as nc; a = nc.open_atlas(sys.argv[1]); a.activations('act')[:5]; "
            "a.group_stats('act', 'label'); a.topk('conv'); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
