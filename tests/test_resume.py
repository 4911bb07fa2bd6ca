"""Kill extraction with SIGKILL mid-run, rerun the same command, get identical arrays."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import neurocarta as nc
from conftest import run_cli, run_env

import tiny_models


def _args(data, out, mode):
    return ["extract", "--model", "py:tiny_models:slow_net",
            "--data", f"npz:{data}", "--layers", "fc1", "act", "fc2", "--out", str(out),
            "--batch-size", "16", "--chunk-size", "32", "--topk", "9", "--mode", mode, "--quiet",
            "--sample-size", "100", "--group-by", "label", "pred"]


def _cmd(data, out, mode):
    """The extraction as a process of its own, for SIGKILL; the other runs are in-process (run_cli)."""
    return [sys.executable, "-m", "neurocarta", *_args(data, out, mode)]


def _kill_midway(cmd, out, at_least):
    proc = subprocess.Popen(cmd, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline:
        try:
            done = json.loads((out / "progress.json").read_text()).get("n_done", 0)
        except (OSError, json.JSONDecodeError):
            done = 0
        if done >= at_least:
            break
        if proc.poll() is not None:
            pytest.fail(f"extraction ended before it could be killed: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return done


@pytest.mark.parametrize("mode", ["full", "summary"])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, mode):
    data = tiny_models.array_data(800, path=str(tmp_path / "d.npz"))
    ref = run_cli(*_args(data, tmp_path / "ref", mode))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    done = _kill_midway(_cmd(data, out, mode), out, at_least=160)
    assert 0 < done < 800
    info = run_cli("info", out, "--json")
    state = json.loads(info.stdout)
    assert state["complete"] is False and state["inputs_done"] >= done
    plain = run_cli("info", out)
    assert f"incomplete: {state['inputs_done']} of 800 inputs" in plain.stdout
    with pytest.raises(nc.AtlasError, match="incomplete"):
        nc.open_atlas(out)
    again = run_cli(*_args(data, out, mode))  # the same command again, after the kill
    assert again.returncode == 0, again.stderr
    b = nc.open_atlas(out)
    _assert_same_atlas(nc.open_atlas(tmp_path / "ref"), b, mode)
    assert len(b.inputs) == 800 and b.inputs["input_id"].is_unique


def _assert_same_atlas(a, b, mode):
    """What an interrupted and resumed run must share with an uninterrupted one. Group sums
    are float64 added in another order (commits cut the rows differently), so they agree to
    rounding; everything else is equal."""
    for layer in ("fc1", "act", "fc2"):
        ta, tb = a.topk(layer), b.topk(layer)
        np.testing.assert_array_equal(ta.values, tb.values)
        np.testing.assert_array_equal(ta.input_ids, tb.input_ids)
        if mode == "full":
            np.testing.assert_array_equal(a.activations(layer)[:], b.activations(layer)[:])
        else:
            np.testing.assert_array_equal(a.sample(layer)[1], b.sample(layer)[1])
            for by in ("label", "pred"):
                ga, gb = a.group_stats(layer, by), b.group_stats(layer, by)
                np.testing.assert_array_equal(ga.count.to_numpy(), gb.count.to_numpy())
                np.testing.assert_allclose(ga.mean.to_numpy(), gb.mean.to_numpy(), rtol=1e-12)
    pd.testing.assert_frame_equal(a.inputs, b.inputs)


# ---------------------------------------------------------------- progress and timed commits (issue 14, bug 8)
def _mlp_extract(data, out, **kw):
    return nc.extract("py:tiny_models:mlp", data, out, layers=["fc1", "act", "fc2"], batch_size=10,
                      chunk_size=1024, topk=7, sample_size=50, group_by=["label", "pred"], progress=False, **kw)


def test_progress_moves_per_batch_on_a_run_smaller_than_a_chunk(tmp_path, monkeypatch):
    """378 images in one 1,024-input chunk sat at 0% until the end: the bar moves per batch."""
    import neurocarta.capture.extraction as extraction
    from tqdm.auto import tqdm

    updates = []

    class CountingBar(tqdm):
        def update(self, n=1):
            updates.append(n)
            return super().update(n)

    monkeypatch.setattr(extraction, "tqdm", CountingBar)
    data = tiny_models.array_data(95, path=str(tmp_path / "d.npz"))
    nc.extract("py:tiny_models:mlp", f"npz:{data}", tmp_path / "a", layers=["fc1"], batch_size=10,
               chunk_size=1024, progress=True)
    assert updates == [10] * 9 + [5]


@pytest.mark.parametrize("mode", ["full", "summary"])
def test_an_interrupt_inside_the_first_chunk_keeps_the_committed_batches(tmp_path, mode):
    """Commits come every ``commit_every`` seconds of work, not only at chunk ends: a Ctrl-C
    before the first (and only) chunk ends keeps the batches done, and a rerun completes an
    atlas equal to an uninterrupted one."""
    from neurocarta.data import load_data

    data = tiny_models.array_data(200, path=str(tmp_path / "d.npz"))
    spec = f"npz:{data}"
    clean = _mlp_extract(spec, tmp_path / "clean", mode=mode)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        _mlp_extract(tiny_models.StopsAt(load_data(spec), stop_at=60), out, mode=mode, commit_every=0)
    progress = json.loads((out / "progress.json").read_text())
    assert progress["shards"] == [[0, 60]] and progress["n_done"] == 60  # six batches, inside chunk 0
    again = _mlp_extract(spec, out, mode=mode, commit_every=0.05)
    _assert_same_atlas(clean, again, mode)


def test_commit_every_must_not_be_negative(tmp_path):
    data = tiny_models.array_data(20, path=str(tmp_path / "d.npz"))
    r = run_cli("extract", "--model", "py:tiny_models:mlp", "--data", f"npz:{data}", "--out", tmp_path / "a",
                "--commit-every", "-1", "--quiet")
    assert r.returncode == 2
    assert r.stderr.strip() == "neurocarta: error: --commit-every must be 0 or more seconds, not -1.0"
