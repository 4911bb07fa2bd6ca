"""The optimisation loop: many targets' images as one batch, a few hundred steps of Adam.

At every step the images are drawn from their Fourier parameters (param.py), randomly
transformed (transforms.py), put through the model's own preprocessing (probed as the
per-channel affine map it is, so it stays differentiable) and run up to the target layer
only: the forward pass stops there, so an early layer's images cost a fraction of a full pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..capture.hooks import find_logits
from ..capture.layers import LayerRef, pick_element, resolve_layers
from ..errors import UserError
from ..models import ModelBundle
from ..store.featvis import OUTPUT
from .objectives import Target, diversity_penalty, objective_values
from .relu import Redirect, optimising
from .param import FourierImage, from_uint8, to_uint8
from .transforms import Robustness


@dataclass(frozen=True)
class Settings:
    """How images are made. ``steps`` of Adam at ``lr`` (Lucid's 0.05); ``images`` per
    target; ``diversity``: the weight of the diversity term (scaled by the objective's size);
    ``batch``: images optimised together (memory, not results, sets it); ``seed``: the start
    and every transform draw."""

    steps: int = 256
    lr: float = 0.05
    images: int = 1
    diversity: float = 0.5
    batch: int = 256
    seed: int = 0
    redirect_steps: int = 32  # the first steps pass redirected ReLU gradients (relu.py), later ones while
    # some image's objective is still zero or below
    robustness: Robustness = field(default_factory=Robustness)


class _Reached(Exception):
    """Raised by the layer hook: the rest of the forward pass is not needed."""


class LayerTap:
    """Runs the model up to ``layer`` (a captured layer name, or :data:`OUTPUT` for the
    logits) and returns that layer's output, with gradients."""

    def __init__(self, module: torch.nn.Module, layer: str):
        self.module = module
        self.ref: LayerRef | None = None if layer == OUTPUT else resolve_layers(module, [layer])[0]
        self._value: Any = None
        self._calls = 0

    def _hook(self, _module, _inputs, output) -> None:
        assert self.ref is not None
        if self._calls == (self.ref.call or 0):
            self._value = pick_element(output, self.ref)
            raise _Reached
        self._calls += 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.ref is None:
            logits = find_logits(self.module(x))
            if logits is None:
                raise UserError("class targets need a classifier: the model's output has no (N, classes) logits")
            return logits
        self._value, self._calls = None, 0
        handle = self.module.get_submodule(self.ref.module_name).register_forward_hook(self._hook)
        try:
            self.module(x)
        except _Reached:
            pass
        finally:
            handle.remove()
        if not isinstance(self._value, torch.Tensor):
            raise UserError(f"layer {self.ref.name!r} gives no tensor the model can be optimised for")
        return self._value


@dataclass(frozen=True)
class Preprocess:
    """The model's own preprocessing of an image at its input ``size``, which for image
    models is a per-channel affine map of the pixels: ``scale * pixel + offset``."""

    size: int
    scale: torch.Tensor  # (1, 3, 1, 1)
    offset: torch.Tensor

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.scale + self.offset

    @classmethod
    def probe(cls, bundle: ModelBundle, size: int | None, device: torch.device) -> "Preprocess":
        """Learn the map from black, white and one random image through ``bundle.preprocess``;
        a preprocessing that is not per-pixel affine (crops, learnt steps) is one clear error."""
        if bundle.modality != "image":
            raise UserError(f"feature visualization needs an image model; {bundle.spec!r} takes {bundle.modality} "
                            "inputs")
        side = int(size or 224)

        def run(img: np.ndarray) -> torch.Tensor:
            args = bundle.preprocess([img]).args
            if not isinstance(args, torch.Tensor) or args.ndim != 4 or args.shape[1] != 3:
                raise UserError(f"{bundle.spec!r}'s preprocessing does not give (N, 3, H, W) images")
            return args.float()

        black, white = run(np.zeros((side, side, 3), np.uint8)), run(np.full((side, side, 3), 255, np.uint8))
        side = int(black.shape[-1])  # the model resizes to its own input size
        offset = black.mean(dim=(2, 3), keepdim=True)
        scale = white.mean(dim=(2, 3), keepdim=True) - offset
        rng = np.random.default_rng(0)
        noise = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        expect = torch.from_numpy(noise).permute(2, 0, 1)[None].float() / 255 * scale + offset
        if black.shape[-2] != side or (run(noise) - expect).abs().max() > 1e-3 * float(scale.abs().max()):
            raise UserError(f"{bundle.spec!r}'s preprocessing is not a per-channel scale and shift of square images; "
                            "feature visualization cannot put it inside the optimisation")
        return cls(side, scale.to(device), offset.to(device))


def optimise(module: torch.nn.Module, preprocess: Preprocess, layer: str, targets: Sequence[Target],
             settings: Settings, device: torch.device,
             report: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images for ``targets`` (all of ``layer``): uint8 (targets, images, s, s, 3), best first
    per target, and the objective each stored (uint8) image reaches, (targets, images).

    ``report(n)`` is called as optimisation steps finish, with the image-steps done since the
    last call (the progress bar)."""
    tap = LayerTap(module, layer)
    n_img = settings.images
    per_batch = max(1, settings.batch // n_img)  # a target's images stay in one batch (diversity)
    out_images = np.zeros((len(targets), n_img, preprocess.size, preprocess.size, 3), np.uint8)
    out_values = np.zeros((len(targets), n_img), np.float64)
    for start in range(0, len(targets), per_batch):
        chunk = list(targets[start:start + per_batch])
        with optimising(module) as redirect:
            images, values = _optimise_batch(tap, preprocess, chunk, settings, device, seed=settings.seed + start,
                                             redirect=redirect, report=report)
        images = images.reshape(len(chunk), n_img, *images.shape[1:])
        values = values.reshape(len(chunk), n_img)
        order = np.argsort(-values, axis=1, kind="stable")
        out_images[start:start + len(chunk)] = np.take_along_axis(images, order[:, :, None, None, None], axis=1)
        out_values[start:start + len(chunk)] = np.take_along_axis(values, order, axis=1)
    return out_images, out_values


def _optimise_batch(tap: LayerTap, preprocess: Preprocess, targets: list[Target], settings: Settings,
                    device: torch.device, seed: int, redirect: Redirect,
                    report: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray]:
    n_img = settings.images
    weights, centre, power = target_tensors(targets, device, repeat=n_img)
    groups = torch.arange(len(targets), device=device).repeat_interleave(n_img)
    gen = torch.Generator().manual_seed(seed)
    image = FourierImage(len(groups), preprocess.size, generator=gen, device=device)
    opt = torch.optim.Adam(image.parameters(), lr=settings.lr)
    every = max(1, settings.steps // 20)
    dead = True
    for step in range(settings.steps):
        # redirected gradients at the start, and for as long as some image's target is silent
        redirect.active = step < settings.redirect_steps or dead
        opt.zero_grad(set_to_none=True)
        acts = tap(channels_last(preprocess(settings.robustness.apply(image(), gen))))
        obj = objective_values(acts, weights, centre, power)
        dead = bool((obj.detach() <= 0).any())
        loss = -obj.sum()
        if n_img > 1 and settings.diversity > 0:
            size = obj.detach().abs().mean().clamp(min=1e-3)  # the term keeps its weight whatever the units
            loss = loss + settings.diversity * size * diversity_penalty(acts, groups).sum()
        loss.backward()
        opt.step()
        if report is not None and ((step + 1) % every == 0 or step + 1 == settings.steps):
            report(((step + 1) % every or every) * len(groups))
    redirect.active = False
    with torch.no_grad():
        stored = to_uint8(image())
    return stored.numpy(), measure(tap, preprocess, from_uint8(stored, device), weights, centre, power)


def measure(tap: LayerTap, preprocess: Preprocess, images: torch.Tensor, weights: torch.Tensor,
            centre: torch.Tensor, power: torch.Tensor, batch: int = 256) -> np.ndarray:
    """The objective of images in [0, 1], (N, 3, s, s), as the model sees them (no transforms)."""
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            acts = tap(channels_last(preprocess(images[s:s + batch])))
            out.append(objective_values(acts, weights[s:s + batch], centre[s:s + batch], power[s:s + batch]))
    return torch.cat(out).double().cpu().numpy()


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """Images in the memory order :func:`relu.optimising` puts the weights in."""
    return images.contiguous(memory_format=torch.channels_last)


def target_tensors(targets: Sequence[Target], device: torch.device,
                   repeat: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each target's weights, centre flag and cosine power, each row repeated ``repeat`` times."""
    weights = torch.from_numpy(np.stack([t.weights for t in targets]).astype(np.float32))
    centre = torch.tensor([t.centre for t in targets])
    power = torch.tensor([float(t.cosine_power) for t in targets])
    return (weights.repeat_interleave(repeat, 0).to(device), centre.repeat_interleave(repeat).to(device),
            power.repeat_interleave(repeat).to(device))

