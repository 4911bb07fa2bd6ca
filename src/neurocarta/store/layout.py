"""Where things live inside an atlas folder (private to the store).

::

    atlas/
      manifest.json          what the atlas holds (see manifest.py)
      progress.json          how far extraction got; resume starts here
      zarr.json              the root of a Zarr v3 group holding every array:
      acts/<snap>/<layer>/<signal>     rows x neurons (float16); signal: value | mean | max
      acts/<snap>/<layer>/argmax       inputs x neurons, flat h*W+w (conv only)
      topk/<snap>/<layer>/{values,input_ids,rows,positions}
      stats/<snap>/<layer>/<signal>/<column>/{count,sum,sumsq}   summary mode
      sample/<snap>/<layer>/{<signal>...,rows}                   summary mode
      links/<snap>/<layer>/<next layer>   |W| (next x layer neurons, float32); attrs "pairs"
      thumbnails             inputs x t x t x 3 (uint8), image data only
      patches/<snap>/<layer> neurons x per_neuron x s x s x 3 (uint8) exemplar crops, see
                             methods/concepts/patches.py
      featvis/<snap>/<layer>/images           targets x images x s x s x 3 (uint8) feature
                             visualizations (layer "output": class logits), see store/featvis.py
      featvis/<snap>/<layer>/targets.parquet  one row per target: kind, target, objective,
                             activation reached, the best exemplar's activation and input id
      attributions/<snap>/images   items x H x W (float32) per-pixel attribution maps, at the
                             model's input size; their index (and text items' per-token
                             values) is the result maps/attributions/<snap>/, see
                             store/attributions.py
      inputs.parquet         one row per input: id, label, split, attributes, text
      outputs.parquet        per snapshot and input: pred, confidence, loss, correct
      tokens.parquet         one row per token row: input_id, position, token_id, token
      _work/                 parts and accumulator state of an unfinished run
      maps/<kind>/<name>/    method results (tables as Parquet, meta.json), see results.py
      figures/<kind>/        figures the CLI draws (PNG, SVG, PDF, GIF, MP4)
"""

from __future__ import annotations

from urllib.parse import quote


def node(name: str) -> str:
    """A layer or snapshot name as a safe Zarr node name (dots stay, brackets are quoted)."""
    return quote(name, safe="._-")


def acts(snap: str, layer: str, signal: str) -> str:
    return f"acts/{node(snap)}/{node(layer)}/{signal}"


def argmax(snap: str, layer: str) -> str:
    return f"acts/{node(snap)}/{node(layer)}/argmax"


def topk(snap: str, layer: str) -> str:
    return f"topk/{node(snap)}/{node(layer)}"


def stats(snap: str, layer: str, signal: str, column: str) -> str:
    return f"stats/{node(snap)}/{node(layer)}/{signal}/{node(column)}"


def sample(snap: str, layer: str) -> str:
    return f"sample/{node(snap)}/{node(layer)}"


def links(snap: str) -> str:
    """The group of one snapshot's weight links; its ``pairs`` attribute lists them in forward order."""
    return f"links/{node(snap)}"


def link(snap: str, source: str, target: str) -> str:
    return f"links/{node(snap)}/{node(source)}/{node(target)}"


def patches(snap: str, layer: str) -> str:
    """Exemplar patches of one layer's neurons (methods/concepts/patches.py)."""
    return f"patches/{node(snap)}/{node(layer)}"


def featvis(snap: str, layer: str) -> str:
    """Feature visualizations of one layer's targets (store/featvis.py): ``images`` and
    ``targets.parquet`` inside."""
    return f"featvis/{node(snap)}/{node(layer)}"


def attribution_images(snap: str) -> str:
    """Image attribution maps of one snapshot (store/attributions.py)."""
    return f"attributions/{node(snap)}/images"


THUMBNAILS = "thumbnails"
INPUTS = "inputs.parquet"
OUTPUTS = "outputs.parquet"
TOKENS = "tokens.parquet"
WORK = "_work"
MAPS = "maps"
MAP_STATUS = "maps/_status.json"  # where the map stages stand (store/status.py), for the viewer
FIGURES = "figures"
