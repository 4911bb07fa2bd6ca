"""umap-learn with its numba kernels kept in numba's on-disk cache.

umap-learn compiles its kernels (exact nearest neighbours, the fuzzy graph, the layout
epochs, its distances) afresh in every process, because they are not declared
``cache=True``. On a 2-core machine that is 10-35 s before the first layout of a process,
whatever the size of the layer: most of what ``neurocarta topomap`` took on a small layer
(issue 17). Turning numba's cache on for them is what ``cache=True`` does: numba writes the
compiled code beside umap's sources (or, where those are read-only, into its user-wide
cache), keyed to the source files, and later processes load it in a fraction of a second.
The layouts are the same: the cache holds the same machine code.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

#: umap-learn's modules that hold the kernels its UMAP estimator runs
KERNEL_MODULES = ("umap.umap_", "umap.utils", "umap.layouts", "umap.distances", "umap.spectral")


@cache
def umap_module() -> ModuleType:
    """``import umap``, with numba's cache turned on for every kernel of ``KERNEL_MODULES``
    (once per process; a module a later umap-learn lacks is skipped)."""
    from numba.core.dispatcher import Dispatcher

    umap = importlib.import_module("umap")
    for name in KERNEL_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for value in vars(module).values():
            if isinstance(value, Dispatcher):
                try:
                    value.enable_caching()
                except RuntimeError:  # numba finds no place to cache this one: it compiles as before
                    continue
    return umap
