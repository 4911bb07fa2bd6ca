"""The atlas manifest: what an atlas holds and how it was made.

``manifest.json`` sits at the atlas root. It records the schema version, the neurocarta
version, the model and data specs, every layer (name, kind, output shape, neuron count),
the snapshots, the extraction parameters, the column roles the user declared and whether
the atlas is complete.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AtlasError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
PROGRESS = "progress.json"


@dataclass
class LayerInfo:
    """One captured layer.

    ``kind`` is ``conv`` (N,C,H,W: one row per input, spatial mean/max/argmax), ``dense``
    (N,C) or ``sequence`` (N,T,C: one row per token, or per input when ``pooling`` is set).
    ``output_shape`` is the per-input shape seen on the probe sample, without the batch axis.
    """

    name: str
    kind: str
    output_shape: list[int]
    n_neurons: int
    rows: str = "input"  # "input" or "token"
    pooling: str | None = None
    spatial: list[int] | None = None  # (H, W) for conv layers
    n_rows: int | None = None  # rows per snapshot once complete
    # conv layers: side in input pixels of the region reaching the centre unit, measured at
    # extraction (capture/receptive.py); None when unknown or for atlases made before it
    receptive_field: int | None = None

    @property
    def signals(self) -> list[str]:
        """The per-row arrays stored for this layer."""
        return ["mean", "max"] if self.kind == "conv" else ["value"]


@dataclass
class Manifest:
    model: dict[str, Any]
    data: dict[str, Any]
    layers: list[LayerInfo]
    snapshots: list[dict[str, Any]]
    params: dict[str, Any]
    n_inputs: int
    created: str
    neurocarta_version: str
    schema_version: int = SCHEMA_VERSION
    complete: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # roles the user declared for table columns ({name: role}, see schema.py); they win over
    # the inferred ones. Absent in older manifests, which read as none declared.
    columns: dict[str, str] = field(default_factory=dict)

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        names = ", ".join(i.name for i in self.layers)
        raise AtlasError(f"the atlas has no layer {name!r}; it has: {names}")

    def snapshot_names(self) -> list[str]:
        return [s["name"] for s in self.snapshots]

    def identity(self) -> dict[str, Any]:
        """What must match for an existing partial atlas to be resumed."""
        keep = {k: v for k, v in self.params.items() if k not in ("batch_size", "device", "progress")}
        return {
            "model": self.model.get("spec"),
            "data": self.data.get("spec"),
            "layers": [i.name for i in self.layers],
            "snapshots": [s["name"] for s in self.snapshots],
            "params": keep,
            "n_inputs": self.n_inputs,
        }

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], where: Path | str = "") -> "Manifest":
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise AtlasError(
                f"atlas {where} has schema version {version}, this neurocarta reads version "
                f"{SCHEMA_VERSION}; re-extract it with this version"
            )
        try:
            layers = [LayerInfo(**l) for l in d["layers"]]
            return cls(
                model=d["model"], data=d["data"], layers=layers, snapshots=d["snapshots"],
                params=d["params"], n_inputs=int(d["n_inputs"]), created=d["created"],
                neurocarta_version=d["neurocarta_version"], schema_version=version,
                complete=bool(d.get("complete", False)), extra=d.get("extra", {}),
                columns=dict(d.get("columns") or {}),
            )
        except (KeyError, TypeError) as e:
            raise AtlasError(f"atlas {where} has a corrupt manifest.json ({e}); re-extract it") from e


def json_text(obj: Any) -> str:
    """The JSON text of a manifest or progress record (numpy values become plain ones)."""
    return json.dumps(obj, indent=1, default=_json_default)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_manifest(root: "Location | Path | str") -> Manifest:
    from .location import as_location

    loc = as_location(root)
    if not loc.exists():
        raise AtlasError(f"no atlas at {loc}: the folder does not exist")
    if not loc.exists(MANIFEST):
        raise AtlasError(f"{loc} is not an atlas: it has no {MANIFEST}. Point to a folder made by `neurocarta extract`")
    try:
        d = json.loads(loc.read_text(MANIFEST))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AtlasError(f"atlas {loc} has a corrupt {MANIFEST} ({e.__class__.__name__}); re-extract it") from e
    if not isinstance(d, dict):
        raise AtlasError(f"atlas {loc} has a corrupt {MANIFEST}; re-extract it")
    return Manifest.from_json(d, str(loc))
