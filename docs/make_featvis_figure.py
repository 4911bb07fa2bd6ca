"""The README's feature-visualization figure: stored visualizations of demo-cnn's conv layers,
each beside its best exemplar (docs/images/featvis.png).

    neurocarta visualize demo-atlas --layers 'features.*'     # or benchmarks/bench_featvis.py
    .venv/bin/python docs/make_featvis_figure.py demo-atlas
"""

from __future__ import annotations

import sys
from pathlib import Path

import neurocarta as nc
from neurocarta.featvis.figure import save_featvis_figure
from neurocarta.featvis.run import load_visualizations


def main(atlas_path: str, out: str = str(Path(__file__).parent / "images" / "featvis.png")) -> None:
    atlas = nc.open_atlas(atlas_path)
    runs = load_visualizations(atlas, [f"features.block{i}" for i in range(1, 5)])
    if not runs:
        sys.exit(f"no stored feature visualizations of demo-cnn's conv layers in {atlas_path}; run "
                 "`neurocarta visualize ATLAS --layers 'features.*'` first")
    print(save_featvis_figure(atlas, runs, out, per_layer=4, columns=4))


if __name__ == "__main__":
    main(*sys.argv[1:])
