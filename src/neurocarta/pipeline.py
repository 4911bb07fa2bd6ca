"""Run the map methods over an atlas's layers and write what they make: results into the
atlas (``maps/``) and figures under ``ATLAS/figures/``. The CLI and the demo call this.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import UserError
from .methods.defaults import TOPOMAP_DISTANCE, TOPOMAP_METHOD, TOPOMAP_PROFILE
from .store.layout import FIGURES, node
from .store.status import MapStatus, StageState

if TYPE_CHECKING:
    from .methods.concepts import ConceptResult
    from .methods.inputs_projection import InputProjection
    from .methods.mapper import MapperResult
    from .methods.topomap import TopoMapResult
    from .store import Atlas


#: ``report(done, total)``: how far a stage is, in layers (written to the atlas's status file)
Report = Callable[[int, int], None]


def _no_report(done: int, total: int) -> None:
    pass


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
                   seed: int = 0, progress: bool = True, report: Report | None = None) -> list[TopomapRun]:
    """Topographic maps of ``layers`` (default: every layer with 3 or more neurons), saved
    into the atlas, with figures under ``ATLAS/figures/topomap/``.

    ``group_by``: default :func:`default_grouping` (the label; unlabelled data says once
    what it groups by instead, or that there is nothing to map).

    ``snapshots``: paint every snapshot on the last snapshot's layout (needed to
    ``animate``, which writes one GIF per layer). ``report(done, total)``: called before
    the first layer and after each (the status file's progress).
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
    report = report or _no_report
    report(0, len(names))
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
        report(len(runs), len(names))
    if not runs:
        print("neurocarta: no layer with 3 or more neurons to map", file=sys.stderr)
    return runs


def build_mappers(atlas: Atlas, layers: list[str] | None = None, progress: bool = True,
                  report: Report | None = None, **params) -> list[MapperResult]:
    """Mapper graphs of ``layers`` (default: every layer), saved into the atlas, with a
    class-pie figure each under ``ATLAS/figures/mapper/``.

    ``params`` go to :func:`neurocarta.methods.mapper.mapper` (lens, intervals, overlap,
    cover, clusterer, eps, min_samples, metric, min_jaccard, seed). ``report(done, total)``:
    as in :func:`build_topomaps`.
    """
    from tqdm.auto import tqdm

    from .methods.mapper import mapper
    from .render import class_legend, plot_mapper, save_figure

    results = []
    out_dir = Path(atlas.root) / FIGURES / "mapper"
    # the viewer's class colours, counted in inputs; pies of another column get their own legend
    legend = class_legend(atlas) if params.get("colour_by") is None else None
    names = atlas.select_layers(layers)
    report = report or _no_report
    report(0, len(names))
    for name in tqdm(names, desc="mapper", unit="layer", disable=not progress):
        result = mapper(atlas, name, save=True, **params)
        if result.graph.n_nodes and "classes" in result.nodes:
            save_figure(plot_mapper(result, legend=legend), out_dir / f"{node(name)}.png")
        results.append(result)
        report(len(results), len(names))
    return results


def build_concepts(atlas: Atlas, layers: list[str] | None = None, progress: bool = True, snapshots: bool = False,
                   report: Report | None = None, **params) -> ConceptResult:
    """The concept atlas of ``layers`` (default: every layer with 2 or more neurons), saved
    into the atlas, with a neuron-projection figure and one concept-graph figure per class
    under ``ATLAS/figures/concepts/``.

    Image atlases also get each neuron's exemplar patches (top inputs cropped to the
    receptive field around the argmax), stored for the viewer.

    ``params`` go to :func:`neurocarta.methods.concepts.concepts` (k, threshold, method,
    resolution, across_layers, embedding, snapshot, seed, ...). ``snapshots``: also every
    earlier snapshot, each projection aligned to the last one's (for a training slider).
    ``report(done, total)`` counts snapshots, the last (the viewer's default) first.
    Returns the last snapshot's result.
    """
    from .methods.concepts import concepts
    from .render import plot_concept_graph, plot_projection, save_figure

    report = report or _no_report
    n_snapshots = len(atlas.snapshots) if snapshots else 1
    report(0, n_snapshots)
    if progress:
        print("neurocarta: grouping neurons (MinHash + LSH, Leiden) and embedding them", file=sys.stderr)
    result = concepts(atlas, layers=layers, save=True, **params)
    if atlas.has_thumbnails:
        from .methods.concepts import exemplar_patches, save_patches

        for layer in result.layers:  # small exemplar crops per neuron, for the viewer
            save_patches(atlas, layer, exemplar_patches(atlas, layer, result.snapshot), result.snapshot)
    report(1, n_snapshots)
    if snapshots:
        for done, snap in enumerate((s for s in atlas.snapshots if s != result.snapshot), start=2):
            concepts(atlas, layers=layers, save=True, **{**params, "snapshot": snap, "align_to": result})
            report(done, n_snapshots)
    out_dir = Path(atlas.root) / FIGURES / "concepts"
    save_figure(plot_projection(result), out_dir / f"projection@{node(result.snapshot)}.png")
    describe = dict(zip(result.clusters["cluster"], result.clusters["describe"]))
    for name, graph in result.graphs.items():
        if len(graph.nodes):
            labels = {c: f"{c}: {describe.get(c, '')}" for c in graph.nodes["cluster"]}
            save_figure(plot_concept_graph(graph, labels=labels, title=f"concept graph of class {name}"),
                        out_dir / f"graph@{node(name)}.png")
    return result


def build_projections(atlas: Atlas, layers: list[str] | None = None, progress: bool = True,
                      report: Report | None = None, **params) -> list[InputProjection]:
    """The input projection of ``layers`` (default: every layer): each activation row (input
    or token) as a point, by seeded UMAP, stored in the atlas (``maps/inputs/<layer>``) for the
    viewer's input view. ``params`` go to
    :func:`neurocarta.methods.inputs_projection.project_inputs` (max_points, neighbours,
    min_dist, seed, stat). ``report(done, total)``: called before the first layer and after
    each one."""
    from tqdm.auto import tqdm

    from .methods.inputs_projection import check_params, project_inputs

    check_params(**{k: params[k] for k in ("max_points", "neighbours", "min_dist") if k in params})
    names = atlas.select_layers(layers)
    report = report or _no_report
    report(0, len(names))
    results = []
    for name in tqdm(names, desc="inputs", unit="layer", disable=not progress):
        results.append(project_inputs(atlas, name, save=True, **params))
        report(len(results), len(names))
    return results


# ----------------------------------------------------------------------------- the map stages
@dataclass
class MapOptions:
    """What a run of the map stages is asked for; each stage reads the fields it needs.

    ``group_by``: the topomaps' groupings, one map per layer each (``None``: the default
    grouping). ``colour_by``: the Mapper pies' column (``None``: the label). ``attributes``:
    the concept coherence attributes (``None``: every categorical attribute).
    ``animate``: a training GIF per topomap. ``grid``: topomaps also one neuron per grid
    cell (the viewer's grid mode). ``concept_snapshots``: concepts of every snapshot (a
    training slider), not only the last.
    """

    layers: list[str] | None = None
    seed: int = 0
    progress: bool = True
    group_by: tuple[str | None, ...] = (None,)
    colour_by: str | None = None
    attributes: list[str] | None = None
    animate: bool = False
    grid: bool = True
    concept_snapshots: bool = True


@dataclass(frozen=True)
class MapStage:
    """One step of ``neurocarta map`` and the demo: ``run(atlas, options, report)`` builds and
    stores its maps, calls ``report(done, total)`` as it goes, and returns the lines that say
    what it made (printed by the CLI and the demo).

    ``title`` names it in the viewer's progress note and the timing line ("Mapper graphs
    built in 4 s"); ``unit`` is what ``report`` counts. ``after_viewer``: a slow stage the demo
    runs only once the viewer is up and the findings are printed (they do not need it).
    """

    name: str
    title: str
    run: Callable[[Atlas, MapOptions, Report], list[str]]
    unit: str = "layers"
    after_viewer: bool = False


def _topomap_stage(atlas: Atlas, o: MapOptions, report: Report) -> list[str]:
    lines = []
    first, last = atlas.snapshots[0], atlas.snapshots[-1]
    for group_by in o.group_by:
        runs = build_topomaps(atlas, layers=o.layers, group_by=group_by, grid=o.grid, snapshots=True,
                              animate=o.animate and len(atlas.snapshots) > 1, seed=o.seed, progress=o.progress,
                              report=report)
        for r in runs:
            m = r.summary()
            what = "class separation" if r.result.group_by == "label" else f"{r.result.group_by} separation"
            change = f"{m['separation'][first]:.2f} -> " if first != last else ""
            lines.append(f"topomap  {m['layer']:<24} trustworthiness {m['trustworthiness']:.3f}  "
                         f"{what} {change}{m['separation'][last]:.2f}")
    return lines


def _mapper_stage(atlas: Atlas, o: MapOptions, report: Report) -> list[str]:
    lines = []
    for r in build_mappers(atlas, layers=o.layers, progress=o.progress, seed=o.seed, colour_by=o.colour_by,
                           report=report):
        s = r.summary()
        # purity needs labels: unlabelled data says n/a rather than nan
        purity = "n/a" if s["mean_purity"] != s["mean_purity"] else f"{s['mean_purity']:.2f}"
        lines.append(f"mapper   {s['layer']:<24} {s['n_nodes']:>4} nodes {s['n_components']:>3} components  "
                     f"{o.colour_by or 'class'} purity {purity}")
    return lines


def _concepts_stage(atlas: Atlas, o: MapOptions, report: Report) -> list[str]:
    result = build_concepts(atlas, layers=o.layers, progress=o.progress, snapshots=o.concept_snapshots,
                            seed=o.seed, report=report, **({"attributes": o.attributes} if o.attributes else {}))
    lines = []
    for s in result.summary()["layers"]:
        known = [a for a in s["coherence"] if s["coherence"][a] is not None]
        # the asked-for attribute first; else the one whose groups beat random groups the most
        best = next((a for a in o.attributes or [] if a in known), None) or max(
            known, key=lambda a: s["coherence"][a] - s["random_coherence"][a], default=None)
        line = f"  coherence {best} {s['coherence'][best]:.2f} vs random {s['random_coherence'][best]:.2f}" if best else ""
        lines.append(f"concepts {s['layer']:<24} {s['n_clusters']:>3} groups ({s['grouped']:.0%} of neurons){line}")
    return lines


def _inputs_stage(atlas: Atlas, o: MapOptions, report: Report) -> list[str]:
    return [f"inputs   {r.layer:<24} {len(r.points):>6,} points{' (a seeded sample)' if r.sampled else ''} by UMAP"
            for r in build_projections(atlas, layers=o.layers, progress=o.progress, seed=o.seed, report=report)]


#: The map stages, in the order ``neurocarta map`` and the demo run them. A new kind of map
#: plugs in with one entry here (its ``run`` stores its results in the atlas); the viewer's
#: progress note and the status file follow from the entry.
MAP_STAGES: list[MapStage] = [
    MapStage("topomap", "topographic maps", _topomap_stage),
    MapStage("mapper", "Mapper graphs", _mapper_stage),
    MapStage("concepts", "concept atlas", _concepts_stage, unit="snapshots"),
    # the viewer's input view; findings do not read it, so the demo runs it after them
    MapStage("inputs", "input projection", _inputs_stage, after_viewer=True),
]


def run_map_stages(atlas: Atlas, options: MapOptions, stages: list[MapStage] | None = None,
                   status: MapStatus | None = None, say: Callable[[str], None] | None = None) -> None:
    """Run ``stages`` (default :data:`MAP_STAGES`) in order over ``atlas``, printing what each
    made and how long it took, and keeping ``maps/_status.json`` up to date for the viewer.

    ``status``: the status file to write (default: a new one listing ``stages``; the demo
    passes one listing every stage, to run them in two goes). A stage that fails is marked
    failed in the status file and its error raised.
    """
    import time

    stages = MAP_STAGES if stages is None else stages
    status = status or map_status(atlas, stages)
    say = say or (lambda message: print(f"neurocarta: {message}", file=sys.stderr))
    for stage in stages:
        t0 = time.perf_counter()
        status.start(stage.name)
        try:
            lines = stage.run(atlas, options, lambda done, total, name=stage.name: status.progress(name, done, total))
        except BaseException as e:
            status.finish(stage.name, error=" ".join(f"{type(e).__name__}: {e}".split())[:300])
            raise
        status.finish(stage.name)
        for line in lines:
            print(line)
        say(f"{stage.title} built in {time.perf_counter() - t0:.0f} s")


def map_status(atlas: Atlas, stages: list[MapStage]) -> MapStatus:
    """A fresh status file listing ``stages`` as pending (written at once)."""
    status = MapStatus(atlas.location, [StageState(s.name, s.title, unit=s.unit) for s in stages])
    status.write()
    return status
