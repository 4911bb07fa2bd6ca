"""Run the map methods over an atlas's layers and write what they make: results into the
atlas (``maps/``) and figures under ``ATLAS/figures/``. The CLI and the demo call this.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError
from .methods.defaults import TOPOMAP_DISTANCE, TOPOMAP_METHOD, TOPOMAP_PROFILE
from .store.layout import FIGURES, node

if TYPE_CHECKING:
    from .methods.concepts import ConceptResult
    from .methods.mapper import MapperResult
    from .methods.topomap import TopoMapResult
    from .store import Atlas


@dataclass
class TopomapRun:
    """What ``build_topomaps`` made for one layer."""

    layer: str
    result: TopoMapResult
    figures: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        r = self.result
        m = r.metrics
        return {"layer": self.layer, "method": r.params["method"], "group_by": r.group_by,
                "profile": r.params["profile"], "n_neurons": r.n_neurons, "n_silent": int(m.get("n_silent", 0)),
                "groups": len(r.groups), "snapshots": r.snapshots,
                "trustworthiness": m["trustworthiness"], "continuity": m["continuity"], "spearman": m["spearman"],
                "neighbourhood_preservation": m["neighbourhood_preservation"], "k": m["k"],
                "smoothness_auc": m.get("smoothness_auc"), "grid": m.get("grid"),
                "separation": r.separation, "figures": self.figures}


def default_grouping(atlas: Atlas) -> str | None:
    """What topomaps group by unless told: the class ``label``; for unlabelled data the model's
    predicted class ``pred``, else the first categorical attribute; ``None`` when the atlas
    has nothing to group by."""
    table = atlas.inputs_with_outputs()
    if "label" in table.columns and (table["label"] >= 0).any():
        return "label"
    if "pred" in table.columns and table["pred"].notna().any():
        return "pred"
    return next(iter(atlas.categories()), None)


def build_topomaps(atlas: Atlas, layers: list[str] | None = None, group_by: str | None = None,
                   method: str = TOPOMAP_METHOD, distance: str = TOPOMAP_DISTANCE, profile: str = TOPOMAP_PROFILE, grid: bool = False, refine: bool = False,
                   snapshots: bool = False, animate: bool = False, formats: tuple[str, ...] = ("png",),
                   seed: int = 0, progress: bool = True) -> list[TopomapRun]:
    """Topographic maps of ``layers`` (default: every layer with 3 or more neurons), saved
    into the atlas, with figures under ``ATLAS/figures/topomap/``.

    ``group_by``: default :func:`default_grouping` (the label; unlabelled data says once
    what it groups by instead, or that there is nothing to map).

    ``snapshots``: paint every snapshot on the last snapshot's layout (needed to
    ``animate``, which writes one GIF per layer).
    """
    from tqdm.auto import tqdm

    from .methods.topomap import topomap
    from .render import animate_topomap, plot_topomap, save_figure

    for fmt in formats:
        if f".{fmt}" not in (".png", ".svg", ".pdf"):
            raise UserError(f"figure format {fmt!r} is not supported; use png, svg or pdf")
    if animate and not snapshots:
        snapshots = True
    if animate and len(atlas.snapshots) < 2:
        raise UserError("--animate needs an atlas with 2 or more snapshots (extract with --snapshots)")
    if group_by is None:
        group_by = default_grouping(atlas)
        if group_by is None:
            print("neurocarta: note: the data has no labels and no categorical column, so no topomap is drawn; "
                  "add attributes (extract --inputs) or name a column with --group-by", file=sys.stderr)
            return []
        if group_by != "label":
            what = " (the model's predicted class)" if group_by == "pred" else ""
            print(f"neurocarta: note: the data has no labels, so topomaps are grouped by {group_by}{what}; "
                  "choose another column with --group-by", file=sys.stderr)
    explicit = bool(layers)
    names = atlas.select_layers(layers)
    if not explicit:
        names = [n for n in names if atlas.manifest.layer(n).n_neurons >= 3]
    out_dir = Path(atlas.root) / FIGURES / "topomap"
    runs = []
    for name in tqdm(names, desc="topomap", unit="layer", disable=not progress):
        result = topomap(atlas, name, group_by=group_by, method=method, distance=distance, profile=profile,
                         grid=grid, refine=refine, snapshots="all" if snapshots else "last", seed=seed, save=True)
        run = TopomapRun(name, result)
        stem = f"{node(name)}@{node(group_by)}"
        if profile != "raw":
            kinds = ["map"] + (["grid"] if grid else [])
            for kind in kinds:
                fig = plot_topomap(result, kind=kind)
                for fmt in formats:
                    path = save_figure(fig, out_dir / f"{stem}{'' if kind == 'map' else '_grid'}.{fmt}")
                    run.figures.append(str(path))
            if animate:
                run.figures.append(str(animate_topomap(result, out_dir / f"{stem}.gif")))
        runs.append(run)
    if not runs:
        print("neurocarta: no layer with 3 or more neurons to map", file=sys.stderr)
    return runs


def build_mappers(atlas: Atlas, layers: list[str] | None = None, progress: bool = True,
                  **params) -> list[MapperResult]:
    """Mapper graphs of ``layers`` (default: every layer), saved into the atlas, with a
    class-pie figure each under ``ATLAS/figures/mapper/``.

    ``params`` go to :func:`neurocarta.methods.mapper.mapper` (lens, intervals, overlap,
    cover, clusterer, eps, min_samples, metric, min_jaccard, seed).
    """
    from tqdm.auto import tqdm

    from .methods.mapper import mapper
    from .render import class_legend, plot_mapper, save_figure

    results = []
    out_dir = Path(atlas.root) / FIGURES / "mapper"
    # the viewer's class colours, counted in inputs; pies of another column get their own legend
    legend = class_legend(atlas) if params.get("colour_by") is None else None
    for name in tqdm(atlas.select_layers(layers), desc="mapper", unit="layer", disable=not progress):
        result = mapper(atlas, name, save=True, **params)
        if result.graph.n_nodes and "classes" in result.nodes:
            save_figure(plot_mapper(result, legend=legend), out_dir / f"{node(name)}.png")
        results.append(result)
    return results


def build_concepts(atlas: Atlas, layers: list[str] | None = None, progress: bool = True, snapshots: bool = False,
                   **params) -> ConceptResult:
    """The concept atlas of ``layers`` (default: every layer with 2 or more neurons), saved
    into the atlas, with a neuron-projection figure and one concept-graph figure per class
    under ``ATLAS/figures/concepts/``.

    Image atlases also get each neuron's exemplar patches (top inputs cropped to the
    receptive field around the argmax), stored for the viewer.

    ``params`` go to :func:`neurocarta.methods.concepts.concepts` (k, threshold, method,
    resolution, across_layers, embedding, snapshot, seed, ...). ``snapshots``: also every
    earlier snapshot, each projection aligned to the last one's (for a training slider).
    Returns the last snapshot's result.
    """
    from .methods.concepts import concepts
    from .render import plot_concept_graph, plot_projection, save_figure

    if progress:
        print("neurocarta: grouping neurons (MinHash + LSH, Leiden) and embedding them", file=sys.stderr)
    result = concepts(atlas, layers=layers, save=True, **params)
    if atlas.has_thumbnails:
        from .methods.concepts import exemplar_patches, save_patches

        for layer in result.layers:  # small exemplar crops per neuron, for the viewer
            save_patches(atlas, layer, exemplar_patches(atlas, layer, result.snapshot), result.snapshot)
    if snapshots:
        for snap in atlas.snapshots:
            if snap != result.snapshot:
                concepts(atlas, layers=layers, save=True, **{**params, "snapshot": snap, "align_to": result})
    out_dir = Path(atlas.root) / FIGURES / "concepts"
    save_figure(plot_projection(result), out_dir / f"projection@{node(result.snapshot)}.png")
    describe = dict(zip(result.clusters["cluster"], result.clusters["describe"]))
    for name, graph in result.graphs.items():
        if len(graph.nodes):
            labels = {c: f"{c}: {describe.get(c, '')}" for c in graph.nodes["cluster"]}
            save_figure(plot_concept_graph(graph, labels=labels, title=f"concept graph of class {name}"),
                        out_dir / f"graph@{node(name)}.png")
    return result
