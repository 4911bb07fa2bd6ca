"""What every findings rule shares: the finding's dict, JSON-plain values, the score bases,
the class names and the stored maps the rules read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..store import Atlas

KINDS = ("shortcut", "mislabels", "separation", "training", "concept")
_BASE = {"shortcut": 0.8, "mislabels": 0.7, "separation": 0.5, "training": 0.45, "concept": 0.3}
#: at most this many input ids in a finding's selection
MAX_SELECTED_INPUTS = 500


def make_finding(kind: str, text: str, view: str, selection: dict, strength: float, evidence: dict) -> dict:
    strength = float(np.clip(strength, 0.0, 1.0))
    return {"kind": kind, "text": text, "view": view, "selection": plain(selection),
            "score": round(_BASE[kind] + 0.2 * strength, 4), "evidence": plain(evidence)}


def plain(value):
    """numpy scalars and arrays to Python types, so a finding is JSON as it stands."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def class_names(atlas: Atlas) -> list[str]:
    try:
        return list(atlas.class_names or [])
    except Exception:  # an atlas without class names: labels stay numbers
        return []



def mapper_results(atlas: Atlas) -> list:
    from ..methods.mapper import load_mapper

    stored = set(atlas.maps("mapper"))
    return [load_mapper(atlas, name) for name in atlas.layer_names if name in stored]



def label_topomaps(atlas: Atlas) -> dict:
    """Stored topomaps grouped by class (``label`` or ``label_name``), per layer."""
    from ..methods.topomap import load_topomap

    out = {}
    names = set(atlas.maps("topomap"))
    for layer in atlas.layer_names:
        for by in ("label", "label_name"):
            if f"{layer}@{by}" in names:
                out[layer] = load_topomap(atlas, layer, by)
                break
    return out

