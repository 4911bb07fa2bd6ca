"""The ``neurocarta`` command line: argument parsing only, on top of the Python API.

Exit codes: 0 success, 2 a user error (one line on stderr: what is wrong, how to fix it),
1 an internal error (a traceback: please report it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any, Sequence

from ._version import __version__
from .errors import UserError
from .methods import defaults

if TYPE_CHECKING:
    from .store import Atlas


def _add_extract(sub: Any) -> None:
    p = sub.add_parser("extract", help="capture layer activations into an atlas",
                       description="Run a model over a data set and stream the chosen layers' activations "
                                   "into an atlas folder. Rerun the same command to resume a killed run.")
    p.add_argument("--model", required=True, help="model spec: demo-cnn, efficientnet-lite0, minilm, "
                   "torchvision:NAME[:pretrained|:PATH], timm:NAME[:pretrained|:PATH], hf:PATH, file:PATH, "
                   "py:module:callable, py:path/to/file.py:callable (resolved from the working directory)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="trained weights to load into the model: a state dict (also under 'state_dict' or "
                        "'model'), or a whole pickled model with --trust")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="torchvision:/timm: models: a local file of the library's pretrained weights "
                        "(else :pretrained reads the torch hub cache)")
    p.add_argument("--data", required=True, help="data spec: shapes, digits, folder:PATH, text:PATH, "
                   "npz:PATH, hfds:PATH[:SPLIT], py:module:callable")
    p.add_argument("--inputs", default=None, metavar="TABLE",
                   help="a .csv or .parquet table of attributes, one row per input, joined on 'path' "
                        "(folder: data, relative to the folder) or else on 'input_id'")
    p.add_argument("--columns", nargs="+", default=None, metavar="NAME=ROLE",
                   help="declare column roles, e.g. flipped=bookkeeping,site=attribute (roles: label, "
                        "attribute, output, bookkeeping)")
    p.add_argument("--layers", nargs="+", default=None, metavar="PATTERN",
                   help="module names or globs (* within a name part, ** across), NAME#N for call N of a "
                        "module run more than once; default: the model's own")
    p.add_argument("--out", required=True, help="atlas folder to write (or resume)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--limit", type=int, default=None, help="a seeded random subset of N inputs")
    p.add_argument("--topk", type=int, default=100, help="exemplars kept per neuron (default 100)")
    p.add_argument("--mode", choices=["full", "summary"], default="full",
                   help="full: every activation; summary: top-k, group sums and a row sample")
    p.add_argument("--snapshots", default=None, metavar="GLOB",
                   help="state-dict files of the same architecture (training checkpoints)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int, default=1024, help="inputs per commit and per storage chunk")
    p.add_argument("--commit-every", type=float, default=None, metavar="SECONDS",
                   help="also commit (and so resume from) every SECONDS of work inside a chunk (default 30)")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--pool", choices=["mean", "max", "cls"], default=None,
                   help="sequence layers: one pooled row per input instead of one row per token")
    p.add_argument("--special-tokens", action="store_true", help="keep [CLS]/[SEP]-like tokens as rows")
    p.add_argument("--group-by", nargs="+", default=None, metavar="COLUMN",
                   help="summary mode: columns to keep group statistics for (default: the label, the "
                        "categorical attributes, pred and correct)")
    p.add_argument("--sample-size", type=int, default=50_000, help="summary mode: rows in the seeded sample")
    p.add_argument("--max-layer-gb", type=float, default=8.0,
                   help="full mode refuses a layer bigger than this (default 8)")
    p.add_argument("--thumb-size", type=int, default=64)
    p.add_argument("--overwrite", action="store_true", help="replace an existing atlas at --out")
    p.add_argument("--trust", action="store_true",
                   help="allow file:PATH and --checkpoint to unpickle a whole model (runs code from the file)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    scale = p.add_argument_group("scale-out (docs/scale.md)")
    scale.add_argument("--workers", type=int, default=None, metavar="N",
                       help="run on a local Dask cluster of N worker processes")
    scale.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    scale.add_argument("--shard-size", type=int, default=None, metavar="INPUTS",
                       help="inputs per worker task, a multiple of --chunk-size (default: about 4 tasks per worker)")


def _cmd_extract(a: argparse.Namespace) -> int:
    from .capture import extract
    from .store import atlas_info

    atlas = extract(
        a.model, a.data, a.out, layers=a.layers, batch_size=a.batch_size, device=a.device, limit=a.limit,
        topk=a.topk, mode=a.mode, snapshots=a.snapshots, seed=a.seed, chunk_size=a.chunk_size,
        dtype=a.dtype, pool=a.pool, special_tokens=a.special_tokens, group_by=a.group_by,
        sample_size=a.sample_size, max_layer_bytes=a.max_layer_gb * 1e9, thumb_size=a.thumb_size,
        overwrite=a.overwrite, trust=a.trust, progress=not a.quiet,
        workers=a.workers, scheduler=a.scheduler, shard_size=a.shard_size,
        inputs=a.inputs, columns=_roles(a.columns), checkpoint=a.checkpoint, weights=a.weights,
        **({} if a.commit_every is None else {"commit_every": a.commit_every}),  # else the option's default
    )
    _print_info(atlas_info(atlas), as_json=False)
    return 0


def _print_info(info: dict[str, Any], as_json: bool) -> None:
    """An atlas's description, and a warning line for each snapshot whose accuracy is at chance."""
    from .store.info import chance_warnings, format_info

    print(json.dumps(info) if as_json else format_info(info))
    for line in chance_warnings(info):
        print(f"neurocarta: warning: {line}", file=sys.stderr)


def _roles(pairs: Sequence[str] | None) -> dict[str, str]:
    """``["flipped=bookkeeping,site=attribute", ...]`` -> ``{"flipped": "bookkeeping", ...}``."""
    out = {}
    for pair in ",".join(pairs or []).split(","):
        if not pair.strip():
            continue
        name, eq, role = pair.partition("=")
        if not eq or not name.strip() or not role.strip():
            raise UserError(f"cannot read column role {pair!r}: write NAME=ROLE, e.g. flipped=bookkeeping")
        out[name.strip()] = role.strip()
    return out


def _add_columns(sub: Any) -> None:
    p = sub.add_parser("columns", help="list an atlas's table columns and their roles, or declare roles",
                       description="Every column of the input, output and token tables with its role: label, "
                                   "attribute (maps group by it, findings look at it), output or bookkeeping "
                                   "(ids, flags, free text: never a finding). NAME=ROLE declares a role; it is "
                                   "kept in the atlas and every later map and finding uses it.")
    p.add_argument("atlas")
    p.add_argument("roles", nargs="*", metavar="NAME=ROLE", help="e.g. flipped=bookkeeping site=attribute")
    p.add_argument("--json", action="store_true", help="{column: role} as one JSON object")


def _cmd_columns(a: argparse.Namespace) -> int:
    from .store import open_atlas

    atlas = open_atlas(a.atlas)
    if a.roles:
        atlas.declare_columns(_roles(a.roles))
    roles = atlas.column_roles
    if a.json:
        print(json.dumps(roles))
        return 0
    declared = atlas.manifest.columns
    width = max(map(len, roles), default=0)
    for name, role in roles.items():
        print(f"{name:<{width}}  {role}{'  (declared)' if name in declared else ''}")
    return 0


def _add_layers(sub: Any) -> None:
    p = sub.add_parser("layers", help="list a model's hookable layers with their output shapes",
                       description="List every hookable module with its output shape, from one sample. A "
                                   "module run more than once per forward pass gets one row per call "
                                   "(NAME#0, NAME#1, ...): pass one to extract --layers to capture that call.")
    p.add_argument("--model", required=True, help="model spec, as for extract")
    p.add_argument("--data", default=None, help="one sample is taken from here (default: a built-in one)")
    p.add_argument("--json", action="store_true")


def _cmd_layers(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .capture import list_layers

    rows = list_layers(a.model, a.data)
    if a.json:
        print(json.dumps([asdict(r) for r in rows]))
        return 0
    width = max(len(r.name) for r in rows)
    twidth = max(len(r.type) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {r.type:<{twidth}}  {r.output}")
    return 0


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="describe an atlas: layers, inputs, snapshots, completeness, size")
    p.add_argument("atlas")
    p.add_argument("--json", action="store_true", help="one JSON object")


def _cmd_info(a: argparse.Namespace) -> int:
    from .store import atlas_info, open_atlas

    atlas = open_atlas(a.atlas, allow_incomplete=True)
    _print_info(atlas_info(atlas), as_json=a.json)
    return 0


def _add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="train the demo CNN on built-in data and build its atlas, offline")
    p.add_argument("--data", default="shapes", help="shapes (default), digits or sentences (MiniLM on text, no training), "
                   "with options: shapes:n=2000, sentences:n=5000")
    p.add_argument("--out", default="demo-atlas", help="atlas folder (default ./demo-atlas)")
    p.add_argument("--epochs", type=int, default=4, help="training epochs = snapshots (at least 3)")
    p.add_argument("--no-serve", action="store_true", help="do not start the viewer afterwards")
    p.add_argument("--clean", action="store_true", help="plant no flaws in shapes (by default the demo plants "
                   "one background shortcut and 2%% label noise, for its findings to find)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-featvis", action="store_true",
                   help="skip the feature visualizations made once the viewer is up (minutes on a CPU)")
    p.add_argument("--quiet", action="store_true")


def _cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(a.data, a.out, epochs=a.epochs, serve=not a.no_serve, overwrite=a.overwrite, progress=not a.quiet,
             clean=a.clean, featvis=not a.no_featvis)
    return 0


def _add_topomap(sub: Any) -> None:
    p = sub.add_parser("topomap", help="topographic activation maps of an atlas's layers",
                       description="Lay out each layer's neurons so that similar ones sit together, measure how "
                                   "faithful the layout is, store it in the atlas and draw the maps under "
                                   "ATLAS/figures/topomap/.")
    p.add_argument("atlas")
    p.add_argument("--layers", nargs="+", default=None, metavar="PATTERN",
                   help="layer names or globs (default: every layer with 3 or more neurons)")
    p.add_argument("--method", default=defaults.TOPOMAP_METHOD, choices=["umap", "tsne", "pca", "graph", "som", "random"])
    p.add_argument("--distance", default=defaults.TOPOMAP_DISTANCE, choices=["cosine", "correlation", "euclidean"])
    p.add_argument("--profile", default=defaults.TOPOMAP_PROFILE, choices=["nap", "contrastive", "raw"],
                   help="nap: group mean minus mean of groups (default); contrastive: one vs rest effect size; "
                        "raw: activations of --samples inputs")
    p.add_argument("--group-by", default=None, metavar="COL",
                   help="input-table column(s), e.g. label, pred, correct, label_name,correct, confusion "
                        "(default: label; unlabelled data: pred, else the first attribute)")
    p.add_argument("--grid", action="store_true", help="also one neuron per grid cell")
    p.add_argument("--refine", action="store_true", help="force-directed refinement after the layout")
    p.add_argument("--snapshots", action="store_true", help="paint every snapshot on one layout")
    p.add_argument("--animate", action="store_true", help="a GIF over the snapshots per layer (implies --snapshots)")
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "svg", "pdf"], dest="formats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print each layer's method and metrics as JSON")
    p.add_argument("--quiet", action="store_true")


def _cmd_topomap(a: argparse.Namespace) -> int:
    from .pipeline import build_topomaps
    from .store import open_atlas

    atlas = open_atlas(a.atlas)
    runs = build_topomaps(atlas, layers=a.layers, group_by=a.group_by, method=a.method, distance=a.distance,
                          profile=a.profile, grid=a.grid, refine=a.refine, snapshots=a.snapshots,
                          animate=a.animate, formats=tuple(a.formats), seed=a.seed, progress=not a.quiet)
    if a.json:
        print(json.dumps({"atlas": atlas.url, "layers": [r.summary() for r in runs]}))
        return 0
    for r in runs:
        m = r.summary()
        print(f"{m['layer']:<24} {m['method']:<6} trustworthiness {m['trustworthiness']:.3f}  continuity "
              f"{m['continuity']:.3f}  spearman {m['spearman']:.3f}  ({m['n_neurons']} neurons, {m['n_silent']} silent)")
    if runs:
        print(f"figures in {atlas.root / 'figures' / 'topomap'}")
    return 0


def _add_mapper(sub: Any) -> None:
    p = sub.add_parser("mapper", help="Mapper graphs of an atlas's layers (the shape of activation space)",
                       description="Cover each layer's activation rows by overlapping lens intervals, cluster "
                                   "inside each interval and link clusters that share inputs. Graphs are stored "
                                   "in the atlas (maps/mapper/).")
    p.add_argument("atlas")
    p.add_argument("--layers", nargs="+", default=None, metavar="PATTERN", help="layer names or globs (default: all)")
    p.add_argument("--lens", default=defaults.MAPPER_LENS,
                   help="pca, pca2, l2, umap, or a numeric input-table column (default %(default)s)")
    p.add_argument("--intervals", type=int, default=defaults.MAPPER_INTERVALS,
                   help="cover intervals per lens dimension (default %(default)s)")
    p.add_argument("--overlap", type=float, default=defaults.MAPPER_OVERLAP,
                   help="overlap of adjacent intervals, 0..1 (default %(default)s)")
    p.add_argument("--cover", default=defaults.MAPPER_COVER, choices=["uniform", "balanced"])
    p.add_argument("--clusterer", default=defaults.MAPPER_CLUSTERER, choices=["dbscan", "single", "hdbscan"])
    p.add_argument("--eps", type=float, default=None, help="DBSCAN radius (default: the k-distance rule)")
    p.add_argument("--min-samples", type=int, default=defaults.MAPPER_MIN_SAMPLES)
    p.add_argument("--metric", default=defaults.MAPPER_METRIC, choices=["cosine", "euclidean"])
    p.add_argument("--min-jaccard", type=float, default=0.0, help="drop edges below this Jaccard index")
    p.add_argument("--colour-by", default=None, metavar="COLUMN",
                   help="node pies by this row-table column (default the label; text: category, position)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweep", action="store_true",
                   help="instead: intervals 10,15,20,30 x overlap 0.2-0.5 per layer, and the stable pick")
    p.add_argument("--json", action="store_true", help="per layer: nodes, edges, components, purity, parameters")
    p.add_argument("--quiet", action="store_true")


def _cmd_mapper(a: argparse.Namespace) -> int:
    from .pipeline import build_mappers
    from .store import open_atlas

    atlas = open_atlas(a.atlas)
    if a.sweep:
        return _mapper_sweep(atlas, a)
    results = build_mappers(atlas, layers=a.layers, progress=not a.quiet, lens=a.lens, intervals=a.intervals,
                            overlap=a.overlap, cover=a.cover, clusterer=a.clusterer, eps=a.eps,
                            min_samples=a.min_samples, metric=a.metric, min_jaccard=a.min_jaccard, seed=a.seed,
                            colour_by=a.colour_by)
    if a.json:
        print(json.dumps({"atlas": atlas.url, "layers": [r.summary() for r in results]}))
        return 0
    for r in results:
        s = r.summary()
        # purity needs labels: unlabelled data says n/a rather than nan
        purity = "n/a" if s["mean_purity"] != s["mean_purity"] else f"{s['mean_purity']:.3f}"
        print(f"{s['layer']:<24} {s['n_nodes']:>5} nodes {s['n_edges']:>5} edges {s['n_components']:>4} components  "
              f"purity {purity}  coverage {s['coverage']:.2f}  eps {s['params']['eps'] or 0:.4g}")
    return 0


def _mapper_sweep(atlas: Atlas, a: argparse.Namespace) -> int:
    from .methods.mapper import pick_stable, sweep

    out = []
    for layer in atlas.select_layers(a.layers):
        x = atlas.activations(layer)[:]
        table = sweep(x, atlas.row_table(layer), lens=a.lens, cover=a.cover, clusterer=a.clusterer, eps=a.eps,
                      min_samples=a.min_samples, metric=a.metric, seed=a.seed)
        pick = pick_stable(table)
        out.append({"layer": layer, "pick": pick, "sweep": table.to_dict(orient="records")})
        if not a.json:
            print(f"{layer}: stable pick {pick['intervals']} intervals, overlap {pick['overlap']}")
            print(table.round(3).to_string(index=False))
    if a.json:
        print(json.dumps({"atlas": atlas.url, "layers": out}))
    return 0


def _add_concepts(sub: Any) -> None:
    p = sub.add_parser("concepts", help="the concept atlas: neuron groups, co-activation embedding, coherence",
                       description="Group each layer's neurons by their top-k exemplars (MinHash + LSH, verified "
                                   "by exact Jaccard, cut by Leiden), embed neurons by co-activation, and measure "
                                   "each group's coherence on the input table's attributes against random groups. "
                                   "Stored in the atlas (maps/concepts/).")
    p.add_argument("atlas")
    p.add_argument("--layers", nargs="+", default=None, metavar="PATTERN", help="layer names or globs (default: all)")
    p.add_argument("--k", type=int, default=None,
                   help=f"exemplars per neuron, at most the stored top-k (default {defaults.CONCEPTS_K}, "
                        "or all an atlas of fewer inputs holds)")
    p.add_argument("--threshold", type=float, default=defaults.CONCEPTS_THRESHOLD,
                   help="Jaccard index two neurons' exemplar sets must reach, in (0, 1] (default %(default)s)")
    p.add_argument("--method", default=defaults.CONCEPTS_METHOD, choices=["leiden", "components"])
    p.add_argument("--resolution", type=float, default=defaults.CONCEPTS_RESOLUTION,
                   help="Leiden resolution (higher: smaller groups)")
    p.add_argument("--across-layers", action="store_true", help="also group neurons of different layers")
    p.add_argument("--embedding", default=defaults.CONCEPTS_EMBEDDING, choices=["ppmi", "sgns"])
    p.add_argument("--snapshot", default=None, help="snapshot to map (default: the last)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true",
                   help="per layer: n_clusters, the cluster sizes, coherence and random_coherence per attribute")
    p.add_argument("--quiet", action="store_true")


def _cmd_concepts(a: argparse.Namespace) -> int:
    from .pipeline import build_concepts
    from .store import open_atlas

    atlas = open_atlas(a.atlas)
    result = build_concepts(atlas, layers=a.layers, progress=not a.quiet, k=a.k, threshold=a.threshold,
                            method=a.method, resolution=a.resolution, across_layers=a.across_layers,
                            embedding=a.embedding, snapshot=a.snapshot, seed=a.seed)
    summary = result.summary()
    if a.json:
        print(json.dumps({"atlas": atlas.url, **summary}))
        return 0
    for s in summary["layers"]:
        known = [c for c in s["coherence"] if s["coherence"][c] is not None]
        best = max(known, key=lambda c: s["coherence"][c] - s["random_coherence"][c], default=None)
        what = (f"  best attribute {best}: coherence {s['coherence'][best]:.2f} vs random "
                f"{s['random_coherence'][best]:.2f}") if best else ""
        print(f"{s['layer']:<24} {s['n_clusters']:>4} groups  sizes {s['sizes'][:8]}{'...' if len(s['sizes']) > 8 else ''}"
              f"  grouped {s['grouped']:.0%}{what}")
    return 0


def _add_project(sub: Any) -> None:
    p = sub.add_parser("project", help="the input projection: every input (or token) of a layer as a point, by UMAP",
                       description="Lay out each layer's activation rows (inputs, or tokens on a text layer) in 2-D "
                                   "by seeded UMAP (a seeded sample above --max-points rows), stored in the atlas "
                                   "(maps/inputs/) for the viewer's input view. `neurocarta map` runs it too.")
    p.add_argument("atlas")
    p.add_argument("--layers", nargs="+", default=None, metavar="PATTERN", help="layer names or globs (default: all)")
    p.add_argument("--max-points", type=int, default=100_000, help="project a seeded sample above this many rows "
                                                                   "(default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="per layer: points, rows, sampled and the UMAP parameters")
    p.add_argument("--quiet", action="store_true")


def _cmd_project(a: argparse.Namespace) -> int:
    from .pipeline import build_projections
    from .store import open_atlas

    atlas = open_atlas(a.atlas)
    results = build_projections(atlas, layers=a.layers, progress=not a.quiet, max_points=a.max_points, seed=a.seed)
    if a.json:
        print(json.dumps({"atlas": atlas.url, "layers": [r.summary() for r in results]}))
        return 0
    for r in results:
        print(f"{r.layer:<24} {len(r.points):>7,} points of {r.n_rows:,} rows{' (seeded sample)' if r.sampled else ''}")
    return 0


def _add_map(sub: Any) -> None:
    p = sub.add_parser("map", help="every map of every layer: topomap, Mapper, concepts and the input projection",
                       description="Run the topographic maps (every snapshot, with grid mode), the Mapper graphs, "
                                   "the concept atlas (every snapshot, with exemplar patches) and the input "
                                   "projection over every layer, with their defaults: what the viewer shows; "
                                   "the attributions (saliency) of the inputs the findings name; "
                                   "then, for image models, feature visualizations of every neuron, concept "
                                   "group, Mapper node and class (skipped with a note when there are too many).")
    p.add_argument("atlas")
    p.add_argument("--layers", nargs="+", default=None, metavar="PATTERN", help="layer names or globs (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-featvis", action="store_true",
                   help="skip the feature visualizations, the last and slowest stage")
    p.add_argument("--serve", action="store_true", help="serve the viewer on 127.0.0.1 while the maps are built "
                   "(each appears when stored) and after, until Ctrl+C")
    p.add_argument("--port", type=int, default=8765, help="the viewer's port with --serve (default 8765)")
    p.add_argument("--quiet", action="store_true")


def _cmd_map(a: argparse.Namespace) -> int:
    from .attribution.stage import with_attributions
    from .featvis.stage import map_stages
    from .pipeline import MapOptions, run_map_stages
    from .store import open_atlas

    atlas = open_atlas(a.atlas)
    # every stage of pipeline.MAP_STAGES, the findings' attributions, then feature visualization,
    # in order: each prints what it made
    viewer = None
    if a.serve:
        from .viewer import bind_socket, serve_in_background

        viewer = serve_in_background(atlas, sock=bind_socket("127.0.0.1", a.port))
    with viewer or contextlib.nullcontext():
        run_map_stages(atlas, MapOptions(layers=a.layers, seed=a.seed, progress=not a.quiet),
                       with_attributions(map_stages(not a.no_featvis)))
        print(f"stored in {atlas.root / 'maps'}; view with: neurocarta serve {a.atlas}")
        if viewer:
            print(f"every map is built; the viewer is at {viewer.url}  (Ctrl+C to stop)")
            viewer.wait()
    return 0


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the viewer of an atlas in the browser (read-only, local)",
                       description="Serve the atlas read-only over HTTP with the browser viewer. Binds to "
                                   "127.0.0.1 (this machine only) unless --host says otherwise; any other "
                                   "host requires a token, generated and printed in the URL.")
    p.add_argument("atlas")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    p.add_argument("--open", action="store_true", help="open the viewer in the default browser")
    p.add_argument("--compare", default=None, metavar="ATLAS_B",
                   help="a second atlas made on the same inputs, for the comparison page (layer CKA, concept "
                        "matching); without it the page compares the atlas's own layers and snapshots")
    guard = p.add_mutually_exclusive_group()
    guard.add_argument("--token", help="require this token (default: $NEUROCARTA_TOKEN, else a generated one "
                                       "when --host is not a loopback address)")
    guard.add_argument("--no-token", action="store_true",
                       help="serve a non-loopback --host without a token: anyone who can reach it reads the atlas")


def _cmd_serve(a: argparse.Namespace) -> int:
    from .viewer import serve

    serve(a.atlas, host=a.host, port=a.port, open_browser=a.open, token=a.token, no_token=a.no_token,
          compare=a.compare)
    return 0


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="the viewer as one self-contained HTML file that opens offline",
                       description="Write the viewer with every payload it needs inlined into one HTML file "
                                   "that opens from disk (file://), offline.")
    p.add_argument("atlas")
    p.add_argument("--html", required=True, metavar="OUT", help="the HTML file to write")
    p.add_argument("--max-mb", type=float, default=50.0, help="refuse above this size in MB (default 50)")
    p.add_argument("--sample", type=int, default=None, metavar="N",
                   help="export a seeded subset of N inputs (input table, thumbnails, per-input maps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")


def _cmd_export(a: argparse.Namespace) -> int:
    from .viewer import export_html

    out = export_html(a.atlas, a.html, max_mb=a.max_mb, sample=a.sample, seed=a.seed, progress=not a.quiet)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): open it in a browser, offline")
    return 0


def _add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="two groups of inputs compared neuron by neuron (a significance map)",
                       description="Select two groups of inputs by their columns and test, neuron by neuron, "
                                   "whether the layer responds differently to them: per-neuron mean "
                                   "difference, effect size, permutation p and FDR q, and the difference "
                                   "painted on the layer's stored topomap with the significant neurons ringed. "
                                   "Selections: col=value, col!=value, col=a,b (any of), col>0.5, col<=3; "
                                   "several joined by ' and ' or by repeating the flag. The label may be named "
                                   "by class name (label=checker).")
    p.add_argument("atlas")
    p.add_argument("--layer", required=True, help="the layer to compare on")
    p.add_argument("--where", action="append", required=True, metavar="SELECTION",
                   help="group A, e.g. colour=red")
    p.add_argument("--vs", action="append", default=None, metavar="SELECTION",
                   help="group B, e.g. 'colour!=red' (default: every input not in A)")
    p.add_argument("--within", action="append", default=None, metavar="SELECTION",
                   help="compare only inside this subset, e.g. label=checker (both groups)")
    p.add_argument("--snapshot", default=None, help="snapshot to read (default: the last)")
    p.add_argument("--permutations", type=int, default=1000, help="permutations of the test (default 1000)")
    p.add_argument("--fdr", type=float, default=0.05, help="false discovery rate level (default 0.05)")
    p.add_argument("--top", type=int, default=10, help="neurons listed, strongest effect first (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="FIG.png",
                   help="the figure (.png, .svg, .pdf; default ATLAS/figures/compare/LAYER@GROUPS.png)")
    p.add_argument("--json", action="store_true", help="one JSON object: groups and sizes, the test, fdr, "
                                                       "permutations, figure, and the neurons table")


def _cmd_compare(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .methods.topomap.compare import compare, stored_layout
    from .render import plot_difference, save_figure
    from .store import open_atlas
    from .store.layout import FIGURES

    atlas = open_atlas(a.atlas)
    result = compare(atlas, a.layer, a.where, vs=a.vs, within=a.within, snapshot=a.snapshot,
                     permutations=a.permutations, fdr=a.fdr, seed=a.seed)
    layout = stored_layout(atlas, a.layer)
    figure = None
    if layout is not None:
        out = Path(a.out) if a.out else Path(atlas.root) / FIGURES / "compare" / f"{result.figure_stem()}.png"
        figure = str(save_figure(plot_difference(layout, result.difference), out))
    else:
        print(f"neurocarta: note: layer {a.layer!r} has no stored topomap, so no figure is drawn; run "
              f"`neurocarta topomap {a.atlas} --layers {a.layer}` first", file=sys.stderr)
    if a.json:
        print(json.dumps({"atlas": atlas.url, **result.summary(), "figure": figure}))
        return 0
    d = result.difference

    def size(g) -> str:
        rows = f", {g.n_rows} rows" if g.n_rows != g.n_inputs else ""
        return f"{g.n_inputs} inputs{rows}"

    scope = f" within {result.within}" if result.within else ""
    print(f"layer {result.layer}{scope}: A = {result.a.where} ({size(result.a)}), B = {result.b.where} "
          f"({size(result.b)})")
    whole = f"; whole map: mean |effect| {d.statistic:.3f}, p={d.statistic_p:.3g}" if d.statistic_p is not None else ""
    print(f"{d.test} test, {result.permutations} permutations: {int(d.significant.sum())} of {d.values.size} "
          f"neurons differ at FDR {d.fdr:g}{whole}")
    if result.subsampled:
        print(f"(tested on a seeded subsample of {d.n_a} and {d.n_b} rows)")
    table = result.neurons().head(max(a.top, 0))
    if len(table):
        print("neuron  A-B mean  effect         p         q")
        for r in table.itertuples():
            mark = "  *" if r.significant else ""
            print(f"{r.neuron:>6}  {r.difference:+8.3f}  {r.effect:+6.2f}  {r.p:8.2g}  {r.q:8.2g}{mark}")
        print("effect: the difference over the pooled standard deviation; *: significant at the FDR level")
    if figure:
        print(f"figure: {figure}")
    return 0


def _add_compare_atlases(sub: Any) -> None:
    p = sub.add_parser("compare-atlases", help="layer similarity (CKA) and concept matching of one atlas or two",
                       description="Compare representations: linear CKA (unbiased, minibatch) between every pair "
                                   "of layers, within one atlas (its layers and its snapshots) or across two "
                                   "atlases made on the same inputs (matched by input_id); and concept matching "
                                   "(one atlas: its first snapshot against its last; two: their last snapshots): "
                                   "which concept groups kept a counterpart, appeared, vanished, split or merged. "
                                   "Writes a heatmap figure and a JSON file.")
    p.add_argument("atlas", help="atlas A")
    p.add_argument("other", nargs="?", default=None, help="atlas B, made on the same inputs (optional)")
    p.add_argument("--layers", nargs="+", default=None, metavar="PATTERN", help="A's layers (default: all)")
    p.add_argument("--other-layers", nargs="+", default=None, metavar="PATTERN", help="B's layers (default: all)")
    p.add_argument("--snapshots", choices=["all", "last"], default="all",
                   help="compare every snapshot (default) or only the last")
    p.add_argument("--no-concepts", action="store_true", help="skip concept matching")
    p.add_argument("--max-inputs", type=int, default=defaults.COMPARISON_MAX_INPUTS,
                   help="a seeded subset of at most this many shared inputs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=defaults.COMPARISON_BATCH_SIZE,
                   help="CKA minibatch size (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where similarity.png and comparison.json go (default ATLAS/figures/comparison[/B])")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_compare_atlases(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .methods.comparison import compare_atlases
    from .store import open_atlas
    from .store.layout import FIGURES

    atlas = open_atlas(a.atlas)
    other = open_atlas(a.other) if a.other else None
    result = compare_atlases(atlas, other, layers=a.layers, other_layers=a.other_layers, snapshots=a.snapshots,
                             concepts=not a.no_concepts, batch_size=a.batch_size, max_inputs=a.max_inputs,
                             seed=a.seed, progress=not a.quiet and not a.json)
    default = Path(atlas.root) / FIGURES / "comparison"
    out = Path(a.out) if a.out else (default / Path(other.root).name if other is not None else default)
    written = result.save(out)
    if a.json:
        print(json.dumps({**result.to_json(), "figure": str(written["figure"]), "json_file": str(written["json"])}))
        return 0
    s = result.similarity
    print(f"linear CKA on {s.params['n_inputs']:,} shared inputs ({s.params['n_batches']} minibatches)")
    for key, title, table in s.panels():
        if key.startswith("training"):
            print(f"{title}:")
            for layer, row in table.iterrows():
                print(f"  {layer:<24} " + "  ".join(f"{c}={v:.2f}" for c, v in row.items()))
        elif key == "across":
            print(f"{title}: the most similar B layer of each A layer")
            for layer, row in table.iterrows():
                print(f"  {layer:<24} -> {row.idxmax()} ({row.max():.2f})" if row.notna().any() else f"  {layer}: -")
    if result.concepts is not None:
        c = result.concepts.summary()
        print(f"concepts {c['sides']['a']} -> {c['sides']['b']}: {c['groups']['a']} -> {c['groups']['b']} groups, "
              f"{c['matched']} matched, {c['appeared']} appeared, {c['vanished']} vanished, {c['split']} split, "
              f"{c['merged']} merged")
    elif result.concepts_note:
        print(f"neurocarta: note: {result.concepts_note}", file=sys.stderr)
    print(f"figure: {written['figure']}\njson: {written['json']}")
    return 0


def _add_attribute(sub: Any) -> None:
    p = sub.add_parser("attribute", help="which pixels or tokens of inputs move a class, neuron or concept group",
                       description="Attribute a target's value at each of the given inputs to their pixels (a "
                                   "per-pixel map) or tokens (signed per-token values) with Captum, and store "
                                   "them in the atlas for the viewer's inspector. The model is loaded again "
                                   "from what the atlas recorded, with the snapshot's weights.")
    p.add_argument("atlas")
    p.add_argument("--inputs", required=True, metavar="ID[,ID...]", help="input ids, e.g. 3,17,40")
    p.add_argument("--method", default="saliency", choices=["saliency", "ig"],
                   help="saliency (the absolute gradient, fast; default) or ig (integrated gradients)")
    p.add_argument("--target", default="predicted",
                   help="predicted (default), class:N or class:NAME, neuron:LAYER:N, concept:LAYER:GROUP "
                        "(the sum over a stored concept group's members)")
    p.add_argument("--snapshot", default=None, help="whose weights (default: the last snapshot)")
    p.add_argument("--steps", type=int, default=32, help="integrated gradients' path points (default 32)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    p.add_argument("--trust", action="store_true", help="allow loading a pickled model, as extract did")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="the stored items as one JSON object")


def _cmd_attribute(a: argparse.Namespace) -> int:
    from .attribution import attribute
    from .store import open_atlas

    atlas = open_atlas(a.atlas)
    items = attribute(atlas, a.inputs, method=a.method, target=a.target, snapshot=a.snapshot, steps=a.steps,
                      device=a.device, trust=a.trust, progress=not a.quiet and not a.json)
    snap = atlas.snapshot_name(a.snapshot)
    rows = [{"index": i.index, "input_id": i.input_id, "method": i.method, "target_kind": i.target_kind,
             "target": i.target, "layer": i.layer, "kind": i.kind, "total": i.total, "score": i.score}
            for i in items]
    if a.json:
        print(json.dumps({"atlas": atlas.url, "snapshot": snap, "items": rows}))
        return 0
    for r in rows:
        layer = f" in {r['layer']}" if r["layer"] else ""
        print(f"input {r['input_id']:>6}  {r['method']:<20} {r['target_kind']} {r['target']}{layer}  "
              f"score {r['score']:.3g}  total {r['total']:.3g}")
    print(f"stored {len(rows)} attributions for snapshot {snap}; view with: neurocarta serve {a.atlas}")
    return 0


def _add_visualize(sub: Any) -> None:
    p = sub.add_parser("visualize", help="feature visualizations: images optimised to excite neurons, concept "
                                         "groups, Mapper nodes or classes",
                       description="Optimise images (a Fourier parameterisation with decorrelated colour, under "
                                   "random jitter, scale and rotation) to excite each target of the given layers, "
                                   "with the atlas's own model and preprocessing, and store them in the atlas for "
                                   "the viewer beside each target's best dataset exemplar. With no target kind "
                                   "given, every neuron of each layer.")
    p.add_argument("atlas")
    p.add_argument("--layers", nargs="+", default=None, metavar="PATTERN",
                   help="layer names or globs (default: every conv and dense layer)")
    p.add_argument("--neurons", default=None, metavar="LIST",
                   help="neuron indices, e.g. 0,3,8-15, or all (default: all, unless another kind is asked for)")
    p.add_argument("--concepts", action="store_true", help="each stored concept group of the layers")
    p.add_argument("--mapper-nodes", action="store_true", help="each node of the layers' stored Mapper graphs")
    p.add_argument("--classes", nargs="?", const="all", default=None, metavar="LIST",
                   help="class logits of the model's output (all, or indices), stored under the layer 'output'")
    p.add_argument("--centre", action="store_true", help="conv neurons: the channel's centre position, not its mean")
    p.add_argument("--cosine-power", type=float, default=1.0,
                   help="Mapper nodes: dot product times cos^P with the node's mean vector (default 1; 0: the dot)")
    p.add_argument("--snapshot", default=None, help="whose weights (default: the last snapshot)")
    p.add_argument("--steps", type=int, default=256, help="Adam steps (default 256)")
    p.add_argument("--images", type=int, default=1, help="diverse images per target (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, mps")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also write a grid of the visualizations beside their best exemplars")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true",
                   help="per target: activation (of the synthesized image) and exemplar_activation (of its "
                        "best dataset input)")


def _index_list(text: str | None, what: str) -> list[int] | bool | None:
    """``"0,3,8-10"`` -> ``[0, 3, 8, 9, 10]``; ``"all"`` -> ``True``; ``None`` stays."""
    if text is None:
        return None
    if text.strip().lower() == "all":
        return True
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise UserError(f"{what} {text!r} is not a list of indices; write e.g. 0,3,8-15 or all") from None
    if not out:
        raise UserError(f"{what} is empty; write e.g. 0,3,8-15 or all")
    return out


def _cmd_visualize(a: argparse.Namespace) -> int:
    from .featvis import Settings, visualize
    from .store import open_atlas

    for name, value, low in (("--steps", a.steps, 1), ("--images", a.images, 1)):
        if value < low:
            raise UserError(f"{name} must be at least {low}, got {value}")
    atlas = open_atlas(a.atlas)
    runs = visualize(atlas, layers=a.layers, neurons=_index_list(a.neurons, "--neurons"), concepts=a.concepts,
                     mapper_nodes=a.mapper_nodes, classes=_index_list(a.classes, "--classes"), snapshot=a.snapshot,
                     settings=Settings(steps=a.steps, images=a.images, seed=a.seed), centre=a.centre,
                     cosine_power=a.cosine_power, device=a.device, progress=not a.quiet and not a.json)
    records = [r for run in runs for r in run.records()]
    if a.figure:
        from .featvis.figure import save_featvis_figure

        save_featvis_figure(atlas, runs, a.figure)
    if a.json:
        print(json.dumps({"atlas": atlas.url, "snapshot": atlas.snapshot_name(a.snapshot), "targets": records}))
        return 0
    for run in runs:
        print(run.summary_line())
    if a.figure:
        print(f"figure: {a.figure}")
    print(f"stored in the atlas; view with: neurocarta serve {a.atlas}")
    return 0


def _add_findings(sub: Any) -> None:
    p = sub.add_parser("findings", help="what the maps show, in plain language (shortcuts, mislabels, ...)",
                       description="Generate findings from the maps stored in the atlas: classes that separate, "
                                   "coherent concept clusters, possible shortcuts, inputs that look mislabelled "
                                   "and how training changed the layers, most pressing first (problems to act "
                                   "on, then what the model confuses, data hygiene, descriptions). Each says "
                                   "how to check it in the viewer and, where a test backs it, its p/q.")
    p.add_argument("atlas")
    p.add_argument("--snapshot", default=None, help="snapshot to read (default: the last)")
    p.add_argument("--json", action="store_true", help="the findings as one JSON list (kind, text, view, "
                                                       "selection, score, evidence, confidence, check)")


def _cmd_findings(a: argparse.Namespace) -> int:
    from .findings import findings, has_labels, has_maps
    from .store import open_atlas

    atlas = open_atlas(a.atlas)
    found = findings(atlas, snapshot=a.snapshot)
    if not has_labels(atlas):
        print("neurocarta: note: the data has no labels, so the findings about classes (shortcuts, mislabels, "
              "class separation, training) are skipped", file=sys.stderr)
    if not has_maps(atlas):
        print(f"neurocarta: note: the atlas has no maps yet, so only the rules that need no map ran; "
              f"run `neurocarta map {a.atlas}` first", file=sys.stderr)
    if a.json:
        print(json.dumps(found))
        return 0
    if not found:
        print("no findings: nothing in the stored maps passed the rules (see `neurocarta findings --help`)")
    import shutil

    # wrapped to a terminal's width; piped (grep, a file), each line whole
    width = min(100, shutil.get_terminal_size((100, 24)).columns) if sys.stdout.isatty() else 0
    print("\n\n".join(_format_finding(f, width) for f in found))
    return 0


def _format_finding(f: dict, width: int = 0) -> str:
    """A finding for a terminal: "[kind] text", then its check line and its confidence (p and
    q where it has them, and the test), indented under it; wrapped at ``width`` (0: not)."""
    import textwrap

    from .findings import short_confidence

    conf = f.get("confidence") or {}
    lines = [(f"[{f['kind']}] {f['text']}", "", "    "),
             (f"check: {f.get('check') or 'open the ' + f['view'] + ' view'}", "    ", "      ")]
    if short_confidence(conf):
        test = f" ({conf['test']})" if conf.get("test") else ""
        lines.append((f"confidence: {short_confidence(conf)}{test}", "    ", "      "))
    if not width:
        return "\n".join(first + line for line, first, _ in lines)
    return "\n".join(textwrap.fill(line, width, initial_indent=first, subsequent_indent=rest)
                     for line, first, rest in lines)


COMMANDS = {"extract": (_add_extract, _cmd_extract), "layers": (_add_layers, _cmd_layers),
            "info": (_add_info, _cmd_info), "topomap": (_add_topomap, _cmd_topomap),
            "mapper": (_add_mapper, _cmd_mapper), "concepts": (_add_concepts, _cmd_concepts),
            "map": (_add_map, _cmd_map), "project": (_add_project, _cmd_project), "serve": (_add_serve, _cmd_serve),
            "export": (_add_export, _cmd_export), "findings": (_add_findings, _cmd_findings),
            "columns": (_add_columns, _cmd_columns), "demo": (_add_demo, _cmd_demo),
            "compare": (_add_compare, _cmd_compare),
            "compare-atlases": (_add_compare_atlases, _cmd_compare_atlases),
            "attribute": (_add_attribute, _cmd_attribute), "visualize": (_add_visualize, _cmd_visualize)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurocarta", description="Map what a trained neural network has learned.")
    parser.add_argument("--version", action="version", version=f"neurocarta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the terminal as one line for people, not a source location."""
    return f"neurocarta: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import warnings

    warnings.formatwarning = _one_line_warning
    try:
        return COMMANDS[args.command][1](args)
    except UserError as e:
        print(f"neurocarta: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurocarta: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `neurocarta layers ... | head`: the reader left, which is fine
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
