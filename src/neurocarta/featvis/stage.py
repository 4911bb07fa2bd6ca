"""Feature visualizations as a map stage: ``neurocarta map`` and the demo run it last, once
the viewer is up (``after_viewer``), unless ``--no-featvis``.

The pipeline holds no torch, so this stage is not in ``pipeline.MAP_STAGES``: the commands
that run stages with the model at hand take :func:`map_stages`. The stage visualises every
neuron of each image conv or dense layer, its stored concept groups and Mapper nodes, and
the classes; on an atlas where that is more than :data:`MOST_TARGETS` images on the CPU it
makes none and says how to ask for a part with ``neurocarta visualize``.
"""

from __future__ import annotations

import torch

from ..pipeline import MAP_STAGES, MapOptions, MapStage, Report
from ..store.atlas import Atlas
from .optimize import Settings
from .run import choose_targets, visualize

MOST_TARGETS = 1500  # about 10 CPU minutes for demo-cnn's layers; a GPU takes 20 times more


def featvis_stage(atlas: Atlas, o: MapOptions, report: Report, settings: Settings | None = None) -> list[str]:
    """Make and store the visualizations the stage makes (see the module docstring); the
    lines say what was made, or why nothing was."""
    if atlas.manifest.data.get("modality") != "image":
        return ["featvis  skipped: feature visualization takes image models"]
    snap = atlas.snapshot_name(None)
    names = [n for n in (atlas.select_layers(o.layers) if o.layers else atlas.layer_names)
             if atlas.manifest.layer(n).kind in ("conv", "dense") and atlas.manifest.layer(n).rows == "input"]
    concepts = snap in atlas.maps("concepts")
    mappers = set(atlas.maps("mapper"))
    plan = {n: (concepts, n in mappers) for n in names}
    count = sum(len(choose_targets(atlas, n, snap, True, c, m)) for n, (c, m) in plan.items())
    count += len(atlas.class_names or [])
    most = MOST_TARGETS * (20 if torch.cuda.is_available() else 1)
    if count > most:
        return [f"featvis  skipped: {count} targets would take long here; make the ones you want with "
                f"neurocarta visualize {atlas.url} --layers ... [--neurons ...] [--concepts] [--mapper-nodes]"]
    lines, done = [], 0
    for name, (with_concepts, with_nodes) in plan.items():
        for run in visualize(atlas, [name], neurons=True, concepts=with_concepts, mapper_nodes=with_nodes,
                             snapshot=snap, settings=settings or Settings(seed=o.seed), progress=o.progress):
            lines.append(run.summary_line())
        done += 1
        report(done, len(plan) + 1)
    if atlas.class_names:
        for run in visualize(atlas, None, neurons=False, classes=True, snapshot=snap,
                             settings=settings or Settings(seed=o.seed), progress=o.progress):
            lines.append(run.summary_line())
    report(len(plan) + 1, len(plan) + 1)
    return lines


FEATVIS_STAGE = MapStage("featvis", "feature visualizations", featvis_stage, unit="layers", after_viewer=True)


def map_stages(featvis: bool = True) -> list[MapStage]:
    """The stages ``neurocarta map`` and the demo run: ``pipeline.MAP_STAGES``, then feature
    visualization unless ``featvis`` is false (``--no-featvis``)."""
    return MAP_STAGES + ([FEATVIS_STAGE] if featvis else [])
