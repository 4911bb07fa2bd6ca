"""Exemplar patches: each conv neuron's top inputs cropped around its spatial argmax.

NeuroCartography shows, for every neuron, its top images cropped to the region the neuron
looked at (3x3 of them on hover). Here a patch is one top-k exemplar of a neuron, cropped
from the stored thumbnail to the receptive field around the argmax cell, and resized to a
small square. All numpy and PIL: no torch, the atlas is all it needs.

Geometry, in the model's input pixels first:

- **Centre.** Cell ``(h, w)`` of an ``(H, W)`` feature map on an ``(Hi, Wi)`` input has its
  centre at ``((h + 0.5) Hi / H, (w + 0.5) Wi / W)``. That is exact for max-pool
  downsampling and stride-1 "same" convs (demo-cnn); a strided conv with an odd kernel
  (EfficientNet) centres its cell up to ``(stride - 1) / 2`` pixels up and left of it.
- **Side.** The receptive field that extraction measured (``LayerInfo.receptive_field``,
  ``capture/receptive.py``). A field at least as long as the input's side covers that
  whole axis (deep layers: the patch is the whole image). Atlases without one (made before
  fields were recorded, or where measuring failed) use 3 feature cells: the argmax's 3x3
  neighbourhood, close to the true field for pooled stacks (6 px against 4 on demo-cnn's
  first block, 48 against 46 on its last).
- **Edges.** :func:`patch_boxes` clips boxes to the image by default. The exemplar patches
  keep them whole and fill what lies outside the image with black (where the conv saw its
  zero padding), so every patch of a layer has one scale and the argmax at its centre.

Then to the thumbnail: thumbnails are the raw images letterboxed into a ``t x t`` square
(``capture.runner.thumbnail``), so a box scales from the model input (its size is in the
manifest, ``model.input_size``) to the part of the thumbnail the image fills. That assumes
the preprocessing kept the image's aspect ratio (square images, inputs at their own size);
a model that stretches non-square images to a square puts crops off along the short axis.

Dense and sequence layers have no spatial position: their patches are the whole thumbnails
of their top inputs, resized.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # annotations only: no store import at run time
    from ...store import Atlas

#: Sides of a crop, in feature cells, when the receptive field is unknown.
FALLBACK_CELLS = 3


def _axis(pos: np.ndarray, n_cells: int, n_pixels: int, field: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Unclipped integer [lo, hi) pixel ranges of cells ``pos`` along one axis."""
    scale = n_pixels / n_cells
    side = FALLBACK_CELLS * scale if field is None else float(field)
    if side >= n_pixels:  # the unit sees the whole axis: show all of it
        return np.zeros(pos.shape, np.int64), np.full(pos.shape, n_pixels, np.int64)
    side_px = max(1, int(math.floor(side + 0.5)))
    centre = (pos.astype(np.float64) + 0.5) * scale
    lo = np.floor(centre - side_px / 2 + 0.5).astype(np.int64)
    return lo, lo + side_px


def patch_boxes(positions: np.ndarray, feature_shape: Sequence[int], image_shape: Sequence[int],
                field: int | Sequence[int] | None = None, clip: bool = True) -> np.ndarray:
    """Pixel boxes of the receptive field around feature-map cells.

    Parameters
    ----------
    positions : int (..., 2) ``(h, w)`` cells of the feature map (the argmax positions of
        :meth:`Atlas.topk`).
    feature_shape : ``(H, W)`` of the feature map (``LayerInfo.spatial``).
    image_shape : ``(Hi, Wi)`` of the model's input (``manifest.model["input_size"]``).
    field : the receptive field's side in input pixels, one number or ``(height, width)``;
        ``None`` uses 3 feature cells. A field at least an axis long covers that axis.
    clip : clip the boxes to the image (they then shrink at the edges); with ``False``
        they keep their side and may reach outside the image.

    Returns
    -------
    int64 (..., 4) boxes ``(top, left, bottom, right)``, bottom and right exclusive,
    centred on each cell's centre (to the nearest pixel).
    """
    pos = np.asarray(positions)
    if pos.shape[-1:] != (2,):
        raise ValueError(f"positions must end in a (h, w) axis of 2, got shape {pos.shape}")
    fh, fw = (field, field) if field is None or np.ndim(field) == 0 else tuple(field)  # type: ignore[misc]
    top, bottom = _axis(pos[..., 0], int(feature_shape[0]), int(image_shape[0]), fh)
    left, right = _axis(pos[..., 1], int(feature_shape[1]), int(image_shape[1]), fw)
    boxes = np.stack([top, left, bottom, right], axis=-1)
    if clip:
        lim = np.array([image_shape[0], image_shape[1]] * 2, dtype=np.int64)
        boxes = np.clip(boxes, 0, lim)
    return boxes


def thumbnail_box(image_shape: Sequence[int], thumb_size: int) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the part of a ``thumb_size`` thumbnail that an image
    of ``image_shape`` fills: the letterbox of ``capture.runner.thumbnail``."""
    h, w = int(image_shape[0]), int(image_shape[1])
    t = int(thumb_size)
    if h == t and w == t:
        return 0, 0, t, t
    scale = t / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    return (t - nh) // 2, (t - nw) // 2, nh, nw


def crop_patches(images: np.ndarray, boxes: np.ndarray, size: int = 32, fill: int = 0) -> np.ndarray:
    """Crop ``boxes`` out of ``images`` and resize each crop to ``size x size``.

    Parameters
    ----------
    images : uint8 (n, H, W, 3), or one (H, W, 3) image for every box.
    boxes : (n, 4) ``(top, left, bottom, right)`` in pixels of the image of the same index;
        fractional and out-of-image boxes are fine (what lies outside is ``fill``).
    size : side of the square patches. Crops enlarged 2x or more use nearest-neighbour
        resampling (pixels stay sharp, as the thumbnails do), others bilinear.

    Returns
    -------
    uint8 (n, size, size, 3). A box that is not square is stretched to the square.
    """
    images = np.asarray(images)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if images.ndim == 3:
        return _crop(images[None], np.zeros(len(boxes), np.int64), boxes, size, fill)
    if len(images) != len(boxes):
        raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
    return _crop(images, np.arange(len(boxes)), boxes, size, fill)


def _crop(images: np.ndarray, which: np.ndarray, boxes: np.ndarray, size: int, fill: int) -> np.ndarray:
    """Box ``j`` from image ``which[j]``. PIL's ``resize(box=...)`` resamples a fractional
    region in C; each image is padded (by what the boxes overshoot) and wrapped once."""
    from PIL import Image

    n = len(boxes)
    out = np.zeros((n, size, size, 3), dtype=np.uint8)
    if n == 0:
        return out
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (n, H, W, 3), got shape {images.shape}")
    h, w = images.shape[1:3]
    over = max(0.0, -boxes[:, 0].min(), -boxes[:, 1].min(), (boxes[:, 2] - h).max(), (boxes[:, 3] - w).max())
    pad = int(math.ceil(over))
    shifted = boxes + pad
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    nearest = sides * 2 <= size
    order = np.argsort(which, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(which[order]) != 0])
    for s, e in zip(starts, np.r_[starts[1:], n]):
        idx = order[s:e]
        a = np.asarray(images[which[idx[0]]], dtype=np.uint8)
        if pad:
            a = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), constant_values=fill)
        im = Image.fromarray(np.ascontiguousarray(a))
        for j in idx:
            t, l, b, r = shifted[j]
            resample = Image.Resampling.NEAREST if nearest[j] else Image.Resampling.BILINEAR
            out[j] = np.asarray(im.resize((size, size), resample, box=(l, t, r, b)))
    return out


def exemplar_patches(atlas: Atlas, layer: str, snapshot: str | None = None, per_neuron: int = 9,
                     size: int = 32) -> np.ndarray:
    """Every neuron's top ``per_neuron`` inputs as ``size x size`` patches, best first.

    Conv layers: each exemplar's thumbnail cropped to the receptive field around the
    neuron's argmax on that input (see the module docstring). Dense and sequence layers:
    the whole thumbnails, resized.

    Returns
    -------
    uint8 (n_neurons, min(per_neuron, k), size, size, 3). Raises AtlasError for an atlas
    without thumbnails (non-image inputs).
    """
    info = atlas.manifest.layer(layer)
    top = atlas.topk(layer, snapshot)
    per = min(int(per_neuron), top.k)
    if per < 1:
        raise ValueError("per_neuron must be at least 1")
    ids = np.ascontiguousarray(top.input_ids[:per].T)  # (C, per)
    uniq, which = np.unique(ids.ravel(), return_inverse=True)
    thumbs = atlas.thumbnails(uniq)
    t = thumbs.shape[1]
    if info.kind == "conv":
        input_size = atlas.manifest.model.get("input_size") or [t, t]
        pos = np.transpose(top.positions[:per], (1, 0, 2))  # (C, per, 2)
        boxes = patch_boxes(pos, info.spatial, input_size, info.receptive_field, clip=False).astype(np.float64)
        oy, ox, ch, cw = thumbnail_box(input_size, t)
        boxes *= np.array([ch / input_size[0], cw / input_size[1]] * 2)
        boxes += np.array([oy, ox, oy, ox], dtype=np.float64)
    else:
        boxes = np.broadcast_to(np.array([0.0, 0.0, t, t]), ids.shape + (4,))
    patches = _crop(thumbs, which.ravel(), boxes.reshape(-1, 4), size, 0)
    return patches.reshape(info.n_neurons, per, size, size, 3)


def save_patches(atlas: Atlas, layer: str, patches: np.ndarray, snapshot: str | None = None) -> None:
    """Store ``patches`` (from :func:`exemplar_patches`) in the atlas as
    ``patches/<snapshot>/<layer>``, replacing any there; :meth:`Atlas.patches` reads them.
    The store checks and writes them (:meth:`Atlas.save_patches`): methods never write arrays."""
    atlas.save_patches(layer, patches, snapshot)
