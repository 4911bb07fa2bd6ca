"""Feature visualization (issue 18): a planted detector is recovered, demo channels excite their
target at least as much as their best exemplar, the store, the CLI and the viewer payloads."""

from __future__ import annotations

import io
import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import neurocarta as nc
from neurocarta.cli import main
from neurocarta.featvis import Settings, visualize
from neurocarta.featvis.objectives import Target
from neurocarta.featvis.optimize import LayerTap, Preprocess, measure, optimise, target_tensors
from neurocarta.featvis.param import FourierImage
from neurocarta.store.featvis import featvis_images, featvis_layers, featvis_table
from neurocarta.viewer.data import ViewerData
from neurocarta.viewer.export import static_payloads


def red_bar_detector() -> nn.Module:
    """One conv channel that answers a red vertical bar 3 px wide: red up in the middle
    columns, down on the columns beside them, green and blue down in the bar (white does not
    do), its bias set so that flat grey gives zero."""
    conv = nn.Conv2d(3, 1, 9, bias=True)
    w = torch.zeros(1, 3, 9, 9)
    w[0, 0, :, 3:6] = 1.0
    w[0, 0, :, :3] = w[0, 0, :, 6:] = -0.5
    w[0, 1:, :, 3:6] = -0.25
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.fill_(-float(w.sum()) * 0.5)
    return nn.Sequential(OrderedDict(detector=conv, relu=nn.ReLU())).eval()


def test_a_planted_red_vertical_bar_detector_is_recovered(tmp_path):
    model, size = red_bar_detector(), 32
    plain = Preprocess(size, torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1))
    target = Target("neuron", "0", "relu", np.ones(1, np.float32), "channel mean")
    images, values = optimise(model, plain, "relu", [target], Settings(steps=128, seed=0), torch.device("cpu"))
    image = images[0, 0]
    # the model is handed back as it came: weights in their order, gradients and in-place flags as they were
    assert model.detector.weight.requires_grad and model.detector.weight.is_contiguous()
    Image.fromarray(image).resize((128, 128), Image.NEAREST).save(tmp_path / "red_bar.png")  # the test artifact
    # its response is in the top 1% of random images' (uniform noise and random smooth images)
    gen = torch.Generator().manual_seed(1)
    noise = torch.rand(300, 3, size, size, generator=gen)
    with torch.no_grad():
        smooth = FourierImage(300, size, sd=0.5, generator=gen)()
    weights, centre, power = target_tensors([target] * 600, torch.device("cpu"))
    random = measure(LayerTap(model, "relu"), plain, torch.cat([noise, smooth]), weights, centre, power)
    assert values[0, 0] > np.quantile(random, 0.99)
    # and it shows the pattern: the red channel's structure runs vertically (its spectral energy
    # lies along the horizontal frequencies far more than along the vertical ones), and the
    # reddest columns are red, not white
    x = image.astype(np.float64) / 255
    red = x[:, :, 0] - x[:, :, 0].mean()
    power_spectrum = np.abs(np.fft.fft2(red)) ** 2
    across = power_spectrum[[0, 1, -1], 2:-1].sum() / power_spectrum[2:-1, [0, 1, -1]].sum()
    assert across > 4  # 40 of the random images: at most 2.8
    columns = x.mean(axis=0)  # (width, 3)
    bars = np.argsort(columns[:, 0])[-size // 4:]
    assert (columns[bars, 0] - columns[bars, 1:].mean(axis=1)).mean() > 0.25  # random images: at most 0.11


def test_demo_channels_beat_their_best_exemplars_and_are_stored(demo_atlas):
    """A small sample of demo-cnn's conv channels (the benchmark measures all 240)."""
    layers = ["features.block2", "features.block4"]
    runs = visualize(demo_atlas, layers, neurons=[0, 5, 10, 15], settings=Settings(steps=96), device="cpu",
                     progress=False)
    records = [r for run in runs for r in run.records()]
    assert len(records) == 8 and all(r["exemplar_activation"] is not None for r in records)
    assert sum(r["activation"] >= r["exemplar_activation"] for r in records) >= 7
    snap = demo_atlas.snapshots[-1]
    assert featvis_layers(demo_atlas) == {snap: layers}
    table = featvis_table(demo_atlas, "features.block4")
    assert table["target"].tolist() == ["0", "5", "10", "15"]
    np.testing.assert_allclose(table["activation"], [r["activation"] for r in records[4:]])
    images = featvis_images(demo_atlas, "features.block4")
    assert images.shape == (4, 1, 64, 64, 3) and np.asarray(images).std() > 10
    # the exemplar is the input the model answers most among those the atlas ranks first
    ranked = np.argsort(-demo_atlas.activations("features.block4", stat="mean")[:, 0], kind="stable")[:8]
    assert int(table["exemplar_input_id"][0]) in ranked
    # the viewer: the manifest lists them, the payload and the PNG of the contract
    data = ViewerData(demo_atlas)
    assert data.manifest()["featvis"] == {snap: layers}
    payload = data.featvis(snap, "features.block4")
    assert payload["size"] == 64 and payload["targets"][1] == {
        "kind": "neuron", "target": "5", "images": 1, "activation": pytest.approx(records[5]["activation"]),
        "exemplar_activation": pytest.approx(records[5]["exemplar_activation"]),
        "exemplar_input_id": records[5]["exemplar_input_id"], "objective": "channel mean"}
    png = data.featvis_png(snap, "features.block4", "neuron", "5", 0)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(images[1, 0]))


@pytest.fixture(scope="module")
def tiny_image_atlas(tmp_path_factory):
    """The tiny CNN over 80 random 12x12 images, with its Mapper graph and concept groups."""
    tmp = tmp_path_factory.mktemp("featvis")
    rng = np.random.default_rng(0)
    np.savez(tmp / "img.npz", x=rng.integers(0, 256, size=(80, 12, 12, 3)).astype(np.uint8), y=rng.integers(0, 4, 80))
    atlas = nc.extract("py:tiny_models:cnn_bundle", f"npz:{tmp / 'img.npz'}", tmp / "atlas", layers=["conv", "act"],
                       topk=8, progress=False)
    nc.mapper(atlas, "conv", intervals=4, save=True)
    nc.concepts(atlas, layers=["conv", "act"], k=8, save=True)
    return atlas


def test_cli_visualize_json_and_bad_input(tiny_image_atlas, capsys):
    atlas = tiny_image_atlas
    predicted = int(atlas.outputs()["pred"].mode()[0])  # a class some inputs are predicted as: it has exemplars
    code = main(["visualize", str(atlas.root), "--layers", "conv", "--neurons", "0-2", "--mapper-nodes", "--concepts",
                 "--classes", str(predicted), "--images", "2", "--steps", "24", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    kinds = [t["kind"] for t in out["targets"]]
    assert kinds[:3] == ["neuron"] * 3 and "mapper_node" in kinds and kinds[-1] == "class"
    for t in out["targets"]:
        assert isinstance(t["activation"], float) and isinstance(t["exemplar_activation"], float)
        assert t["beats_exemplar"] == (t["activation"] >= t["exemplar_activation"])
    assert out["targets"][-1]["target"] == str(predicted) and out["targets"][-1]["layer"] == "output"
    # two diverse images per target, best first, each with its own activation
    table = featvis_table(atlas, "conv")
    acts = np.array(table["activations"].tolist())
    assert acts.shape[1] == 2 and (acts[:, 0] >= acts[:, 1]).all()
    images = np.asarray(featvis_images(atlas, "conv"))
    assert np.abs(images[:, 0].astype(int) - images[:, 1]).mean() > 5
    # the offline export carries the payload and every image (the k-th under ?i=k)
    payloads = static_payloads(ViewerData(atlas), np.arange(atlas.n_inputs))
    base = "/api/featvis/final/conv/neuron/2.png"
    assert payloads["/api/featvis/final/conv"]["targets"][2]["target"] == "2"
    assert payloads[base].startswith("data:image/png") and payloads[base + "?i=1"] != payloads[base]
    # bad input: one line, exit 2, nothing stored changes
    before = featvis_table(atlas, "conv")
    for args, words in ((["--neurons", "99"], "not a neuron of 'conv'"), (["--neurons", "x"], "list of indices"),
                        (["--layers", "act", "--mapper-nodes"], "no Mapper graph of 'act'"),
                        (["--steps", "0"], "--steps must be at least 1"), (["--device", "tpu"], "unknown device")):
        code = main(["visualize", str(atlas.root), "--layers", "conv", "--steps", "4", *args])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and words in err, err
    assert featvis_table(atlas, "conv").equals(before)


def test_the_map_stage_visualises_every_target_of_an_image_atlas(tiny_image_atlas):
    from neurocarta.featvis.stage import featvis_stage, map_stages
    from neurocarta.pipeline import MAP_STAGES, MapOptions

    atlas, done = tiny_image_atlas, []
    lines = featvis_stage(atlas, MapOptions(progress=False), lambda d, t: done.append((d, t)), Settings(steps=4))
    assert featvis_layers(atlas) == {"final": ["conv", "act", "output"]}
    conv = featvis_table(atlas, "conv")
    assert (conv["kind"] == "neuron").sum() == 6 and (conv["kind"] == "mapper_node").sum() == \
        len(nc.load_mapper(atlas, "conv").nodes)
    assert len(featvis_table(atlas, "output")) == 4 and done[-1] == (3, 3)
    assert len(lines) == 3 and all(line.startswith("featvis  ") for line in lines)
    # it runs after the viewer is up, last, and --no-featvis leaves it out
    assert map_stages()[-1].name == "featvis" and map_stages()[-1].after_viewer
    assert map_stages(False) == MAP_STAGES
    # a write cut short between the images and the table (images of another run) reads as absent
    from neurocarta.store import layout, results

    images = np.asarray(featvis_images(atlas, "act"))
    results.save_array(atlas.location, f"{layout.featvis('final', 'act')}/images", images, chunks=images.shape,
                       attrs={"run": "another"})
    assert featvis_table(atlas, "act") is None and featvis_layers(atlas) == {"final": ["conv", "output"]}
