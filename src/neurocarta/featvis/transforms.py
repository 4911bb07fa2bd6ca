"""Random transforms applied to the images at every step (transformation robustness).

An image that excites a unit only at one exact pixel alignment is an adversarial pattern, not
a feature. Lucid jitters, scales and rotates the image before every forward pass, so the
optimum must survive all of them. Here all three are one affine resampling per image (a
different draw for every image of the batch), then a small integer jitter, with the area
outside the image filled with mid grey (as Lucid pads with 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Robustness:
    """How far the transforms reach, relative to the image side.

    ``jitter``: the largest shift, as a share of the side (Lucid: 8 px of 128, before
    and 4 px after). ``scale``: scales drawn from ``1 - scale .. 1 + scale``. ``degrees``:
    rotations drawn from ``-degrees .. degrees``.
    """

    jitter: float = 0.06
    scale: float = 0.1
    degrees: float = 10.0

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        dev = images.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return (torch.rand(n, generator=generator) * (high - low) + low).to(dev)

        angle = uniform(-self.degrees, self.degrees) * (math.pi / 180)
        scale = uniform(1 - self.scale, 1 + self.scale)
        shift = torch.stack([uniform(-2 * self.jitter, 2 * self.jitter),  # grid units: [-1, 1] is the side
                             uniform(-2 * self.jitter, 2 * self.jitter)], dim=1)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
        # sample the image minus grey with zero padding: outside the image is grey
        moved = F.grid_sample(images - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5
        return moved
