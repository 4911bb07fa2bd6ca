"""Topographic activation maps (after Krug et al.): neuron layouts and how faithful they are."""

from .estimator import TopoMap
from .layouts import align, layout
from .metrics import continuity, distance_spearman, layout_quality, neighbourhood_preservation, trustworthiness
from .profiles import Profiles, atlas_profiles, nap

__all__ = ["TopoMap", "align", "layout", "Profiles", "atlas_profiles", "continuity", "distance_spearman", "layout_quality", "nap",
           "neighbourhood_preservation", "trustworthiness"]
