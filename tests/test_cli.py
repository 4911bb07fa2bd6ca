"""The command line: exit codes and one-line errors for bad input; info JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, run_env

import tiny_models

#: ``neurocarta ARGS`` in this process; the exit code and output are the process's (conftest.run_cli)
nc_cli = run_cli


def nc_process(*args):
    """``python -m neurocarta ARGS`` as its own process, for what only a process shows."""
    return subprocess.run([sys.executable, "-m", "neurocarta", *map(str, args)], env=run_env(),
                          capture_output=True, text=True)


def _claims_complete(out: Path) -> bool:
    m = out / "manifest.json"
    return m.exists() and json.loads(m.read_text()).get("complete", False)


def _one_line_error(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.startswith("neurocarta: error:")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return tiny_models.array_data(120, path=str(d / "d.npz"))


def test_extract_then_info_json(tmp_path, data):
    out = tmp_path / "a"
    r = nc_cli("extract", "--model", "py:tiny_models:slow_net", "--data", f"npz:{data}", "--layers", "fc*",
               "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    info = json.loads(nc_cli("info", out, "--json").stdout)
    assert info["complete"] is True and info["n_inputs"] == 120 and info["snapshots"] == ["final"]
    assert [(l["name"], l["kind"], l["n_neurons"]) for l in info["layers"]] == [("fc1", "dense", 16),
                                                                                ("fc2", "dense", 3)]
    # the same command again is a no-op on a complete atlas
    r = nc_cli("extract", "--model", "py:tiny_models:slow_net", "--data", f"npz:{data}", "--layers", "fc*",
               "--out", out, "--quiet")
    assert r.returncode == 0 and "already complete" in r.stderr
    # other settings into the same folder are refused
    r = nc_cli("extract", "--model", "py:tiny_models:slow_net", "--data", f"npz:{data}", "--layers", "fc1",
               "--out", out, "--quiet")
    assert "--overwrite" in _one_line_error(r)


def test_unknown_layer_lists_close_matches(tmp_path, data):
    out = tmp_path / "a"
    r = nc_cli("extract", "--model", "py:tiny_models:slow_net", "--data", f"npz:{data}", "--layers", "fc3",
               "--out", out)
    line = _one_line_error(r)
    assert "'fc3'" in line and "fc1" in line and "fc2" in line
    assert not _claims_complete(out)


@pytest.mark.parametrize("model,data_spec,needle", [
    ("no-such-model", "npz:{data}", "unknown model spec"),
    ("py:tiny_models:slow_net", "nosuch:thing", "unknown data spec"),
    ("py:tiny_models:slow_net", "npz:/no/such/file.npz", "does not exist"),
    ("file:/no/such/model.pt", "npz:{data}", "does not exist"),
    ("py:no_such_module:fn", "npz:{data}", "cannot import"),
    ("py:tiny_models:slow_net", "shapes:n=10,colour=blue", "unknown option"),
])
def test_bad_specs_exit_2_with_one_line(tmp_path, data, model, data_spec, needle):
    out = tmp_path / "a"
    r = nc_cli("extract", "--model", model, "--data", data_spec.format(data=data), "--out", out)
    assert needle in _one_line_error(r)
    assert not _claims_complete(out)


def test_nan_activations_fail_and_leave_no_complete_atlas(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    x[:, 0] = np.abs(x[:, 0])
    x[150, 0] = -1.0  # this input gets NaN outputs
    np.savez(tmp_path / "d.npz", x=x)
    out = tmp_path / "a"
    r = nc_cli("extract", "--model", "py:tiny_models:nan_net", "--data", f"npz:{tmp_path / 'd.npz'}",
               "--layers", "fc", "--out", out, "--chunk-size", "64", "--quiet")
    line = _one_line_error(r)
    assert "150" in line and "NaN" in line
    assert not _claims_complete(out)
    info = json.loads(nc_cli("info", out, "--json").stdout)
    assert info["complete"] is False and info["inputs_done"] == 128


def test_corrupt_atlas_gives_exit_2(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("not json")
    # the process itself exits 2 with the one line (`python -m neurocarta`)
    assert "corrupt" in _one_line_error(nc_process("info", tmp_path / "bad"))
    assert "no manifest.json" in _one_line_error(nc_cli("info", tmp_path))


def test_layers_lists_names_and_shapes(data):
    r = nc_cli("layers", "--model", "py:tiny_models:slow_net", "--data", f"npz:{data}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["fc1", "Linear"] and "(16,)" in lines[0]
    assert any(l.startswith("fc2") and "(3,)" in l for l in lines)


def test_layers_of_demo_cnn_do_not_train_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROCARTA_CACHE", str(tmp_path / "cache"))
    r = nc_cli("layers", "--model", "demo-cnn", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["features.block1"]["output"] == "tensor (16, 32, 32)"
    assert rows["head.fc2"]["output"] == "tensor (8,)"
    assert not (tmp_path / "cache").exists()
