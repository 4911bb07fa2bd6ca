"""Mapper graphs of activation space (after TopoAct): lenses, covers, exact fast DBSCAN."""

from typing import TYPE_CHECKING

from .analysis import anomalies, flow, pick_stable, separation_layers, sweep
from .cluster import auto_eps, dbscan, single_linkage_gap
from .cover import Cover
from .estimator import Mapper
from .graph import MapperGraph, build_edges, node_table
from .lens import compute_lens
from .result import MapperResult, mapper

if TYPE_CHECKING:
    from ...store import Atlas


def load_mapper(atlas: "Atlas", layer: str) -> MapperResult:
    """A Mapper graph stored in ``atlas`` by ``mapper(..., save=True)`` or the CLI."""
    return MapperResult.load(atlas, layer)

__all__ = ["anomalies", "flow", "pick_stable", "separation_layers", "sweep", "Cover", "Mapper", "MapperGraph", "MapperResult", "load_mapper", "mapper", "auto_eps", "build_edges", "compute_lens", "dbscan", "node_table",
           "single_linkage_gap"]
