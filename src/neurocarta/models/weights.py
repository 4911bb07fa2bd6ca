"""Pretrained weights from the network, through one helper so every failure reads the same.

neurocarta downloads nothing unless a model spec says ``pretrained``. Then every weight
download runs inside :func:`fetch_weights`, which turns a failure to fetch (no network, a
proxy, a missing file on the server, a corrupt download) into one :class:`SpecError` line:
which file is missing, where it was looked for, and the two ways to supply it by hand
(a local file in the spec, or the file placed in the cache).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlparse

import torch

from ..errors import SpecError

T = TypeVar("T")


def hub_checkpoints() -> Path:
    """The folder torch hub (and torchvision) keep downloaded weights in: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_weights(download: Callable[[], T], *, spec: str, file: str, where: str | Path, local_form: str,
                  errors: tuple[type[BaseException], ...] = (OSError,)) -> T:
    """Run ``download`` (anything that fetches weights); a failure to fetch becomes a SpecError.

    ``file`` names the missing weights, ``where`` is the cache it was looked for in, and
    ``local_form`` is the spec that takes a local copy instead, with ``PATH`` in it (e.g.
    ``torchvision:resnet18:PATH``). ``errors`` are the exception types that mean "could not
    fetch": network errors (``URLError``, ``HTTPError``, timeouts, connection and Hugging
    Face hub errors) are all ``OSError``.
    """
    try:
        return download()
    except errors as e:
        reason = " ".join(f"{type(e).__name__}: {e}".split())  # one line, whatever the library wrote
        raise SpecError(
            f"cannot get the pretrained weights for {spec}: {file} is not in {where} and fetching it failed "
            f"({reason}); download it where there is network and put it in {where}, or pass the local "
            f"file with --weights /path/to/{Path(file).name} (in the spec: "
            f"{local_form.replace('PATH', '/path/to/' + Path(file).name)})"
        ) from e


def cached_download(url: str, *, spec: str, local_form: str, progress: bool = True) -> Path:
    """The weights file at ``url`` in the torch hub cache, downloaded there first if missing.

    The cache is the one ``torch.hub.load_state_dict_from_url`` reads, so torchvision then
    loads the file without going to the network again. A file name with a hash part
    (``resnet18-f37072fd.pth``) is checked against it, as torch hub does.
    """
    name = os.path.basename(urlparse(url).path)
    folder = hub_checkpoints()
    path = folder / name
    if path.is_file():
        return path

    def download() -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        match = torch.hub.HASH_REGEX.search(name)
        # a hash mismatch is a RuntimeError; torch writes to a temporary file, so nothing half-done stays
        torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None, progress=progress)
        return path

    return fetch_weights(download, spec=spec, file=name, where=folder, local_form=local_form,
                         errors=(OSError, RuntimeError))
