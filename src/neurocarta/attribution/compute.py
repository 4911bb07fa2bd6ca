"""Attributions with Captum: which parts of an input move a target.

- Images: Captum's ``Saliency`` (the absolute input gradient, the fast default) or
  ``IntegratedGradients`` (from a black image, preprocessed as the input is) on the
  preprocessed pixels; the map is the absolute attribution summed over colour, one value
  per pixel.
- Text: attributions to the word embeddings (``LayerGradientXActivation`` for saliency,
  gradient times embedding; ``LayerIntegratedGradients`` from [PAD] embeddings for the
  special tokens kept), summed over the embedding dimension: one signed value per token.

The target is a scalar per input: a class logit (the predicted or a chosen class), one
neuron's activation (a conv channel's mean over positions; a token layer's mean over the
real tokens unless the layer was pooled), or a concept group's sum over its members.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from captum.attr import (IntegratedGradients, LayerGradientXActivation, LayerIntegratedGradients,
                         Saliency)

from ..capture.hooks import LayerHooks, find_logits
from ..capture.layers import pick_element, resolve_layers
from ..capture.reload import ReloadedModel
from ..errors import UserError
from ..models import ModelInputs
from ..store.attributions import AttributionItem
from .targets import Target

#: integrated gradients' path points evaluated in one forward pass
_INTERNAL_BATCH = 64


class TargetFunction:
    """The scalar per input that an attribution explains, as a forward function Captum calls.

    Layer targets read the layer's output through a forward hook during the same pass.
    """

    def __init__(self, model: ReloadedModel, target: Target, pooling: str | None = None):
        self.model, self.target, self.pooling = model, target, pooling
        self._mask: torch.Tensor | None = None  # text: the real tokens of the inputs being attributed
        self._layer_out: Any = None
        self._refs = resolve_layers(model.module, [target.layer]) if target.on_layer else []

    def __enter__(self) -> "TargetFunction":
        self._hooks = LayerHooks(self.model.module, self._refs, self._on_output) if self._refs else None
        if self._hooks is not None:
            self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._hooks is not None:
            self._hooks.__exit__(*exc)

    def _on_output(self, ref: Any, output: Any) -> None:
        self._layer_out = pick_element(output, ref)

    def __call__(self, args: Any, mask: torch.Tensor | None = None, type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Class targets: the logits (Captum picks each input's class with ``target=``, expanded
        over integrated gradients' path points). Layer targets: one value per input."""
        out = self._run(args, mask, type_ids)
        if self.target.on_layer:
            return self._layer_value(mask)
        logits = find_logits(out)
        if logits is None:
            raise UserError("the model has no class outputs to explain; use a neuron:LAYER:N or "
                            "concept:LAYER:GROUP target")
        return logits

    def _run(self, args: Any, mask: torch.Tensor | None, type_ids: torch.Tensor | None) -> Any:
        if mask is None:
            return self.model.bundle.forward(ModelInputs(args))
        kwargs = {"input_ids": args, "attention_mask": mask}
        if type_ids is not None:
            kwargs["token_type_ids"] = type_ids
        return self.model.module(**kwargs)

    def _layer_value(self, mask: torch.Tensor | None) -> torch.Tensor:
        out = self._layer_out
        if not isinstance(out, torch.Tensor):
            raise UserError(f"layer {self.target.layer!r} gave no tensor in the forward pass")
        units = list(self.target.units)
        if out.ndim == 4:  # conv: a channel's mean over positions
            acts = out[:, units].mean(dim=(2, 3))
        elif out.ndim == 3:  # sequence: pooled as extraction pooled it, else the mean over real tokens
            if self.pooling == "cls":
                acts = out[:, 0, units]
            elif self.pooling == "max":
                acts = out[:, :, units].amax(dim=1)
            else:
                m = (mask if mask is not None else torch.ones(out.shape[:2], device=out.device)).to(out.dtype)
                acts = (out[:, :, units] * m[:, :, None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        else:
            acts = out.reshape(len(out), -1)[:, units]
        return acts.sum(dim=1)


def attribute_images(model: ReloadedModel, items: Sequence[Any], input_ids: Sequence[int], target: Target,
                     method: str, steps: int, pooling: str | None = None) -> list[AttributionItem]:
    """Per-pixel maps (H, W) of ``items`` (raw images) for ``target``."""
    x = model.bundle.preprocess(list(items)).args.to(model.device)
    with TargetFunction(model, target, pooling) as fn:
        score, classes = _scores(fn, (x, None, None))
        pick = None if classes is None else torch.as_tensor(classes, device=model.device)
        x = x.clone().requires_grad_(True)
        if method == "saliency":
            attr = Saliency(fn).attribute(x, target=pick, abs=True)
        else:
            attr = IntegratedGradients(fn).attribute(x, baselines=_black(model, items), target=pick, n_steps=steps,
                                                     internal_batch_size=_INTERNAL_BATCH)
    attr = attr.detach().float().cpu().numpy()
    maps = np.abs(attr).sum(axis=1)
    totals = attr.reshape(len(attr), -1).sum(axis=1)
    return [AttributionItem(int(i), method, target.kind, _target_name(target, classes, k), target.layer,
                            "image", maps[k], float(totals[k]), float(score[k]))
            for k, i in enumerate(input_ids)]


def attribute_texts(model: ReloadedModel, items: Sequence[Any], input_ids: Sequence[int], target: Target,
                    method: str, steps: int, pooling: str | None = None) -> list[AttributionItem]:
    """Signed per-token values of ``items`` (raw texts) for ``target``, real tokens only."""
    inputs: ModelInputs = model.bundle.preprocess(list(items)).to(model.device)
    args = inputs.args
    if not isinstance(args, dict) or "input_ids" not in args:
        raise UserError("text attributions need a tokenizer's input_ids (a minilm or hf: model)")
    embeddings = _embedding_layer(model.module)
    ids, mask, type_ids = args["input_ids"], args.get("attention_mask"), args.get("token_type_ids")
    with TargetFunction(model, target, pooling) as fn:
        score, classes = _scores(fn, (ids, mask, type_ids))
        pick = None if classes is None else torch.as_tensor(classes, device=model.device)
        if method == "saliency":
            attr = LayerGradientXActivation(fn, embeddings).attribute(ids, target=pick,
                                                                      additional_forward_args=(mask, type_ids))
        else:
            special = inputs.special_tokens_mask.to(ids.device).bool()
            pad = getattr(model.bundle.tokenizer, "pad_token_id", None) or 0
            baseline = torch.where(special, ids, torch.full_like(ids, pad))
            attr = LayerIntegratedGradients(fn, embeddings).attribute(
                ids, baselines=baseline, target=pick, additional_forward_args=(mask, type_ids), n_steps=steps,
                internal_batch_size=_INTERNAL_BATCH)
    per_token = attr.detach().float().sum(dim=-1).cpu().numpy()
    real = inputs.attention_mask.cpu().numpy().astype(bool)
    out = []
    for k, i in enumerate(input_ids):
        values = per_token[k][real[k]]
        tokens = [t for t, keep in zip(inputs.tokens[k], real[k]) if keep]
        out.append(AttributionItem(int(i), method, target.kind, _target_name(target, classes, k), target.layer,
                                   "tokens", values, float(values.sum()), float(score[k]), tokens=tokens))
    return out


def _scores(fn: TargetFunction, args: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """The target's value at each input and, for class targets, the class each input is
    explained for (its predicted class, or the chosen one)."""
    with torch.no_grad():
        out = fn(*args)
    if fn.target.on_layer:
        return out.float().cpu().numpy(), None
    if fn.target.kind == "predicted":
        classes = out.argmax(dim=1)
    else:
        k = int(fn.target.target)
        if k >= out.shape[1]:
            raise UserError(f"--target class:{k}: the model has {out.shape[1]} classes (0 to {out.shape[1] - 1})")
        classes = torch.full((len(out),), k, dtype=torch.long, device=out.device)
    score = out.gather(1, classes[:, None])[:, 0]
    return score.float().cpu().numpy(), classes.cpu().numpy()


def _black(model: ReloadedModel, items: Sequence[Any]) -> torch.Tensor:
    """Integrated gradients' baseline: black images, through the model's own preprocessing
    (the original paper's choice; on a dark background it leaves the attribution on the
    object, where a mean-grey baseline spreads it over the background too)."""
    black = [np.zeros_like(np.asarray(item)) for item in items]
    return model.bundle.preprocess(black).args.to(model.device)


def _target_name(target: Target, classes: np.ndarray | None, k: int) -> str:
    return str(int(classes[k])) if target.kind == "predicted" and classes is not None else target.target


def _embedding_layer(module: torch.nn.Module) -> torch.nn.Module:
    get = getattr(module, "get_input_embeddings", None)
    layer = get() if callable(get) else None
    if not isinstance(layer, torch.nn.Module):
        raise UserError("text attributions go through the word embeddings, and this model does not say which "
                        "module they are (a transformers model's get_input_embeddings)")
    return layer
