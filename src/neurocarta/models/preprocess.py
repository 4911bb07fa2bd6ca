"""Image preprocessing shared by the image model adapters."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def images_to_tensor(
    images: Sequence[np.ndarray],
    size: int | tuple[int, int] | None,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Stack ``uint8 (H, W, 3)`` images into a normalised ``float32 (N, 3, h, w)`` batch.

    Grey images ``(H, W)`` are repeated to three channels. Images are resized with
    bilinear interpolation (antialiased when shrinking) when ``size`` differs.
    """
    if len(images) == 0:
        raise ValueError("images_to_tensor needs at least one image")
    arrs = []
    for im in images:
        a = np.asarray(im)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an (H, W, 3) image, got shape {a.shape}")
        if a.shape[2] == 1:
            a = np.repeat(a, 3, axis=2)
        elif a.shape[2] == 4:
            a = a[:, :, :3]
        arrs.append(a)
    shapes = {a.shape for a in arrs}
    if size is None and len(shapes) > 1:
        raise ValueError(f"images of different sizes {sorted(shapes)[:3]}; set a model input size")
    target = (size, size) if isinstance(size, int) else size
    tensors = []
    for a in arrs:
        t = torch.from_numpy(np.require(a, requirements=["C", "W"])).permute(2, 0, 1).float().div_(255.0)
        if target is not None and tuple(t.shape[1:]) != tuple(target):
            t = F.interpolate(t[None], size=target, mode="bilinear", align_corners=False,
                              antialias=t.shape[1] > target[0])[0]
        tensors.append(t)
    x = torch.stack(tensors)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s
