"""Mapper on the demo atlas itself: demo-cnn trained as `neurocarta demo` trains it (shapes,
10,000 images, 4 epochs), its final weights, the first conv layer and the last hidden layer.

Training takes about 1.5 minutes on 2 cores, so the atlas is built once for the module.
"""

from __future__ import annotations

import pytest

import neurocarta as nc
from neurocarta.data import load_data
from neurocarta.models.demo_cnn import load_demo_cnn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_atlas(tmp_path_factory):
    source = load_data("shapes")  # the demo's data: 10,000 images, seed 0
    bundle = load_demo_cnn(source, epochs=4, progress=False)  # the demo's model and final weights
    return nc.extract(bundle, source, tmp_path_factory.mktemp("demo") / "atlas",
                      layers=["features.block1", "head.relu"], progress=False)


def test_last_hidden_layer_separates_classes(demo_atlas):
    deep = nc.mapper(demo_atlas, "head.relu").summary()  # the atlas defaults
    first = nc.mapper(demo_atlas, "features.block1").summary()
    print(f"\nmember-weighted class purity: head.relu {deep['mean_purity']:.3f} ({deep['n_nodes']} nodes), "
          f"features.block1 {first['mean_purity']:.3f} ({first['n_nodes']} nodes)")
    assert deep["mean_purity"] >= 0.9 and deep["coverage"] >= 0.9
    # the first conv layer sees colour and texture, not shape: its nodes mix the classes
    assert first["mean_purity"] < 0.5
    # every class has nodes of its own in the last hidden layer
    dominant = nc.mapper(demo_atlas, "head.relu").nodes["dominant"]
    assert set(dominant) == set(demo_atlas.class_names)
