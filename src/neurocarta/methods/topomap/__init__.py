"""Topographic activation maps (after Krug et al.): neuron layouts and how faithful they are."""

from typing import TYPE_CHECKING

from ...render.images import grid_images, map_images  # drawn by render; kept here as public names
from .estimator import TopoMap
from .layouts import align, layout
from .metrics import (continuity, distance_spearman, layout_quality, neighbourhood_preservation, smoothness_auc,
                      trustworthiness)
from .profiles import Profiles, atlas_profiles, contrastive, nap, raw_profiles
from .result import TopoMapResult, topomap
from .stats import Difference, bh_adjust, group_difference, separation

if TYPE_CHECKING:
    from ...store import Atlas


def load_topomap(atlas: "Atlas", layer: str, group_by: str = "label") -> TopoMapResult:
    """A topographic map stored in ``atlas`` by ``topomap(..., save=True)`` or the CLI."""
    return TopoMapResult.load(atlas, layer, group_by)


__all__ = ["TopoMap", "TopoMapResult", "Difference", "Profiles", "align", "atlas_profiles", "bh_adjust", "continuity",
           "contrastive", "distance_spearman", "grid_images", "group_difference", "layout", "layout_quality",
           "load_topomap", "map_images", "nap", "neighbourhood_preservation", "raw_profiles", "separation",
           "smoothness_auc", "topomap", "trustworthiness"]
