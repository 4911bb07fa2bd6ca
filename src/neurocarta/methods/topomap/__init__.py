"""Topographic activation maps (after Krug et al.): neuron layouts and how faithful they are."""

from .metrics import continuity, distance_spearman, layout_quality, neighbourhood_preservation, trustworthiness

__all__ = ["continuity", "distance_spearman", "layout_quality", "neighbourhood_preservation", "trustworthiness"]
