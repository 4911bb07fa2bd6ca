"""``torchvision:NAME[:WEIGHTS]`` and ``timm:NAME[:WEIGHTS]``: ImageNet models from those libraries.

``WEIGHTS`` is empty (random weights, with a note), ``pretrained`` (the library's default
weights, from the local torch hub or Hugging Face cache, fetched through
:func:`~neurocarta.models.weights.fetch_weights` when they are not cached yet) or the path of
a local weights file (a state dict, for machines without network). ``--weights FILE``
(``weights=`` in Python) is the same local file, given beside the spec.

Both libraries' classifiers are ImageNet-1k models: the bundle names their 1,000 classes
(models/classes.py), so predictions read ``tabby``, not ``281``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import SpecError
from ..specs import existing_path
from .base import ModelBundle, ModelInputs, load_state_dict_file
from .classes import imagenet_class_names
from .preprocess import images_to_tensor
from .weights import cached_download, fetch_weights, hub_checkpoints

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_preprocess(items: Sequence[Any]) -> ModelInputs:
    return ModelInputs(images_to_tensor(items, 224, IMAGENET_MEAN, IMAGENET_STD))


def load_vision_hub(kind: str, rest: str, spec: str, progress: bool = True,
                    weights_file: "str | Path | None" = None) -> ModelBundle:
    """``kind`` is ``torchvision`` or ``timm``, ``rest`` is ``NAME[:WEIGHTS]``;
    ``weights_file`` (``--weights``) is a local weights file, the same as ``NAME:PATH``."""
    name, _, weights = rest.partition(":")
    if not name:
        raise SpecError(f"{kind}: needs a model name, e.g. {kind}:resnet18")
    if weights_file is not None:
        if weights:
            raise SpecError(f"{spec} names its weights already; pass --weights FILE with {kind}:{name} alone")
        weights = str(weights_file)
        spec = f"{kind}:{name}:{weights}"  # the manifest records which file
    local = existing_path(weights, f"{kind}:{name}") if weights not in ("", "pretrained") else None
    try:
        if kind == "torchvision":
            import torchvision.models as lib
        else:
            import timm as lib
    except ImportError as e:
        raise SpecError(f"{kind} models need the {kind} extra: pip install 'neurocarta[{kind}]'") from e
    local_form = f"{kind}:{name}:PATH"
    build = _torchvision if kind == "torchvision" else _timm
    try:
        module = build(lib, name, weights == "pretrained", local, spec, local_form, progress)
    except SpecError:
        raise
    except (ValueError, RuntimeError) as e:
        raise SpecError(f"cannot build {kind} model {name!r}: {e}") from e
    if not weights:
        print(f"note: {spec} has random weights; write {kind}:{name}:pretrained to download trained ones, "
              f"or pass --weights FILE for a local weights file", file=sys.stderr)
    # timm says how many classes its head has (an ImageNet-21k model has 21,843, unnamed here);
    # torchvision's classifiers are all ImageNet-1k
    imagenet = getattr(module, "num_classes", 1000) == 1000
    return ModelBundle(module=module, spec=spec, modality="image", preprocess=imagenet_preprocess,
                       class_names=list(imagenet_class_names()) if imagenet else None)


def _torchvision(tvm: Any, name: str, pretrained: bool, local: Path | None, spec: str, local_form: str,
                 progress: bool) -> torch.nn.Module:
    if not pretrained:
        module = tvm.get_model(name, weights=None)
        if local is not None:
            load_state_dict_file(module, local, into=spec, what="weights")
        return module
    weights = tvm.get_model_weights(name).DEFAULT
    # fetched into the torch hub cache first, so a failure is one clear line and torchvision
    # then reads the file from there without the network
    cached_download(weights.url, spec=spec, local_form=local_form, progress=progress)
    return tvm.get_model(name, weights=weights)


def _timm(timm: Any, name: str, pretrained: bool, local: Path | None, spec: str, local_form: str,
          progress: bool) -> torch.nn.Module:  # timm draws its own progress bars
    if local is not None:  # timm maps the file's keys (and a different head) itself
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(local)})
    if not pretrained:
        return timm.create_model(name, pretrained=False)
    file, where = _timm_source(timm, name)
    return fetch_weights(lambda: timm.create_model(name, pretrained=True), spec=spec, file=file, where=where,
                         local_form=local_form)


def _timm_source(timm: Any, name: str) -> tuple[str, str | Path]:
    """Which file timm fetches for ``name`` and the cache it looks in: a Hugging Face repo's
    weights in the Hugging Face cache, or a URL's file in the torch hub cache."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except (RuntimeError, AttributeError):  # an unknown tag: create_model says so itself
        cfg = None
    hf_repo, url = getattr(cfg, "hf_hub_id", None), getattr(cfg, "url", None)
    if hf_repo:
        from huggingface_hub import constants

        return f"the weights of Hugging Face repo {hf_repo} (model.safetensors)", constants.HF_HUB_CACHE
    if url:
        return Path(url).name, hub_checkpoints()
    return f"the weights of {name}", hub_checkpoints()
