"""Topomap costs that do not belong to the layer (issue 17): umap's numba kernels compile once
per machine, not once per process, and a map of many groups is drawn as one image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from neurocarta.methods.topomap import TopoMapResult
from neurocarta.methods.topomap.layouts import layout
from neurocarta.render import plot_topomap

# A fresh process lays out a small layer with umap and lists the umap kernels numba compiled
# for it. (Importing umap compiles a few tiny kernels declared with a signature, at once and
# before their cache can be turned on; that import comes first.)
COMPILED_KERNELS = """
import json
import numpy as np
from numba.core import event
import umap
from neurocarta.methods.topomap.layouts import layout

compiled = []

class Compiles(event.Listener):
    def on_start(self, ev):
        d = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        if d is not None and d.py_func.__module__.startswith("umap"):
            compiled.append(d.py_func.__module__ + "." + d.py_func.__qualname__)

    def on_end(self, ev):
        pass

with event.install_listener("numba:compile", Compiles()):
    y = layout(np.random.default_rng(0).normal(size=(40, 6)), "umap", "cosine")
print(json.dumps({"compiled": compiled, "layout": y.tolist()}))
"""


def _fresh_process() -> dict:
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.environ.get("PYTHONPATH", ""), src]).strip(os.pathsep))
    out = subprocess.run([sys.executable, "-c", COMPILED_KERNELS], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_umaps_kernels_instead_of_compiling_them():
    # this process compiles whatever is not cached yet (or loads it), and caches it
    here = layout(np.random.default_rng(0).normal(size=(40, 6)), "umap", "cosine")
    fresh = _fresh_process()
    assert fresh["compiled"] == [], f"compiled again in a fresh process: {fresh['compiled']}"
    np.testing.assert_array_equal(fresh["layout"], here)  # the same code, the same layout


def _result(n_groups: int, n_neurons: int = 64) -> TopoMapResult:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n_neurons, n_groups))
    groups = [f"g{i}" for i in range(n_groups)]
    return TopoMapResult(layer="layer", group_by="col", groups=groups, counts={"final": [10] * n_groups},
                         layout=rng.uniform(size=(n_neurons, 2)), values={"final": values}, metrics={},
                         params={"method": "umap"}, layout_snapshot="final")


def test_many_groups_are_one_image_in_one_axes_with_a_title_each():
    fig = plot_topomap(_result(42), order="given")
    maps = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 2 and len(maps) == 1  # the board and the colour bar, whatever the groups
    (ax,) = maps
    assert len(ax.images) == 1 and len(ax.collections) <= 3  # frames, contours (, markers)
    assert [t.get_text() for t in ax.texts] == [f"g{i} (n=10)" for i in range(42)]
    board = np.ma.filled(ax.images[0].get_array(), np.nan)
    # 42 tiles of 64 x 64 pixels in 7 rows of 6, and NaN gutters between them
    assert np.isfinite(board).sum() == 42 * 64 * 64
