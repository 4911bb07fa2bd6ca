"""Capture: run any torch model over a data source with hooks and stream activations."""

from .extraction import ExtractOptions, extract
from .inspect import LayerListing, list_layers
from .layers import LayerRef, resolve_layers

__all__ = ["ExtractOptions", "LayerListing", "LayerRef", "extract", "list_layers", "resolve_layers"]
