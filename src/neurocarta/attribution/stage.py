"""Attributions as a map stage: after the maps, ``neurocarta map`` and the demo attribute the
inputs the findings name (a few per finding, at most :data:`MOST_INPUTS`) with saliency for
the predicted class, so the inspector shows why the model answered as it did on exactly the
inputs a reader is sent to. It takes a second or two on the CPU.

The pipeline holds no torch, so this stage is not in ``pipeline.MAP_STAGES``: the commands
that run the stages add it with :func:`with_attributions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..capture.reload import reload_model
from ..errors import UserError
from ..findings import findings
from ..pipeline import MapOptions, MapStage, Report
from ..store import attributions as stored
from .run import compute
from .targets import Target

if TYPE_CHECKING:
    from ..store import Atlas

#: at most this many inputs in all, and this many from each finding (in the findings' order)
MOST_INPUTS = 32
PER_FINDING = 4


def findings_inputs(atlas: Atlas, most: int = MOST_INPUTS, per_finding: int = PER_FINDING) -> list[int]:
    """The first inputs each finding selects, most pressing finding first, without repeats."""
    ids: list[int] = []
    for finding in findings(atlas):
        for i in list((finding.get("selection") or {}).get("inputs") or [])[:per_finding]:
            if int(i) not in ids:
                ids.append(int(i))
            if len(ids) >= most:
                return ids
    return ids


def attribution_stage(atlas: Atlas, o: MapOptions, report: Report) -> list[str]:
    """Attribute and store the findings' inputs (see the module docstring); the line says what
    was made, or why nothing was."""
    if atlas.manifest.data.get("modality") not in ("image", "text"):
        return ["attributions  skipped: attributions are drawn on images and texts"]
    outputs = atlas.outputs()
    if outputs is None or "pred" not in outputs.columns:
        return ["attributions  skipped: the model has no class outputs; attribute a neuron or a concept group "
                f"with neurocarta attribute {atlas.url} --inputs ... --target neuron:LAYER:N"]
    ids = findings_inputs(atlas)
    report(0, len(ids))
    if not ids:
        return ["attributions  none: no finding names inputs"]
    try:
        model = reload_model(atlas, progress=o.progress)
    except UserError as e:  # a model given to extract as an object: the maps stand without this
        return [f"attributions  skipped: {e}"]
    items = compute(model, ids, Target("predicted"), "saliency", steps=2, progress=o.progress)
    stored.save(atlas, model.snapshot, items)
    report(len(ids), len(ids))
    return [f"attributions {len(items)} inputs named by the findings (saliency of the predicted class, "
            f"snapshot {model.snapshot})"]


ATTRIBUTION_STAGE = MapStage("attributions", "attributions of the findings' inputs", attribution_stage, unit="inputs")


def with_attributions(stages: list[MapStage]) -> list[MapStage]:
    """``stages`` with the attribution stage after the maps it reads (the findings need them)
    and before any slow stage that waits for the viewer."""
    at = next((k for k, s in enumerate(stages) if s.after_viewer), len(stages))
    return [*stages[:at], ATTRIBUTION_STAGE, *stages[at:]]
