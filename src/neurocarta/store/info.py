"""What ``neurocarta info`` (and ``extract`` and the demo, when they finish) says about an
atlas: a JSON-ready description and its plain-text rendering."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .atlas import Atlas


def atlas_info(atlas: Atlas) -> dict[str, Any]:
    """The atlas's location, completeness, specs, snapshots, layers and size, JSON-ready."""
    done, total = atlas.progress()
    m = atlas.manifest
    return {
        "path": atlas.url, "complete": atlas.complete, "n_inputs": atlas.n_inputs,
        "inputs_done": done, "inputs_total": total,
        "mode": atlas.mode, "model": m.model.get("spec"), "data": m.data.get("spec"),
        "snapshots": atlas.snapshots,
        "layers": [{"name": l.name, "kind": l.kind, "n_neurons": l.n_neurons, "rows": l.rows,
                    "n_rows": l.n_rows, "output_shape": l.output_shape} for l in atlas.layers],
        "size_bytes": atlas.size_on_disk(), "created": m.created, "neurocarta_version": m.neurocarta_version,
        "schema_version": m.schema_version,
    }


def format_info(info: dict[str, Any]) -> str:
    """:func:`atlas_info`'s description as aligned lines for a terminal."""
    state = "complete" if info["complete"] else f"incomplete: {info['inputs_done']} of {info['inputs_total']} inputs"
    lines = [
        f"atlas     {info['path']} ({state})",
        f"model     {info['model']}",
        f"data      {info['data']} ({info['n_inputs']} inputs, mode {info['mode']})",
        f"snapshots {', '.join(info['snapshots'])}",
        f"size      {info['size_bytes'] / 1e6:.1f} MB",
        "layers",
    ]
    width = max(len(l["name"]) for l in info["layers"])
    for l in info["layers"]:
        rows = f"{l['n_rows']} {l['rows']} rows" if l["n_rows"] is not None else f"{l['rows']} rows"
        lines.append(f"  {l['name']:<{width}}  {l['kind']:<8} {l['n_neurons']:>6} neurons  {rows}")
    return "\n".join(lines)
