"""Mapper graphs of activation space (after TopoAct): lenses, covers, exact fast DBSCAN."""

from .cluster import auto_eps, dbscan, single_linkage_gap
from .cover import Cover
from .estimator import Mapper
from .graph import MapperGraph, build_edges, node_table
from .lens import compute_lens

__all__ = ["Cover", "Mapper", "MapperGraph", "auto_eps", "build_edges", "compute_lens", "dbscan", "node_table",
           "single_linkage_gap"]
