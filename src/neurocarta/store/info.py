"""What ``neurocarta info`` (and ``extract`` and the demo, when they finish) says about an
atlas: a JSON-ready description and its plain-text rendering.

It includes the model's accuracy per snapshot when the data's labels are the model's classes
(``correct`` is known), and flags an accuracy at chance level, so that an atlas of random
weights (a forgotten ``--checkpoint``) is visible at once. The rule (:func:`accuracy_of`):
chance is the accuracy of always answering the most common label (at least 1 / classes; a
network with random weights tends to answer one class for everything, so this is what it
scores), and an accuracy is at chance when a one-sided binomial test cannot tell it above
that rate at the 1% level. The test, rather than a fixed margin, makes a few lucky inputs of
a small atlas no evidence of training, while a large atlas need only be clearly above chance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import binomtest

from . import schema

#: An accuracy whose one-sided binomial p-value against chance is at least this is "at chance".
CHANCE_P_VALUE = 0.01

if TYPE_CHECKING:
    from .atlas import Atlas


def atlas_info(atlas: Atlas) -> dict[str, Any]:
    """The atlas's location, completeness, specs, snapshots, layers and size, JSON-ready."""
    done, total = atlas.progress()
    m = atlas.manifest
    return {
        "path": atlas.url, "complete": atlas.complete, "n_inputs": atlas.n_inputs,
        "inputs_done": done, "inputs_total": total,
        "mode": atlas.mode, "model": m.model.get("spec"), "checkpoint": m.params.get("checkpoint"),
        "data": m.data.get("spec"),
        "snapshots": atlas.snapshots,
        "layers": [{"name": l.name, "kind": l.kind, "n_neurons": l.n_neurons, "rows": l.rows,
                    "n_rows": l.n_rows, "output_shape": l.output_shape} for l in atlas.layers],
        "size_bytes": atlas.size_on_disk(), "created": m.created, "neurocarta_version": m.neurocarta_version,
        "schema_version": m.schema_version, "accuracy": accuracy_by_snapshot(atlas),
    }


def accuracy_by_snapshot(atlas: Atlas) -> list[dict[str, Any]]:
    """:func:`accuracy_of` each snapshot's outputs, in snapshot order; a snapshot where
    ``correct`` is never known (no labels, or labels that are not the model's classes) has none."""
    if not atlas.complete:  # the outputs of a partial atlas are partial
        return []
    table = atlas.input_table
    labels = table.set_index(schema.INPUT_ID)[schema.LABEL] if schema.LABEL in table.columns else None
    out = []
    for snap in atlas.snapshots:
        outputs = atlas.outputs(snap)
        if outputs is None or schema.CORRECT not in outputs.columns:
            return []
        rows = outputs[outputs[schema.CORRECT].notna()]
        if len(rows):
            scored = labels.reindex(rows[schema.INPUT_ID]).to_numpy() if labels is not None else None
            out.append({"snapshot": snap, **accuracy_of(rows[schema.CORRECT].to_numpy(bool), scored,
                                                        len(atlas.class_names))})
    return out


def accuracy_of(correct: np.ndarray, labels: np.ndarray | None, n_classes: int) -> dict[str, Any]:
    """The accuracy of ``correct`` (one bool per scored input), the chance rate and whether it
    is at chance (see the module docstring). ``labels``: the scored inputs' labels."""
    n, k = len(correct), int(np.sum(correct))
    majority = float(np.unique(labels, return_counts=True)[1].max() / n) if labels is not None and n else 0.0
    chance = max(majority, 1.0 / n_classes if n_classes else 0.0)
    p_value = float(binomtest(k, n, chance, alternative="greater").pvalue) if 0 < chance < 1 else 1.0
    return {"n": n, "correct": k, "accuracy": k / n, "chance": chance, "p_value": p_value,
            "at_chance": p_value >= CHANCE_P_VALUE}


def chance_warnings(info: dict[str, Any]) -> list[str]:
    """One line per snapshot of :func:`atlas_info` whose accuracy is at chance level."""
    return [f"snapshot {a['snapshot']}: accuracy {a['accuracy']:.1%} on {a['n']} labelled inputs is at chance "
            f"level (always answering the most common label scores {a['chance']:.1%}; binomial test p = "
            f"{a['p_value']:.2g}): are these random weights? load trained ones with --checkpoint FILE"
            for a in info.get("accuracy", []) if a["at_chance"]]


def format_info(info: dict[str, Any]) -> str:
    """:func:`atlas_info`'s description as aligned lines for a terminal."""
    state = "complete" if info["complete"] else f"incomplete: {info['inputs_done']} of {info['inputs_total']} inputs"
    lines = [
        f"atlas     {info['path']} ({state})",
        f"model     {info['model']}" + (f" (checkpoint {info['checkpoint']})" if info.get("checkpoint") else ""),
        f"data      {info['data']} ({info['n_inputs']} inputs, mode {info['mode']})",
        f"snapshots {', '.join(info['snapshots'])}",
        f"size      {info['size_bytes'] / 1e6:.1f} MB",
        "layers",
    ]
    if info.get("accuracy"):
        lines.insert(4, "accuracy  " + ", ".join(
            f"{a['snapshot']} {a['accuracy']:.1%}{' (at chance)' if a['at_chance'] else ''}" for a in info["accuracy"])
            + f"; {info['accuracy'][-1]['n']} labelled inputs")
    width = max(len(l["name"]) for l in info["layers"])
    for l in info["layers"]:
        rows = f"{l['n_rows']} {l['rows']} rows" if l["n_rows"] is not None else f"{l['rows']} rows"
        lines.append(f"  {l['name']:<{width}}  {l['kind']:<8} {l['n_neurons']:>6} neurons  {rows}")
    return "\n".join(lines)
