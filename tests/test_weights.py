"""Pretrained weights without network (issue 14, bug 5): every weight download goes through
``models.weights.fetch_weights``, so a failure is one line (exit 2) naming the missing file,
the cache it was looked for in, and how to supply it; a local file or a filled cache works offline.

torchvision's PyPI build does not import beside the CPU torch used here, so a small stand-in
for ``torchvision.models`` reads its weights the way torchvision does: through
``torch.hub.load_state_dict_from_url``, whose downloader the tests replace by one that fails.
"""

from __future__ import annotations

import sys
import types
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace
from urllib.error import URLError

import pytest
import torch
from torch import nn

from neurocarta.cli import main
from neurocarta.errors import SpecError
from neurocarta.models import load_model
from neurocarta.models.weights import cached_download, fetch_weights

URL = "https://download.pytorch.org/models/tinynet-0123abcd.pth"
FILE = "tinynet-0123abcd.pth"


def _tinynet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), pool=nn.AdaptiveAvgPool2d(1),
                                     flat=nn.Flatten(), fc=nn.Linear(4, 2)))


def _trained() -> dict[str, torch.Tensor]:
    return {k: torch.full_like(v, 0.5) for k, v in _tinynet().state_dict().items()}


class _Weights:
    url = URL

    def get_state_dict(self, progress: bool = True) -> dict:
        return torch.hub.load_state_dict_from_url(self.url, progress=progress, check_hash=True)


def _get_model(name: str, weights=None) -> nn.Module:
    if name != "tinynet":
        raise ValueError(f"Unknown model {name}")
    model = _tinynet()
    if weights is not None:
        model.load_state_dict((_Weights() if weights == "DEFAULT" else weights).get_state_dict())
    return model


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """No network, an empty torch hub cache under tmp_path, and the torchvision stand-in.
    Returns the cache's checkpoints folder."""
    tvm = types.ModuleType("torchvision.models")
    tvm.get_model = _get_model
    tvm.get_model_weights = lambda name: SimpleNamespace(DEFAULT=_Weights())
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(models=tvm))
    monkeypatch.setitem(sys.modules, "torchvision.models", tvm)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub" / "checkpoints"


def test_the_helper_turns_a_failed_download_into_one_line_saying_what_and_where():
    def fails():
        raise URLError("<urlopen error [Errno -3]\nTemporary failure in name resolution>")
    with pytest.raises(SpecError) as err:
        fetch_weights(fails, spec="torchvision:resnet18:pretrained", file="resnet18-f37072fd.pth",
                      where="/cache/checkpoints", local_form="torchvision:resnet18:PATH")
    msg = str(err.value)
    assert "\n" not in msg and "URLError" in msg and "Temporary failure" in msg
    assert "resnet18-f37072fd.pth is not in /cache/checkpoints" in msg
    assert "put it in /cache/checkpoints" in msg and "torchvision:resnet18:/path/to/resnet18-f37072fd.pth" in msg


def test_cached_download_reports_the_file_and_the_torch_hub_cache(offline):
    with pytest.raises(SpecError, match=rf"{FILE} is not in {offline} .*URLError.*torchvision:tinynet:/path/to/{FILE}"):
        cached_download(URL, spec="torchvision:tinynet:pretrained", local_form="torchvision:tinynet:PATH")


def test_cached_download_uses_the_cache_and_downloads_once(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    fetched = []

    def download(url, dst, hash_prefix=None, progress=True):
        fetched.append((url, hash_prefix))
        torch.save(_trained(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    for _ in range(2):
        path = cached_download(URL, spec="s", local_form="k:PATH", progress=False)
    assert path == tmp_path / "hub" / "checkpoints" / FILE and path.is_file()
    assert fetched == [(URL, "0123abcd")]  # the second call found the file; the hash part is checked


def test_cli_offline_pretrained_is_exit_2_with_one_line(offline, capsys):
    assert main(["layers", "--model", "torchvision:tinynet:pretrained"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("neurocarta: error: cannot get the pretrained weights")
    assert FILE in err and str(offline) in err and f"torchvision:tinynet:/path/to/{FILE}" in err


def test_weights_in_the_cache_or_a_local_file_load_offline(offline, tmp_path):
    offline.mkdir(parents=True)
    torch.save(_trained(), offline / FILE)
    cached = load_model("torchvision:tinynet:pretrained").module
    local_file = tmp_path / "mine.pth"
    torch.save(_trained(), local_file)
    local = load_model(f"torchvision:tinynet:{local_file}").module
    for module in (cached, local):
        assert all(torch.equal(v, torch.full_like(v, 0.5)) for v in module.state_dict().values())
    (tmp_path / "other.pth").write_text("junk\n")
    with pytest.raises(SpecError, match="cannot load .*other.pth into torchvision:tinynet"):
        load_model(f"torchvision:tinynet:{tmp_path / 'other.pth'}")
    with pytest.raises(SpecError, match="does not exist"):
        load_model(f"torchvision:tinynet:{tmp_path / 'missing.pth'}")


def test_timm_hub_failures_name_the_repo_and_the_hugging_face_cache(monkeypatch):
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    def create_model(name, pretrained=False, **kwargs):
        if pretrained:
            raise LocalEntryNotFoundError("cannot find the requested files in the disk cache")
        return _tinynet()
    cfg = SimpleNamespace(hf_hub_id="timm/tinynet.a1_in1k", url=None)
    timm = types.SimpleNamespace(create_model=create_model,
                                 models=SimpleNamespace(get_pretrained_cfg=lambda name: cfg))
    monkeypatch.setitem(sys.modules, "timm", timm)
    with pytest.raises(SpecError, match=rf"timm/tinynet.a1_in1k .* not in {constants.HF_HUB_CACHE} .*timm:tinynet:/path"):
        load_model("timm:tinynet:pretrained")
