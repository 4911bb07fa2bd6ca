"""The atlas store: one folder holding a Zarr v3 group, Parquet tables and a manifest."""

from .atlas import Atlas, GroupStats, LayerActivations, open_atlas
from .info import atlas_info, format_info
from .manifest import SCHEMA_VERSION, LayerInfo, Manifest

__all__ = ["Atlas", "GroupStats", "LayerActivations", "LayerInfo", "Manifest", "SCHEMA_VERSION", "atlas_info",
           "format_info", "open_atlas"]
