"""Scale-out: extraction on Dask workers equals a single-process run, survives a killed
worker and a killed coordinator, and atlases live at fsspec URLs (memory:// here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import zarr
import pytest

import neurocarta as nc
from conftest import run_cli, run_env

import tiny_models

IMAGE_KW = dict(layers=["conv", "act", "head"], batch_size=16, chunk_size=32, topk=7, progress=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    rng = np.random.default_rng(11)
    path = tmp_path_factory.mktemp("scale-data") / "img.npz"
    np.savez(path, x=rng.integers(0, 256, size=(400, 6, 6, 3)).astype(np.uint8), y=rng.integers(0, 4, 400))
    return f"npz:{path}"


@pytest.fixture(scope="module")
def client():
    """A running two-process cluster, as `--scheduler ADDRESS` finds one."""
    from distributed import Client, LocalCluster

    env = run_env()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0",
                      env={"PYTHONPATH": env["PYTHONPATH"]}) as cluster, Client(cluster) as c:
        yield c


def assert_same_atlas(a, b, full=True):
    assert a.complete and b.complete and a.n_inputs == b.n_inputs
    for info in a.layers:
        stats = ("mean", "max") if info.kind == "conv" else ("mean",)
        if full:
            for stat in stats:
                np.testing.assert_array_equal(a.activations(info.name, stat=stat)[:],
                                              b.activations(info.name, stat=stat)[:])
            if info.kind == "conv":
                np.testing.assert_array_equal(a.argmax(info.name), b.argmax(info.name))
        ta, tb = a.topk(info.name), b.topk(info.name)
        for f in ("values", "input_ids", "rows", "positions"):
            np.testing.assert_array_equal(getattr(ta, f), getattr(tb, f))
    assert a.outputs().equals(b.outputs())
    assert a.inputs.equals(b.inputs)
    if a.has_thumbnails:
        np.testing.assert_array_equal(a.thumbnails(range(a.n_inputs)), b.thumbnails(range(b.n_inputs)))


def test_two_local_workers_equal_a_single_process_run(tmp_path, images):
    one = nc.extract("py:tiny_models:cnn_bundle", images, tmp_path / "one", **IMAGE_KW)
    two = nc.extract("py:tiny_models:cnn_bundle", images, tmp_path / "two", workers=2, shard_size=64, **IMAGE_KW)
    assert_same_atlas(one, two)
    # thumbnails are chunked by a divisor of the chunk size, so shards never share a chunk
    thumbs = zarr.open_group(str(two.root), mode="r")["thumbnails"]
    assert IMAGE_KW["chunk_size"] % thumbs.chunks[0] == 0


def test_summary_mode_on_a_cluster_merges_topk_stats_and_sample(tmp_path, images, client):
    kw = dict(IMAGE_KW, mode="summary", group_by=["label", "pred"], sample_size=90)
    one = nc.extract("py:tiny_models:cnn_bundle", images, tmp_path / "one", **kw)
    two = nc.extract("py:tiny_models:cnn_bundle", images, tmp_path / "two", scheduler=client, **kw)
    assert_same_atlas(one, two, full=False)
    for layer in ("conv", "act"):
        ra, va = one.sample(layer)
        rb, vb = two.sample(layer)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(va, vb)
        assert len(ra) == 90
        for by in ("label", "pred"):
            sa, sb = one.group_stats(layer, by), two.group_stats(layer, by)
            assert list(sa.count.index) == list(sb.count.index)
            np.testing.assert_array_equal(sa.count.to_numpy(), sb.count.to_numpy())
            np.testing.assert_allclose(sa.mean.to_numpy(), sb.mean.to_numpy(), rtol=1e-12)
            np.testing.assert_allclose(sa.std.to_numpy(), sb.std.to_numpy(), rtol=1e-9, atol=1e-12)


def test_cli_scheduler_address_and_clear_errors(tmp_path, images, client):
    address = client.scheduler.address
    args = ["extract", "--model", "py:tiny_models:cnn_bundle", "--data", images,
            "--layers", "conv", "head", "--batch-size", "16", "--chunk-size", "32", "--quiet"]
    cmd = [sys.executable, "-m", "neurocarta", *args]
    run = subprocess.run(cmd + ["--out", str(tmp_path / "a"), "--scheduler", address],
                         env=run_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    ref = nc.extract("py:tiny_models:cnn_bundle", images, tmp_path / "ref", layers=["conv", "head"],
                     batch_size=16, chunk_size=32, progress=False)
    assert_same_atlas(ref, nc.open_atlas(tmp_path / "a"))
    # the same arguments in-process (conftest.run_cli): these two stop before any work
    bad = run_cli(*args, "--out", tmp_path / "b", "--workers", "2", "--shard-size", "40")
    assert bad.returncode != 0 and "multiple of --chunk-size" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
    mem = run_cli(*args, "--out", "memory://nc/x", "--workers", "2")
    assert mem.returncode != 0 and "memory:// store lives inside one process" in mem.stderr


def _slow_args(data, out, *extra):
    return ["extract", "--model", "py:tiny_models:slow_net",
            "--data", f"npz:{data}", "--layers", "fc1", "act", "fc2", "--out", str(out),
            "--batch-size", "16", "--chunk-size", "32", "--topk", "9", "--quiet", *extra]


def _slow_cmd(data, out, *extra):
    """The extraction as a process of its own, to be killed; reference runs are in-process (run_cli)."""
    return [sys.executable, "-m", "neurocarta", *_slow_args(data, out, *extra)]


def test_a_killed_worker_loses_and_duplicates_nothing(tmp_path, client):
    data = tiny_models.array_data(640, path=str(tmp_path / "d.npz"))
    ref = run_cli(*_slow_args(data, tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    pids = client.run(os.getpid)
    out = tmp_path / "killed"
    errors: list[BaseException] = []

    def run():
        try:
            nc.extract("py:tiny_models:slow_net", f"npz:{data}", out, layers=["fc1", "act", "fc2"], batch_size=16,
                       chunk_size=32, topk=9, progress=False, scheduler=client, shard_size=64)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and done < 64:
        try:
            done = json.loads((out / "progress.json").read_text()).get("n_done", 0)
        except (OSError, json.JSONDecodeError):
            done = 0
        time.sleep(0.02)
    assert 0 < done < 640, "the run should be killed midway"
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    worker.join(timeout=300)
    assert not worker.is_alive() and not errors, errors
    assert victim not in client.run(os.getpid).values()  # a worker really died (the nanny restarted it)
    assert_same_atlas(nc.open_atlas(tmp_path / "ref"), nc.open_atlas(out))


def test_a_killed_coordinator_resumes_with_workers(tmp_path):
    data = tiny_models.array_data(640, path=str(tmp_path / "d.npz"))
    ref = run_cli(*_slow_args(data, tmp_path / "ref", "--mode", "summary", "--group-by", "label"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    cmd = _slow_cmd(data, out, "--mode", "summary", "--group-by", "label", "--workers", "2", "--shard-size", "64")
    proc = subprocess.Popen(cmd, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 180
    progress = {}
    while time.time() < deadline:
        try:
            progress = json.loads((out / "progress.json").read_text())
        except (OSError, json.JSONDecodeError):
            progress = {}
        if progress.get("n_done", 0) >= 128 or proc.poll() is not None:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its local workers, as a crashed machine
    proc.wait()
    assert 0 < progress["n_done"] < 640 and progress["shards"]
    rerun = subprocess.run(cmd, env=run_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    a, b = nc.open_atlas(tmp_path / "ref"), nc.open_atlas(out)
    assert_same_atlas(a, b, full=False)
    for layer in ("fc1", "fc2"):
        sa, sb = a.group_stats(layer, "label"), b.group_stats(layer, "label")
        np.testing.assert_array_equal(sa.count.to_numpy(), sb.count.to_numpy())
        np.testing.assert_allclose(sa.mean.to_numpy(), sb.mean.to_numpy(), rtol=1e-12)


def test_memory_store_round_trip(tmp_path, images):
    local = nc.extract("py:tiny_models:cnn_bundle", images, tmp_path / "local", **IMAGE_KW)
    url = "memory://neurocarta-tests/round-trip"
    made = nc.extract("py:tiny_models:cnn_bundle", images, url, **IMAGE_KW)
    assert made.url == url and not (tmp_path / "memory:").exists()
    again = nc.open_atlas(url)
    assert_same_atlas(local, again)
    # a rerun finds it complete; method results round-trip inside the store
    assert nc.extract("py:tiny_models:cnn_bundle", images, url, **IMAGE_KW).complete
    import pandas as pd

    again.save_map("demo", "first", {"t": pd.DataFrame({"a": [1, 2, 3]})}, {"note": "x"})
    tables, meta = nc.open_atlas(url).load_map("demo", "first")
    assert tables["t"]["a"].tolist() == [1, 2, 3] and meta == {"note": "x"} and again.maps("demo") == ["first"]
    with pytest.raises(nc.AtlasError, match="remote store"):
        _ = again.root
    with pytest.raises(nc.AtlasError, match="no atlas at memory://neurocarta-tests/none"):
        nc.open_atlas("memory://neurocarta-tests/none")


def test_summary_memory_store_and_overwrite(images):
    url = "memory://neurocarta-tests/summary"
    kw = dict(IMAGE_KW, mode="summary", group_by=["label"], sample_size=50)
    a = nc.extract("py:tiny_models:cnn_bundle", images, url, **kw)
    rows, values = a.sample("act")
    assert len(rows) == 50 and values.shape == (50, 8)
    assert a.group_stats("act", "label").count.sum() == 400
    b = nc.extract("py:tiny_models:cnn_bundle", images, url, overwrite=True, **dict(kw, topk=3))
    assert b.topk("act").k == 3


def test_remote_urls_never_show_credentials():
    from neurocarta.store.location import Location

    assert Location._strip("s3://KEY:SECRET@bucket/atlas") == "s3://bucket/atlas"
    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(nc.UserError) as e:
            Location("s3://KEY:SECRET@bucket/atlas")
        assert "SECRET" not in str(e.value) and "neurocarta[s3]" in str(e.value)


def test_python_objects_reach_the_workers(tmp_path, images, client):
    """A module and a DataSource given as objects (not specs) are sent to the workers."""
    from neurocarta.data import load_data

    model, source = tiny_models.cnn(), load_data(images)
    one = nc.extract(model, source, tmp_path / "one", **IMAGE_KW)
    two = nc.extract(tiny_models.cnn(), load_data(images), tmp_path / "two", scheduler=client, **IMAGE_KW)
    assert_same_atlas(one, two)
