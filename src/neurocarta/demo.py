"""``neurocarta demo``: the offline end-to-end run on a fresh machine.

It trains the demo CNN on a built-in data set (or loads it from the cache), captures every
demo-cnn layer for every training snapshot into one atlas, then draws the topographic maps
of every layer (one layout, every snapshot, a training animation), the Mapper graph of
every layer and the concept atlas (groups, embedding, class graphs), says what it made and
prints the findings.

On shapes the demo plants known flaws by default (:data:`DEMO_FLAWS`: one shortcut and 2%
label noise, in the training split only), so its findings have a truth to be checked
against: they should name exactly those (tests/test_demo_findings.py). ``clean=True``
(``neurocarta demo --clean``) plants none.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from .data import load_data
from .data.base import DataSource
from .errors import UserError
from .pipeline import MapOptions
from .store import Atlas, atlas_info, format_info

if TYPE_CHECKING:
    from .viewer.app import BackgroundServer

#: The flaws the demo plants in shapes unless ``clean``: a background shortcut (training
#: circles sit on the noise background 90% of the time, other classes a third of the time;
#: the test split stays balanced) and uniform label noise (2% of the training labels, 160 of
#: 8,000, flipped to a random other class; the ``relabelled`` column marks them).
DEMO_FLAWS = {"bias": "0.9", "noise": "0.02"}
#: at most this many findings lines are printed at the end of the demo
DEMO_FINDINGS_SHOWN = 8


def demo_data(data: str = "shapes", clean: bool = False) -> str:
    """The data spec the demo runs on: a shapes spec gets :data:`DEMO_FLAWS` for every option
    it does not set itself (``shapes:n=1500`` -> ``shapes:n=1500,bias=0.9,noise=0.02``; an
    explicit ``bias=0`` wins); ``clean``, digits and sentences get none."""
    name, _, rest = data.partition(":")
    if clean or name.strip() != "shapes":
        return data
    given = {item.partition("=")[0].strip() for item in rest.split(",") if item.strip()}
    added = [f"{key}={value}" for key, value in DEMO_FLAWS.items() if key not in given]
    return "shapes:" + ",".join([rest] * bool(rest.strip()) + added) if added else data


def planted_flaws(source: DataSource) -> str:
    """What a shapes source plants, in one line ("" when nothing: digits, clean shapes)."""
    parts = []
    if getattr(source, "bias", None):
        parts.append(f"a shortcut (training {source.bias_class}s on the {source.bias_background} background "
                     f"{source.bias:.0%} of the time; the test split is balanced)")
    if getattr(source, "relabel", None):
        parts.append(f"the relabelling {source.relabel} ({source.relabel_fraction:.0%} of the training inputs)")
    if getattr(source, "noise", 0.0):
        parts.append(f"label noise ({source.noise:.0%} of the training labels flipped to a random other class)")
    if not parts:
        return ""
    flagged = int(source.table()["relabelled"].sum())
    return f"planted {' and '.join(parts)}; {flagged} changed labels are marked in the column relabelled"


def run_demo(data: str = "shapes", out: str | Path = "demo-atlas", epochs: int = 4, serve: bool = True,
             overwrite: bool = False, progress: bool = True, clean: bool = False, featvis: bool = True) -> Atlas:
    """Train (or load) demo-cnn on ``data`` and build the demo atlas at ``out`` (with feature
    visualizations once the viewer is up, unless not ``featvis``).

    On shapes, :data:`DEMO_FLAWS` are planted unless ``clean`` (see :func:`demo_data`).
    """
    from .capture import extract
    from .models.demo_cnn import DEFAULT_LAYERS, load_demo_cnn

    kind = data.split(":", 1)[0]
    if kind == "sentences":
        return run_text_demo(data, out, serve=serve, overwrite=overwrite, progress=progress)
    if kind not in ("shapes", "digits"):
        raise UserError(f"the demo runs on built-in data: --data shapes, digits or sentences, not {data!r}")
    if epochs < 3:
        raise UserError("the demo needs at least 3 epochs, one snapshot each, to show training")
    source = load_data(demo_data(data, clean))
    planted = planted_flaws(source)
    if planted:
        say(f"{planted} (--clean plants none)")
    t0 = time.time()
    bundle = load_demo_cnn(source, epochs=epochs, progress=progress)
    info = bundle.info
    epochs_took = ", ".join(f"{s:.1f}" for s in info["epoch_seconds"] if s is not None)
    how = "loaded from the cache" if info["cached"] else f"trained in {time.time() - t0:.0f} s"
    how += f" (per epoch: {epochs_took} s)" if epochs_took else ""
    say(f"demo-cnn {how}: test accuracy {info['test_accuracy']:.3f} on {source.spec} "
        f"({len(info['checkpoints'])} snapshots in {info['training']})")
    t0 = time.time()
    atlas = extract(bundle, source, out, layers=list(DEFAULT_LAYERS), snapshots=info["checkpoints"],
                    overwrite=overwrite, progress=progress)
    say(f"atlas written in {time.time() - t0:.0f} s")
    print(format_info(atlas_info(atlas)))
    # topomaps by class with a training GIF each; concepts of the last snapshot only (time)
    map_and_serve(atlas, MapOptions(group_by=("label",), animate=True, concept_snapshots=False, progress=progress),
                  serve=serve, featvis=featvis)
    return atlas


def map_and_serve(atlas: Atlas, options: MapOptions, serve: bool, findings: bool = True,
                  featvis: bool = True) -> None:
    """Serve the viewer of the demo atlas at once (``serve``), then run the map stages
    (``pipeline.MAP_STAGES``) while it answers, each map appearing in it when stored; print
    the findings, run the stages marked ``after_viewer`` (feature visualization unless not
    ``featvis``), and serve until Ctrl+C."""
    from .attribution.stage import with_attributions
    from .featvis.stage import map_stages
    from .pipeline import map_status, run_map_stages

    stages = with_attributions(map_stages(featvis))
    # the status file lists every stage as pending before the viewer's first look
    status = map_status(atlas, stages)
    viewer = serve_demo(atlas) if serve else None
    with viewer or nullcontext():
        run_map_stages(atlas, options, [s for s in stages if not s.after_viewer], status=status, say=say)
        if findings:
            print_findings(atlas)
        run_map_stages(atlas, options, [s for s in stages if s.after_viewer], status=status, say=say)
        if viewer:
            say(f"every map is built; the viewer is at {viewer.url}  (Ctrl+C to stop)")
            viewer.wait()


def print_findings(atlas: Atlas) -> None:
    """The first findings, one line each, as the viewer's findings panel lists them."""
    from .findings import findings

    t0 = time.time()
    found = findings(atlas)
    for f in found[:DEMO_FINDINGS_SHOWN]:
        print(f"finding [{f['kind']}] {f['text']}")
    more = f"; all of them: neurocarta findings {atlas.root}" if len(found) > DEMO_FINDINGS_SHOWN else ""
    say(f"{len(found)} findings in {time.time() - t0:.0f} s{more}")


TEXT_LAYERS = ["encoder.layer.1.intermediate", "encoder.layer.3.intermediate", "encoder.layer.5.intermediate",
               "encoder.layer.5.attention.output", "encoder.layer.5.output"]
TEXT_DEMO_SENTENCES = 2000  # a few minutes on 2 cores; pass sentences:n=5000 for the whole corpus


def run_text_demo(data: str = "sentences", out: str | Path = "demo-atlas", serve: bool = True,
                  overwrite: bool = False, progress: bool = True) -> Atlas:
    """The text demo: offline MiniLM (no training) over the built-in ``sentences`` corpus.

    Captures one row per token for the MLP intermediates of layers 1, 3 and 5 and the last
    layer's attention output and output, then draws topographic maps grouped by the planted word ``category``,
    Mapper graphs of token states and the concept atlas, whose exemplars are tokens in
    context, with its coherence against the planted categories.
    """
    from .capture import extract
    from .models.text import load_minilm

    if data == "sentences":
        data = f"sentences:n={TEXT_DEMO_SENTENCES}"
    source = load_data(data)
    bundle = load_minilm()
    say(f"MiniLM (6-layer BERT, offline) over {len(source)} sentences; no training needed")
    t0 = time.time()
    atlas = extract(bundle, source, out, layers=list(TEXT_LAYERS), overwrite=overwrite, progress=progress)
    say(f"atlas written in {time.time() - t0:.0f} s: {len(atlas.tokens)} token rows")
    print(format_info(atlas_info(atlas)))
    # topomaps by the planted word category and by label (no grids: 1,536-neuron layers, twice);
    # pies and coherence by category
    map_and_serve(atlas, MapOptions(group_by=("category", "label"), grid=False, colour_by="category",
                                    attributes=["category", "label"], progress=progress),
                  serve=serve, findings=False, featvis=False)
    return atlas


def serve_demo(atlas: Atlas, host: str = "127.0.0.1", port: int = 8765) -> BackgroundServer:
    """Serve the viewer of the demo atlas from a thread (its maps appear as they are built);
    another free port when 8765 is taken."""
    from .viewer import bind_socket, serve_in_background

    try:
        sock = bind_socket(host, port)
    except UserError:
        sock = bind_socket(host, 0)  # the demo should just open: any free port will do
    say(f"serving the viewer while the maps are built; later: neurocarta serve {atlas.root}")
    return serve_in_background(atlas, host=host, sock=sock)


def say(message: str) -> None:
    print(f"neurocarta: {message}", file=sys.stderr)
