"""Figures (matplotlib, no pyplot): what the CLI writes under ``ATLAS/figures/``."""

from .topomap import animate_topomap, dendrogram_order, plot_difference, plot_topomap, save_figure

__all__ = ["animate_topomap", "dendrogram_order", "plot_difference", "plot_topomap", "save_figure"]
