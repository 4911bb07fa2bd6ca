"""What an attribution explains: the predicted class, a chosen class, one neuron, or a concept
group (the sum of its members' activations), parsed from ``--target`` and checked against
the atlas before any model loads, so a typo costs nothing and leaves the atlas as it was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from ..store import Atlas

TARGET_FORMS = "predicted, class:N (or class:NAME), neuron:LAYER:N or concept:LAYER:GROUP"
METHODS = {"saliency": "saliency", "ig": "integrated_gradients", "integrated_gradients": "integrated_gradients",
           "integrated-gradients": "integrated_gradients"}


@dataclass(frozen=True)
class Target:
    """``kind``: predicted | class | neuron | concept. ``units``: the class index (class), the
    neuron (neuron) or the group's member neurons in ``layer`` (concept). ``target``: what the
    stored item names (the class or neuron index, the group id; empty for predicted, whose
    class is known per input)."""

    kind: str
    target: str = ""
    layer: str | None = None
    units: tuple[int, ...] = ()

    @property
    def on_layer(self) -> bool:
        return self.kind in ("neuron", "concept")


def parse_method(method: str) -> str:
    name = METHODS.get(str(method).strip().lower())
    if name is None:
        raise UserError(f"unknown attribution method {method!r}; use saliency (fast) or ig (integrated gradients)")
    return name


def parse_target(spec: str, atlas: Atlas, snapshot: str) -> Target:
    """A :class:`Target` from ``--target``, checked against ``atlas`` (its classes, layers,
    neurons and the concept groups stored for ``snapshot``)."""
    text = str(spec).strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind == "predicted" and not rest:
        return Target("predicted")
    if kind == "class" and rest:
        return Target("class", str(_class_index(rest.strip(), atlas)))
    if kind in ("neuron", "concept") and ":" in rest:
        layer, _, number = rest.rpartition(":")
        if layer not in atlas.layer_names:
            raise UserError(f"--target {text!r}: the atlas has no layer {layer!r}; its layers: "
                            f"{', '.join(atlas.layer_names)}")
        value = _integer(number, text)
        if kind == "neuron":
            n = atlas.manifest.layer(layer).n_neurons
            if not 0 <= value < n:
                raise UserError(f"--target {text!r}: layer {layer!r} has neurons 0 to {n - 1}")
            return Target("neuron", str(value), layer, (value,))
        return Target("concept", str(value), layer, _group_members(atlas, snapshot, layer, value, text))
    raise UserError(f"unknown attribution target {text!r}; use {TARGET_FORMS}")


def _integer(text: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UserError(f"--target {spec!r}: {text!r} is not a whole number") from None


def _class_index(text: str, atlas: Atlas) -> int:
    names = list(atlas.manifest.model.get("class_names") or atlas.class_names or [])
    if text in names:
        return names.index(text)
    value = _integer(text, f"class:{text}")
    if names and not 0 <= value < len(names):
        raise UserError(f"--target class:{text}: the model has classes 0 to {len(names) - 1} "
                        f"({', '.join(names[:8])}{'...' if len(names) > 8 else ''})")
    if value < 0:
        raise UserError(f"--target class:{text}: a class index is 0 or more")
    return value


def _group_members(atlas: Atlas, snapshot: str, layer: str, group: int, spec: str) -> tuple[int, ...]:
    if snapshot not in atlas.maps("concepts"):
        raise UserError(f"--target {spec!r}: the atlas has no concept groups for snapshot {snapshot!r}; "
                        "run `neurocarta concepts` (or `neurocarta map`) first")
    neurons = atlas.load_map("concepts", snapshot)[0]["neurons"]
    members = neurons[(neurons["layer"] == layer) & (neurons["cluster"] == group)]["unit"]
    if group < 0 or members.empty:
        have = sorted(int(c) for c in neurons[(neurons["layer"] == layer) & (neurons["cluster"] >= 0)]["cluster"].unique())
        raise UserError(f"--target {spec!r}: layer {layer!r} has no concept group {group}; its groups: "
                        f"{', '.join(map(str, have[:12]))}{'...' if len(have) > 12 else ''}"
                        if have else f"--target {spec!r}: layer {layer!r} has no concept groups")
    return tuple(sorted(int(u) for u in members))
