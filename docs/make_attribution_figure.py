"""Draw the README's attribution figure (docs/images/attribution.png).

    neurocarta extract --model demo-cnn --data shapes --limit 400 --out runs/shapes-400
    python docs/make_attribution_figure.py runs/shapes-400

Per input (test split, background not the demo's planted one, predicted right): the image,
then the saliency and integrated-gradients overlays of the predicted class, drawn as the
viewer's inspector draws them (viewer/attribution_overlay.py). Nothing is stored in the atlas.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import neurocarta as nc
from neurocarta.render import save_figure
from neurocarta.viewer.attribution_overlay import overlay_rgba

OUT = Path(__file__).resolve().parent / "images" / "attribution.png"
N_INPUTS = 5
SIZE = 128  # the overlay's side when drawn (the thumbnails are 64 px)


def main(atlas_path: str) -> None:
    from matplotlib.figure import Figure

    atlas = nc.open_atlas(atlas_path)
    t = atlas.inputs_with_outputs()
    keep = (t["split"] == "test") & t["correct"].astype(bool) & (t["background"] != "noise")
    # one input per class, the first of each, so the figure shows different shapes
    ids = [int(i) for i in t[keep].groupby("label")["input_id"].first().to_numpy()[:N_INPUTS]]
    runs = {m: nc.attribute(atlas, ids, method=m, save=False, progress=False) for m in ("saliency", "ig")}
    names = atlas.class_names
    fig = Figure(figsize=(1.9 * len(ids), 5.9), layout="constrained")
    axes = fig.subplots(3, len(ids))
    for col, i in enumerate(ids):
        thumb = np.asarray(atlas.thumbnail(i))
        big = np.kron(thumb, np.ones((SIZE // thumb.shape[0], SIZE // thumb.shape[1], 1), dtype=np.uint8))
        axes[0, col].imshow(big)
        axes[0, col].set_title(f"input {i}: {names[int(runs['saliency'][col].target)]}", fontsize=9)
        for row, (method, label) in enumerate([("saliency", "saliency"), ("ig", "integrated gradients")], start=1):
            axes[row, col].imshow(big)
            axes[row, col].imshow(overlay_rgba(runs[method][col].values, SIZE))
            if col == 0:
                axes[row, col].set_ylabel(label, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("why demo-cnn says what it says: attribution of the predicted class", fontsize=10)
    save_figure(fig, OUT)
    print(OUT)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/shapes-400")
