"""neurocarta: map what a trained neural network has learned.

>>> import neurocarta as nc
>>> atlas = nc.extract("demo-cnn", "shapes", out="runs/shapes")
>>> atlas = nc.open_atlas("runs/shapes")
>>> atlas.activations("features.block2")[:10]

Names load on first use, so ``import neurocarta`` stays light and the methods (which never
need torch) can be imported without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .errors import AtlasError, LayerError, NonFiniteError, SpecError, UserError

_LAZY = {
    "extract": "capture", "list_layers": "capture",
    "load_data": "data", "DataSource": "data",
    "load_model": "models", "ModelBundle": "models", "ModelInputs": "models",
    "open_atlas": "store", "Atlas": "store", "GroupStats": "store", "LayerActivations": "store",
    "LayerInfo": "store",
    "TopoMap": "methods.topomap", "topomap": "methods.topomap", "TopoMapResult": "methods.topomap",
    "load_topomap": "methods.topomap", "group_difference": "methods.topomap",
    "Mapper": "methods.mapper", "mapper": "methods.mapper", "MapperResult": "methods.mapper",
    "load_mapper": "methods.mapper",
    "ConceptAtlas": "methods.concepts", "concepts": "methods.concepts", "ConceptResult": "methods.concepts",
    "load_concepts": "methods.concepts",
    "attribute": "attribution",
    "visualize": "featvis",
    "show": "viewer.notebook",
}

__all__ = [
    "__version__", "extract", "list_layers", "open_atlas", "load_data", "load_model",
    "Atlas", "LayerActivations", "LayerInfo", "GroupStats", "DataSource", "ModelBundle", "ModelInputs",
    "TopoMap", "topomap", "TopoMapResult", "load_topomap", "group_difference",
    "Mapper", "mapper", "MapperResult", "load_mapper", "ConceptAtlas", "concepts", "ConceptResult", "load_concepts",
    "UserError", "AtlasError", "LayerError", "SpecError", "NonFiniteError", "attribute",
    "visualize", "show",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurocarta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
