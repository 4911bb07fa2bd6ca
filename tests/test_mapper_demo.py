"""Mapper on the demo atlas itself (the session's `demo_atlas` fixture): the first conv
layer and the last hidden layer of demo-cnn trained as `neurocarta demo` trains it."""

from __future__ import annotations

import pytest

import neurocarta as nc

pytestmark = pytest.mark.slow  # the session's demo_atlas fixture (conftest.py) trains demo-cnn once


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
