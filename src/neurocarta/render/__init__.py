"""Figures (matplotlib, no pyplot): what the CLI writes under ``ATLAS/figures/``."""

from .concepts import plot_concept_graph, plot_projection
from .mapper import plot_mapper
from .topomap import animate_topomap, dendrogram_order, plot_difference, plot_topomap, save_figure

__all__ = ["plot_concept_graph", "plot_projection", "plot_mapper", "animate_topomap", "dendrogram_order", "plot_difference", "plot_topomap", "save_figure"]
