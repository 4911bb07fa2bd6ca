"""Exemplar patches: box geometry, measured receptive fields, and the round trip through an atlas."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import neurocarta as nc
from neurocarta.capture.runner import thumbnail
from neurocarta.capture.layers import LayerRef
from neurocarta.capture.receptive import field_side, receptive_fields
from neurocarta.methods.concepts.patches import (crop_patches, exemplar_patches, patch_boxes, save_patches,
                                                 thumbnail_box)
from neurocarta.models import ModelBundle, ModelInputs
from neurocarta.models.preprocess import images_to_tensor


# ---------------------------------------------------------------- geometry by hand
def test_box_centred_on_the_argmax_cell():
    # A 4x4 map on a 64 px input: cells are 16 px; cell (1, 2) has its centre at (24, 40).
    box = patch_boxes(np.array([1, 2]), (4, 4), (64, 64), field=22)
    assert box.tolist() == [13, 29, 35, 51]
    # Max-pooled stride 2, field 4: cell h covers input rows 2h-1 .. 2h+2, centre 2h+1.
    boxes = patch_boxes(np.array([[5, 7], [10, 0]]), (32, 32), (64, 64), field=4, clip=False)
    assert boxes.tolist() == [[9, 13, 13, 17], [19, -1, 23, 3]]
    # Stride 1, odd field: the cell's own pixel in the middle.
    assert patch_boxes(np.array([16, 16]), (32, 32), (32, 32), field=3).tolist() == [15, 15, 18, 18]


def test_box_edges_clip_or_keep_their_side():
    pos = np.array([[0, 0], [3, 3]])
    assert patch_boxes(pos, (4, 4), (64, 64), field=22, clip=False).tolist() == [[-3, -3, 19, 19], [45, 45, 67, 67]]
    assert patch_boxes(pos, (4, 4), (64, 64), field=22).tolist() == [[0, 0, 19, 19], [45, 45, 64, 64]]
    # A field as long as the input (measured fields are clipped to it) covers the whole axis.
    assert patch_boxes(pos, (4, 4), (64, 64), field=64, clip=False).tolist() == [[0, 0, 64, 64]] * 2
    # Non-square input, per-axis field: rows whole (8 >= 7), columns 8 px around 4.5 * 1.
    assert patch_boxes(np.array([3, 4]), (7, 9), (7, 9), field=8, clip=False).tolist() == [0, 1, 7, 9]
    assert patch_boxes(np.array([3, 4]), (7, 9), (7, 9), field=(3, 5)).tolist() == [2, 2, 5, 7]


def test_unknown_field_is_three_cells():
    # 8x8 map on 64 px: 3 cells = 24 px around (36, 12).
    assert patch_boxes(np.array([4, 1]), (8, 8), (64, 64), field=None, clip=False).tolist() == [24, 0, 48, 24]


def test_thumbnail_box_matches_the_letterbox_of_thumbnail():
    for shape, size in [((7, 9), 64), ((9, 7), 64), ((24, 24), 48), ((64, 64), 64), ((30, 100), 64)]:
        white = np.full(shape + (3,), 255, np.uint8)
        rows, cols = np.nonzero(thumbnail(white, size)[..., 0])
        top, left, h, w = thumbnail_box(shape, size)
        assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (top, left, top + h, left + w)
    assert thumbnail_box((7, 9), 64) == (7, 0, 50, 64)


def test_crop_patches_resizes_and_pads_outside_with_black():
    img = np.zeros((10, 10, 3), np.uint8)
    img[4:6, 4:6] = 255
    out = crop_patches(img[None], np.array([[3, 3, 7, 7]]), size=8)  # 2x: nearest, exact
    assert out.shape == (1, 8, 8, 3) and out.dtype == np.uint8
    assert (out[0, 2:6, 2:6] == 255).all() and out[0].sum() == 16 * 3 * 255
    grey = np.full((6, 6, 3), 100, np.uint8)
    out = crop_patches(grey, np.array([[-2, -2, 4, 4], [1, 1, 5, 5]]), size=6)
    assert (out[0, :2] == 0).all() and (out[0, :, :2] == 0).all() and (out[0, 2:, 2:] == 100).all()
    assert (out[1] == 100).all()


# ---------------------------------------------------------------- receptive fields
def _stack(*layers: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    mods = []
    for i, layer in enumerate(layers):
        mods += [(f"l{i}", layer), (f"r{i}", nn.ReLU(inplace=True))]
    return nn.Sequential(OrderedDict(mods)).eval()


@pytest.mark.parametrize("layers, expected", [
    # r = 1 + sum (k - 1) * jump, jump = product of earlier strides
    ([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)], 5),                 # 1 + 2 + 2
    ([nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1)], 8),  # 1 + 2 + 1 + 2*2
    ([nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1)], 7),       # 1 + 2 + 2*2
    ([nn.Conv2d(3, 4, 5, padding=2), nn.Conv2d(4, 4, 3, padding=2, dilation=2)], 9),     # 1 + 4 + 4
])
def test_measured_receptive_field_equals_the_recurrence(layers, expected):
    model = _stack(*layers)
    last = f"l{len(layers) - 1}"
    fields = receptive_fields(model, [LayerRef("l0"), LayerRef(last)], torch.zeros(1, 3, 32, 32))
    assert fields[last] == expected
    assert fields["l0"] == layers[0].kernel_size[0]
    assert all(p.grad is None for p in model.parameters())  # the model is left as it was


def test_demo_cnn_fields_and_clipping_to_the_input():
    from neurocarta.models.demo_cnn import DemoCNN

    model = DemoCNN(8).eval()
    refs = [LayerRef(f"features.block{i}") for i in range(1, 5)]
    # conv3 + pool2 per block: 4, 4 + 2*2 + 2 = 10, 10 + 2*4 + 4 = 22, 22 + 2*8 + 8 = 46
    assert receptive_fields(model, refs, torch.zeros(1, 3, 64, 64)) == {
        "features.block1": 4, "features.block2": 10, "features.block3": 22, "features.block4": 46}
    # On a 32 px input block4 (2x2) sees rows 1..31: cut by the border at 32. Its centre
    # cell (1, 1) is centred at 24 px, 23 px from row 1: the field is 46 all the same.
    assert receptive_fields(model, refs[3:], torch.zeros(1, 3, 32, 32)) == {"features.block4": 46}


def test_field_side_from_a_gradient_map():
    g = np.zeros((20, 30))
    g[5:12, 10:15] = 1.0  # inside the image: the extent, larger axis
    assert field_side(g, (20, 30)) == 7
    g[:] = 0
    g[0:15, 10:15] = 1.0  # cut at the top: the centre cell (10 of 20) sits at 10.5 px, the cut
    assert field_side(g, (20, 30)) == 21  # end 10.5 px above it, the far end 4.5 below: 2 * 10.5
    g[:] = 1.0  # cut on every side: at least the image
    assert field_side(g, (5, 5)) == 30
    assert field_side(np.zeros((4, 4)), (2, 2)) is None


# ---------------------------------------------------------------- atlas round trip
SIZE, THUMB = 24, 48  # model input 24 px; thumbnails 48 px, so boxes scale 2x


def _peaked(c_in: int, c_out: int) -> nn.Conv2d:
    """A positive 3x3 kernel peaked at its centre: the argmax sits on a bright pixel."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
    with torch.no_grad():
        conv.weight.copy_(k.expand(c_out, c_in, 3, 3) * torch.linspace(0.5, 1.0, c_out).view(-1, 1, 1, 1))
    return conv


def spot_bundle() -> ModelBundle:
    """c1 (3x3, field 3) -> max-pool 2 -> c2 (3x3, field 8) -> global max -> head."""
    model = nn.Sequential(OrderedDict(
        c1=_peaked(3, 2), r1=nn.ReLU(inplace=True), pool=nn.MaxPool2d(2), c2=_peaked(2, 3),
        gmax=nn.AdaptiveMaxPool2d(1), flat=nn.Flatten(), head=nn.Linear(3, 2),
    ))
    return ModelBundle(module=model, spec="spot", modality="image",
                       preprocess=lambda items: ModelInputs(images_to_tensor(items, None, (0.0,) * 3, (1.0,) * 3)))


@pytest.fixture(scope="module")
def spots(tmp_path_factory):
    """Dark images, each with one bright pixel, and their atlas. The first four sit on the
    border and are brightest, so they top the rankings despite the zero padding."""
    folder = tmp_path_factory.mktemp("spots")
    rng = np.random.default_rng(0)
    n = 40
    where = rng.integers(0, SIZE, size=(n, 2))
    where[:4] = [[0, 0], [0, 13], [SIZE - 1, 7], [11, SIZE - 1]]
    x = np.full((n, SIZE, SIZE, 3), 20, np.uint8)
    x[np.arange(n), where[:, 0], where[:, 1]] = 120
    x[np.arange(4), where[:4, 0], where[:4, 1]] = 255
    np.savez(folder / "spots.npz", x=x, y=rng.integers(0, 2, n))
    atlas = nc.extract(spot_bundle(), f"npz:{folder / 'spots.npz'}", folder / "atlas", layers=["c1", "c2", "head"],
                       batch_size=16, topk=12, thumb_size=THUMB, dtype="float32", progress=False)
    return atlas, where


def test_extraction_records_fields_and_input_size(spots):
    atlas, _ = spots
    info = {l.name: l for l in atlas.layers}
    assert info["c1"].receptive_field == 3 and info["c2"].receptive_field == 8
    assert info["head"].receptive_field is None
    assert atlas.manifest.model["input_size"] == [SIZE, SIZE]
    saved = json.loads((atlas.root / "manifest.json").read_text())
    assert [l["receptive_field"] for l in saved["layers"]] == [3, 8, None]


def test_patches_round_trip_without_torch(spots):
    atlas, _ = spots
    code = (
        "import sys, numpy as np, neurocarta as nc\n"
        "from neurocarta.methods.concepts.patches import exemplar_patches, save_patches\n"
        "a = nc.open_atlas(sys.argv[1])\n"
        "assert a.patches('c2') is None\n"
        "for layer in a.layer_names:\n"
        "    save_patches(a, layer, exemplar_patches(a, layer, per_neuron=9, size=32))\n"
        "p = a.patches('c2')\n"
        "print(p.shape, p.dtype, 'torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(atlas.root)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["(3,", "9,", "32,", "32,", "3)", "uint8", "False"]
    again = nc.open_atlas(atlas.root)
    for layer in ("c1", "c2", "head"):
        np.testing.assert_array_equal(again.patches(layer), exemplar_patches(again, layer))
    # Dense layers: whole thumbnails, resized.
    top = again.topk("head")
    from PIL import Image

    want = np.asarray(Image.fromarray(again.thumbnail(top.input_ids[0, 1])).resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(again.patches("head")[1, 0], want)
    with pytest.raises(ValueError):
        save_patches(again, "c2", again.patches("c1"))


@pytest.mark.parametrize("layer, tolerance", [("c1", 0.6), ("c2", 2.1)])
def test_a_planted_spot_lands_at_the_centre_of_its_patch(spots, layer, tolerance):
    atlas, where = spots
    patches = exemplar_patches(atlas, layer, per_neuron=9, size=32)
    top = atlas.topk(layer)
    border = set(range(4))
    seen_border = False
    for c in range(patches.shape[0]):
        for j in range(patches.shape[1]):
            p = patches[c, j, ..., 0].astype(float)
            ys, xs = np.nonzero(p > 90)
            assert len(ys), (layer, c, j)
            # c1: one input pixel is 32/3 patch px and sits mid-patch; c2: the cell's centre
            # lies on a pixel corner, so the spot is half an input pixel (2 patch px) off.
            assert abs(ys.mean() - 15.5) <= tolerance and abs(xs.mean() - 15.5) <= tolerance, (layer, c, j)
            seen_border |= int(top.input_ids[j, c]) in border
    assert seen_border  # spots on the image border stay centred (black padding beyond)


def test_old_manifests_and_failed_measurements(spots, tmp_path, monkeypatch):
    import shutil

    atlas, where = spots
    old = tmp_path / "old"
    shutil.copytree(atlas.root, old)
    m = json.loads((old / "manifest.json").read_text())
    for layer in m["layers"]:
        layer.pop("receptive_field")
    m["model"].pop("input_size")
    (old / "manifest.json").write_text(json.dumps(m))
    a = nc.open_atlas(old)
    assert a.layers[1].receptive_field is None
    p = exemplar_patches(a, "c2", per_neuron=3)  # 3 cells = 6 px around the argmax, still centred
    assert p.shape == (3, 3, 32, 32, 3)
    ys, xs = np.nonzero(p[0, 0, ..., 0] > 90)
    assert abs(ys.mean() - 15.5) <= 3 and abs(xs.mean() - 15.5) <= 3

    import neurocarta.capture.plan as plan

    def broken(*args, **kwargs):
        raise RuntimeError("cannot differentiate this model")

    monkeypatch.setattr(plan, "receptive_fields", broken)
    with pytest.warns(UserWarning, match="no receptive fields recorded"):
        b = nc.extract(spot_bundle(), atlas.manifest.data["spec"], tmp_path / "b", layers=["c2"],
                       topk=3, thumb_size=THUMB, progress=False)
    assert b.layers[0].receptive_field is None and b.manifest.model["input_size"] is None
    assert exemplar_patches(b, "c2").shape == (3, 3, 32, 32, 3)
