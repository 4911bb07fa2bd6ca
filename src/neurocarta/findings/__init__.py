"""Findings in plain language, generated from the maps stored in an atlas.

The topographic-maps paper promised maps that people who are not ML experts can read. This
module turns what the maps already measured into short sentences, each with the view and
the selection that shows it, so the viewer's findings panel can link to the evidence:

- ``separation``: "Class ring separates from the others at layer features.block4"
  (Mapper's :func:`separation_layers`; without Mapper results, the topomap's class
  separation names the layer where the classes are most apart).
- ``concept``: "Cluster 4 (12 neurons in features.block4) responds to colour red: coherence
  0.91 (random groups: 0.35)": concept clusters whose exemplars share one attribute value
  far more than random groups of the same size do.
- ``shortcut``: "Inputs with noise background push the model toward class circle": an
  attribute value that raises the predictions of one class among inputs of the same true
  label (a within-label contrast, so class balance alone cannot fire it).
- ``mislabels``: "These 37 inputs labelled star look like class cross": inputs whose Mapper nodes
  are pure in another label (the evidence of Mapper's anomaly ranking, read as a cut).
- ``training``: "Class separation in head.relu rose from 0.22 to 0.80 during training"
  (several snapshots).

Every rule reads results already in the atlas (``neurocarta map`` or the demo stores them)
and the model outputs of the input table; a rule whose inputs are missing is skipped, so
an atlas with no maps still gets the rules that need only the outputs.

Each finding is a plain dict, JSON-ready::

    {"kind": "shortcut", "text": "...", "view": "topomap",
     "selection": {"layer": ..., "group_by": "background", "group": "noise", "class": "circle"},
     "score": 0.93, "evidence": {...the numbers behind the sentence...}}

``score`` orders the panel (highest first). It lies in [0, 1]: a base per kind (problems the
reader should act on first: shortcut 0.8, mislabels 0.7; then separation 0.5, training 0.45,
concept 0.3) plus up to 0.2 for the strength of that finding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import KINDS, MAX_SELECTED_INPUTS
from .maps import concept_findings, separation_findings, training_findings
from .mislabels import mislabel_candidates, mislabel_findings
from .shortcut import shortcut_candidates, shortcut_findings

if TYPE_CHECKING:
    from pathlib import Path

    from ..store import Atlas

__all__ = ["KINDS", "MAX_SELECTED_INPUTS", "findings", "has_maps", "has_labels", "shortcut_candidates",
           "shortcut_findings", "mislabel_candidates", "mislabel_findings", "separation_findings",
           "training_findings", "concept_findings"]


def findings(atlas: Atlas | str | Path, snapshot: str | None = None) -> list[dict[str, Any]]:
    """Plain-language findings from the maps stored in ``atlas``, highest score first.

    Parameters
    ----------
    atlas : an open :class:`~neurocarta.store.Atlas` (or its path).
    snapshot : the snapshot whose outputs and concept atlas are read (default: the last).

    Returns
    -------
    A list of dicts with ``kind``, ``text`` (one plain sentence), ``view`` (``topomap``,
    ``projection``, ``graph``, ``mapper`` or ``inspector``), ``selection`` (what the viewer
    should select), ``score`` (for ordering) and ``evidence`` (the numbers behind the text).
    An empty list when nothing passes the rules (see :func:`has_maps` to tell why).
    """
    if not hasattr(atlas, "layer_names"):
        from ..store import open_atlas

        atlas = open_atlas(atlas)
    snap = atlas.snapshot_name(snapshot)
    out: list[dict] = []
    for rule in (shortcut_findings, mislabel_findings, separation_findings, training_findings, concept_findings):
        out += rule(atlas, snap)
    return sorted(out, key=lambda f: (-f["score"], KINDS.index(f["kind"]), f["text"]))


def has_maps(atlas: Atlas) -> bool:
    """Whether the atlas holds any stored map (topomap, Mapper or concepts)."""
    return any(atlas.maps(kind) for kind in ("topomap", "mapper", "concepts"))


def has_labels(atlas: Atlas) -> bool:
    """Whether any input is labelled; without labels the rules about classes (shortcut,
    mislabels, class separation, training) have nothing to judge."""
    table = atlas.input_table
    return "label" in table.columns and bool((table["label"] >= 0).any())

