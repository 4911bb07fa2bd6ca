"""A module that runs several times per forward pass (issue 14, bug 7): ``neurocarta layers``
lists every call with its own shape, ``act#N`` captures exactly that call, and a bare name
warns which call it records."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import neurocarta as nc
from neurocarta.capture import list_layers, resolve_layers
from neurocarta.capture.links import find_link_modules
from neurocarta.capture.receptive import receptive_fields
from neurocarta.cli import main
from neurocarta.errors import LayerError

import tiny_models

MODEL = "py:tiny_models:reused_act"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return tiny_models.array_data(12, path=str(tmp_path_factory.mktemp("reused") / "x.npz"))


def _each_call(data: str) -> list[np.ndarray]:
    """The three outputs of ``act``, computed by hand."""
    m = tiny_models.reused_act()
    x = torch.from_numpy(np.load(data)["x"])
    with torch.no_grad():
        a0 = torch.tanh(m.fc1(x))
        a1 = torch.tanh(m.fc2(a0))
        a2 = torch.tanh(m.fc3(a1))
    return [a.numpy() for a in (a0, a1, a2)]


def test_layers_lists_every_call_with_its_own_shape(data):
    rows = {r.name: r for r in list_layers(MODEL, f"npz:{data}")}
    assert [rows[f"act#{i}"].output for i in range(3)] == ["tensor (8,)", "tensor (6,)", "tensor (5,)"]
    assert "act" not in rows and rows["act#2"].type == "Tanh"
    assert rows["fc2"].output == "tensor (6,)"  # a module run once keeps its plain name


def test_cli_layers_prints_one_row_per_call(data, capsys):
    assert main(["layers", "--model", MODEL, "--data", f"npz:{data}"]) == 0
    acts = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("act")]
    assert [(a[0], a[-1]) for a in acts] == [("act#0", "(8,)"), ("act#1", "(6,)"), ("act#2", "(5,)")]


def test_extracting_one_call_stores_that_call_without_a_warning(data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # naming the call is the fix the warning asks for: no warning
        atlas = nc.extract(MODEL, f"npz:{data}", tmp_path / "a", layers=["act#1"], progress=False)
    assert [(l.name, l.output_shape) for l in atlas.layers] == [("act#1", [6])]
    np.testing.assert_allclose(atlas.activations("act#1")[:], _each_call(data)[1], rtol=1e-3, atol=1e-3)


def test_a_bare_reused_module_warns_which_call_it_records(data, tmp_path):
    with pytest.warns(UserWarning, match=r"'act' runs 3 times and records its last call 'act#2'.*--layers 'act#0'"):
        atlas = nc.extract(MODEL, f"npz:{data}", tmp_path / "a", layers=["act"], progress=False)
    np.testing.assert_allclose(atlas.activations("act")[:], _each_call(data)[2], rtol=1e-3, atol=1e-3)


def test_a_call_that_does_not_run_is_a_clear_error(data, tmp_path):
    with pytest.raises(LayerError, match=r"'act#3' names call #3, but module 'act' runs 3 times .*#0 to #2"):
        nc.extract(MODEL, f"npz:{data}", tmp_path / "a", layers=["act#3"], progress=False)
    with pytest.raises(LayerError, match="cannot read the call index in 'act#one'"):
        resolve_layers(tiny_models.reused_act(), ["act#one"])


def test_weight_links_join_the_named_calls():
    model, x = tiny_models.reused_act(), torch.zeros(1, 4)
    links = find_link_modules(model, x, ["act#0", "act#1", "act#2"])
    assert links == {("act#0", "act#1"): "fc2", ("act#1", "act#2"): "fc3"}


def test_receptive_fields_follow_the_named_call():
    torch.manual_seed(0)
    relu = nn.ReLU()  # one module after both convs: 3x3 then 5x5 input pixels per unit
    model = nn.Sequential(OrderedDict(c1=nn.Conv2d(1, 2, 3, padding=1), act=relu,
                                      c2=nn.Conv2d(2, 2, 3, padding=1), again=relu))
    refs = resolve_layers(model, ["act#0", "act#1"])
    assert receptive_fields(model, refs, torch.zeros(1, 1, 16, 16)) == {"act#0": 3, "act#1": 5}
