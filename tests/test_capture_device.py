"""The GPU path of capture (issue 17), tested on the CPU: the hooks' reductions are torch code
that runs on the output's own device (shown on the "meta" device, which has no data, so any
numpy conversion or host copy there would fail), they give the numbers of a numpy reference,
and only reduced tensors reach the host step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neurocarta as nc
from neurocarta.capture import host, reductions
from neurocarta.capture.device import pick_device
from neurocarta.capture.hooks import capture_output
from neurocarta.capture.layers import LayerRef


def test_conv_summary_matches_numpy_and_stays_on_the_device():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6).relu()
    x[0, 1] = 0.0  # a dead channel: argmax 0
    out = reductions.conv_summary(x)
    a = x.numpy().reshape(3, 4, 30)
    np.testing.assert_allclose(out["mean"].numpy(), a.mean(axis=2), rtol=1e-6)
    np.testing.assert_array_equal(out["max"].numpy(), a.max(axis=2))
    np.testing.assert_array_equal(out["argmax"].numpy(), a.argmax(axis=2))
    meta = reductions.conv_summary(torch.empty(64, 128, 32, 32, device="meta"))
    assert {k: (v.device.type, tuple(v.shape)) for k, v in meta.items()} == {
        k: ("meta", (64, 128)) for k in ("mean", "max", "argmax")}


@pytest.mark.parametrize("how", ["mean", "max", "cls"])
def test_pool_sequence_matches_numpy_over_the_kept_tokens(how):
    torch.manual_seed(1)
    v = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    got = reductions.pool_sequence(v, mask, how).numpy()
    a, m = v.numpy(), mask.numpy()
    for b in range(3):
        kept = a[b][m[b]]
        want = {"cls": a[b, 0], "mean": kept.mean(0) if len(kept) else np.zeros(4),
                "max": kept.max(0) if len(kept) else np.zeros(4)}[how]
        np.testing.assert_allclose(got[b], want, rtol=1e-6, atol=1e-7)
    assert reductions.pool_sequence(torch.empty(8, 16, 32, device="meta"), torch.ones(8, 16, dtype=torch.bool,
                                    device="meta"), how).shape == (8, 32)


def test_hooks_reduce_on_the_outputs_device():
    """Every kind of layer output is reduced without leaving its device."""
    conv = capture_output(torch.empty(8, 16, 10, 10, device="meta"), LayerRef("c"))
    assert conv.kind == "conv" and conv.shape == (16, 10, 10)
    assert all(t.device.type == "meta" and t.shape == (8, 16) for t in (conv.mean, conv.max, conv.argmax))
    pooled = capture_output(torch.empty(8, 12, 32, device="meta"), LayerRef("s"),
                            torch.ones(8, 12, dtype=torch.bool, device="meta"), pool="mean")
    assert pooled.pooled and pooled.value.device.type == "meta" and pooled.value.shape == (8, 32)
    dense = capture_output(torch.empty(8, 32, device="meta"), LayerRef("d"))
    assert dense.value.device.type == "meta" and dense.value.shape == (8, 32)
    rows = capture_output(torch.arange(24.0).reshape(2, 3, 4), LayerRef("s"),
                          torch.tensor([[True, False, True], [False, True, False]]))
    assert rows.selected and rows.value.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11], [16, 17, 18, 19]]


def test_round_to_host_rounds_copies_and_names_the_first_non_finite_block():
    values = torch.tensor([[1.0, 2.0 ** -30], [70000.0, 3.0]])
    out, bad = host.round_to_host({"a": values[:1], "b": values[1:]}, {"i": torch.tensor([7])}, torch.float16)
    assert bad == "b"  # 70000 overflows float16
    assert out["a"].dtype == np.float16 and out["a"].tolist() == [[1.0, 0.0]]
    assert out["i"].tolist() == [7]
    out, bad = host.round_to_host({"a": values}, {}, torch.float32)
    assert bad is None and out["a"].dtype == np.float32 and out["a"][1, 0] == 70000.0
    _, bad = host.round_to_host({"a": torch.ones(2), "b": torch.tensor([float("nan")])}, {}, torch.float32)
    assert bad == "b"


def test_only_reduced_values_reach_the_host_step(tmp_path, monkeypatch):
    """An extraction hands the host step tensors of at most batch x channels values per
    block (conv maps reduced, outputs as per-input vectors), never a feature map."""
    import tiny_models

    seen: list[tuple[int, ...]] = []
    copy = host.copy_to_host

    def recording(tensors):
        seen.extend(tuple(t.shape) for t in tensors.values())
        return copy(tensors)

    monkeypatch.setattr(host, "copy_to_host", recording)
    atlas = nc.extract(tiny_models.cnn_bundle(), "shapes:n=20", tmp_path / "a", layers=["conv", "fc", "head"],
                       batch_size=8, progress=False)
    assert seen and atlas.manifest.complete
    widest = max(i.n_neurons for i in atlas.manifest.layers)
    assert all(len(s) <= 1 or (len(s) == 2 and s[0] <= 8 and s[1] <= widest) for s in seen), seen
    assert any(len(s) == 2 and s[1] == widest for s in seen)


def test_auto_device_is_the_cpu_here_and_cuda_without_cuda_is_one_clear_error():
    assert pick_device("auto") == torch.device("cpu" if not torch.cuda.is_available() else "cuda") or \
        pick_device("auto").type == "mps"
    if not torch.cuda.is_available():
        with pytest.raises(nc.UserError, match="CUDA is not available here; use --device cpu"):
            pick_device("cuda")
