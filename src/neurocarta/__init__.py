"""neurocarta: map what a trained neural network has learned.

>>> import neurocarta as nc
>>> atlas = nc.extract("demo-cnn", "shapes", out="runs/shapes")
>>> atlas = nc.open_atlas("runs/shapes")
>>> atlas.activations("features.block2")[:10]
"""

from ._version import __version__
from .capture import extract, list_layers
from .data import DataSource, load_data
from .errors import AtlasError, LayerError, NonFiniteError, SpecError, UserError
from .models import ModelBundle, ModelInputs, load_model
from .store import Atlas, GroupStats, LayerActivations, LayerInfo, open_atlas

__all__ = [
    "__version__", "extract", "list_layers", "open_atlas", "load_data", "load_model",
    "Atlas", "LayerActivations", "LayerInfo", "GroupStats", "DataSource", "ModelBundle", "ModelInputs",
    "UserError", "AtlasError", "LayerError", "SpecError", "NonFiniteError",
]
