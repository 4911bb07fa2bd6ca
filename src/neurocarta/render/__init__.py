"""Figures (matplotlib, no pyplot): what the CLI writes under ``ATLAS/figures/``."""

from .comparison import figure_png
from .concepts import plot_concept_graph, plot_projection
from .mapper import plot_mapper
from .palette import Legend, class_legend, make_legend, palette
from .topomap import animate_topomap, dendrogram_order, plot_difference, plot_topomap, save_figure

__all__ = ["figure_png", "Legend", "class_legend", "make_legend", "palette", "plot_concept_graph", "plot_projection", "plot_mapper", "animate_topomap", "dendrogram_order", "plot_difference", "plot_topomap", "save_figure"]
