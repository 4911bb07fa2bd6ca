"""Findings in plain language, generated from the maps stored in an atlas.

The topographic-maps paper promised maps that people who are not ML experts can read. This
module turns what the maps already measured into short sentences, each with the view and
the selection that shows it, so the viewer's findings panel can link to the evidence:

- ``separation``: "21 classes separate from the others at layer _blocks.3 (airplane, apple,
  banana and 18 more): ...", one finding per layer (Mapper's :func:`separation_layers`;
  without Mapper results, the topomap's class separation names the layer where the classes
  are most apart).
- ``concept``: "Cluster 4 (12 neurons in features.block4) responds to colour red: 91% of its
  neurons' top inputs have that value (coherence 0.91; random groups of its size: 0.35)",
  one finding per layer: concept clusters whose exemplars share one attribute value far
  more than random groups of the same size do.
- ``shortcut``: "Inputs with noise background push the model toward class circle": an
  attribute value that raises the predictions of one class among inputs of the same true
  label (a within-label contrast, so class balance alone cannot fire it).
- ``mislabels``, ``confusion``, ``underperforming``, ``outlier``, ``duplicate``: cleanlab's
  Datalab on the activations of the deepest non-logits layer (findings/labels.py): "38 inputs
  look mislabelled: ... (35 labelled star look like cross, ...)" when their neighbours and the
  model both put them in another class; "The model confuses ..." when the model errs on inputs
  whose labels their neighbours share (findings/mislabels.py).
- ``training``: "Class separation in head.relu rose from 0.22 to 0.80 during training"
  (several snapshots).

Every rule reads results already in the atlas (``neurocarta map`` or the demo stores them)
and the model outputs of the input table; a rule whose inputs are missing is skipped, so
an atlas with no maps still gets the rules that need only the outputs.

Each finding is a plain dict, JSON-ready::

    {"kind": "shortcut", "text": "...", "view": "topomap",
     "selection": {"layer": ..., "group_by": "background", "group": "noise", "class": "circle"},
     "score": 0.93, "evidence": {...the numbers behind the sentence...}}

The list is ordered by what a reader should look at first: problems to act on (shortcut,
mislabels), then what the model confuses or fails on (confusion, underperforming), then data
hygiene (outlier, duplicate), then descriptions of the maps (separation, training, concept);
within a kind, the strongest first. ``score`` says the same: a band of 0.1 per kind (shortcut
0.9 to 0.99, ..., concept 0.1 to 0.19), the finding's strength placing it inside the band.

One cause, one line: a finding whose inputs are mostly (``REPEAT_SHARE``) the inputs of a
finding listed before it repeats that cause on the same inputs, so it is folded into the
earlier one (its kind and text go to that finding's ``evidence["folded"]``).

Each finding's ``confidence`` holds the statistics behind it (``{}`` for a purely descriptive
one) and ``check`` one line on how to see it in the viewer; :func:`short_confidence` is the
one-line form the CLI prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from .common import KINDS, MAX_SELECTED_INPUTS, short_number
from .maps import concept_findings, separation_findings, training_findings
from .labels import label_issue_ranking
from .mislabels import mislabel_findings
from .shortcut import shortcut_candidates, shortcut_findings

if TYPE_CHECKING:
    from pathlib import Path

    from ..store import Atlas

__all__ = ["KINDS", "MAX_SELECTED_INPUTS", "REPEAT_SHARE", "findings", "ordered", "fold_repeats",
           "short_confidence", "has_maps", "has_labels", "shortcut_candidates", "shortcut_findings",
           "label_issue_ranking", "mislabel_findings", "separation_findings", "training_findings",
           "concept_findings"]

#: a finding is a repeat of an earlier one when at least this share of its inputs are that one's
REPEAT_SHARE = 0.8


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
    should select), ``score`` (for ordering), ``evidence`` (the numbers behind the text),
    ``confidence`` (its statistics) and ``check`` (how to see it in the viewer), in the order
    of :func:`ordered`, repeats folded (:func:`fold_repeats`). An empty list when nothing
    passes the rules (see :func:`has_maps` to tell why).
    """
    if not hasattr(atlas, "layer_names"):
        from ..store import open_atlas

        atlas = open_atlas(atlas)
    snap = atlas.snapshot_name(snapshot)
    rules = (  # every rule; the order here does not matter, ordered() sorts what they find
        shortcut_findings,
        mislabel_findings,
        separation_findings,
        training_findings,
        concept_findings,
    )
    out: list[dict] = []
    for rule in rules:
        out += rule(atlas, snap)
    return fold_repeats(ordered(out))


def ordered(found: Iterable[dict]) -> list[dict]:
    """Findings in reading order: by kind (the order of ``KINDS``), then strongest first."""
    return sorted(found, key=lambda f: (KINDS.index(f["kind"]), -f["score"], f["text"]))


def fold_repeats(found: list[dict]) -> list[dict]:
    """Drop each finding whose inputs are at least ``REPEAT_SHARE`` inputs of a finding kept
    before it (``found`` in reading order), noting it in that finding's ``evidence["folded"]``:
    the same inputs flagged again under another kind repeat one cause, and the first (the more
    pressing kind) is the one to read. Findings without inputs are always kept."""
    kept: list[tuple[dict, set]] = []
    for f in found:
        ids = set(f["selection"].get("inputs") or ())
        earlier = next((k for k, seen in kept if ids and len(ids & seen) >= REPEAT_SHARE * len(ids)), None)
        if earlier is None:
            kept.append((f, ids))
            continue
        earlier["evidence"].setdefault("folded", []).append(
            {"kind": f["kind"], "text": f["text"], "n_inputs": len(ids)})
    return [f for f, _ in kept]


def short_confidence(confidence: dict) -> str:
    """A finding's confidence in a few characters: "p = 0.003, q = 2e-9" ("" when it has no p
    or q: a descriptive finding)."""
    return ", ".join(f"{key} = {short_number(confidence[key])}" for key in ("p", "q")
                     if isinstance(confidence.get(key), (int, float)))


def has_maps(atlas: Atlas) -> bool:
    """Whether the atlas holds any stored map (topomap, Mapper or concepts)."""
    return any(atlas.maps(kind) for kind in ("topomap", "mapper", "concepts"))


def has_labels(atlas: Atlas) -> bool:
    """Whether any input is labelled; without labels the rules about classes (shortcut,
    mislabels, class separation, training) have nothing to judge."""
    table = atlas.input_table
    return "label" in table.columns and bool((table["label"] >= 0).any())

