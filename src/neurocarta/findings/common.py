"""What every findings rule shares: the finding's dict, JSON-plain values, the score bases,
the class names and the stored maps the rules read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..store import Atlas

#: every kind a rule may emit, in the order a reader should look at them when scores tie
KINDS = ("shortcut", "mislabels", "confusion", "underperforming", "outlier", "duplicate", "separation",
         "training", "concept")
#: the score base of each kind, one band of 0.1 per kind in the order of KINDS: problems to act
#: on first (a shortcut, wrong labels), then what the model confuses or fails on, then data
#: hygiene, then descriptions of the maps. The bands never overlap (a finding's strength moves
#: it at most _BAND within its kind's band), so ordering by score is ordering by kind, then by
#: strength: the weakest shortcut still comes before the strongest description.
_BASE = {kind: round(0.9 - 0.1 * i, 2) for i, kind in enumerate(KINDS)}
_BAND = 0.09
#: at most this many input ids in a finding's selection
MAX_SELECTED_INPUTS = 500


def make_finding(kind: str, text: str, view: str, selection: dict, strength: float, evidence: dict,
                 confidence: dict | None = None, check: str = "") -> dict:
    """One finding, JSON-ready.

    ``confidence``: the statistics behind the claim, e.g. ``{"test": "Fisher exact, BH over 96
    tests", "p": 1e-9, "q": 2e-8}`` (``{}`` for a purely descriptive finding). ``check``: one line
    on how to see it in the viewer ("Open the topomap of head.relu grouped by background ...").
    """
    strength = float(np.clip(strength, 0.0, 1.0))
    return {"kind": kind, "text": text, "view": view, "selection": plain(selection),
            "score": round(_BASE[kind] + _BAND * strength, 4), "evidence": plain(evidence),
            "confidence": plain(confidence or {}), "check": check}


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


#: a merged finding names at most this many items in its sentence (all are in its evidence)
NAMED_IN_TEXT = 3


def name_list(names: list[str], most: int = NAMED_IN_TEXT) -> str:
    """"a", "a and b", "a, b and c", "a, b, c and 18 more": a list a sentence can hold."""
    names = [str(n) for n in names]
    if len(names) > most:
        return f"{', '.join(names[:most])} and {len(names) - most} more"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


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


def short_number(x: float) -> str:
    """0.003 stays 0.003; 2.1e-09 becomes 2e-9 (one significant digit, no exponent padding)."""
    if x >= 1e-3 or x == 0:
        return f"{x:.2g}"
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"
