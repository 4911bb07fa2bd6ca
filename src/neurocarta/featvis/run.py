"""``visualize``: feature visualizations of an atlas's layers, made with its own model and
stored in it (store/featvis.py), each target beside the dataset input that excites it most.

The model comes back from the manifest (capture/reload.py) with the snapshot's weights. Per
layer, every target's images optimise in one batch (optimize.py); then each target's
exemplars, the inputs the stored activations rank first, run through the model so that the
synthesized image and the best dataset input are measured by the same objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..capture.reload import ReloadedModel, reload_model
from ..errors import UserError
from ..store.atlas import Atlas
from ..store.featvis import OUTPUT, featvis_images, featvis_layers, featvis_table, save_featvis
from .objectives import Target
from .optimize import LayerTap, Preprocess, Settings, measure, optimise, target_tensors
from .targets import class_targets, concept_targets, exemplar_candidates, mapper_targets, neuron_targets


@dataclass
class LayerVisualizations:
    """One layer's visualizations as stored: ``table`` (see store/featvis.py) and ``images``
    uint8 (targets, images, s, s, 3)."""

    layer: str
    snapshot: str
    table: pd.DataFrame
    images: np.ndarray

    def records(self) -> list[dict]:
        """Per target what ``neurocarta visualize --json`` prints."""
        out = []
        for row in self.table.itertuples():
            ex = None if pd.isna(row.exemplar_activation) else float(row.exemplar_activation)
            out.append({"layer": self.layer, "snapshot": self.snapshot, "kind": row.kind, "target": row.target,
                        "objective": row.objective, "activation": float(row.activation),
                        "exemplar_activation": ex,
                        "exemplar_input_id": None if pd.isna(row.exemplar_input_id) else str(row.exemplar_input_id),
                        "beats_exemplar": None if ex is None else bool(row.activation >= ex)})
        return out


    def summary_line(self) -> str:
        """One line: the layer, its targets and how many beat their best exemplar."""
        beat = [r["beats_exemplar"] for r in self.records() if r["beats_exemplar"] is not None]
        share = f"; {sum(beat)}/{len(beat)} excite their target at least as much as its best exemplar" if beat else ""
        return f"featvis  {self.layer:<24} {len(self.table):>4} targets{share}"


def load_visualizations(atlas: Atlas, layers: Sequence[str] | None = None,
                        snapshot: str | None = None) -> list[LayerVisualizations]:
    """The stored visualizations of ``layers`` (default: every layer that has some) at
    ``snapshot`` (default: the last), without the model."""
    snap = atlas.snapshot_name(snapshot)
    stored = featvis_layers(atlas).get(snap, [])
    out = []
    for name in (stored if layers is None else [n for n in layers if n in stored]):
        table, images = featvis_table(atlas, name, snap), featvis_images(atlas, name, snap)
        out.append(LayerVisualizations(name, snap, table, np.asarray(images)))
    return out


def choose_targets(atlas: Atlas, layer: str, snapshot: str, neurons: Sequence[int] | None | bool = None,
                   concepts: bool = False, mapper_nodes: bool = False, centre: bool = False,
                   cosine_power: float = 1.0) -> list[Target]:
    """The targets asked for on one layer: ``neurons`` (a list, or ``True`` for all; the
    default when nothing else is asked), the layer's concept groups, its Mapper nodes."""
    targets: list[Target] = []
    if neurons is True or (neurons is None and not concepts and not mapper_nodes):
        targets += neuron_targets(atlas, layer, None, centre)
    elif neurons:
        targets += neuron_targets(atlas, layer, list(neurons), centre)
    if concepts:
        targets += concept_targets(atlas, layer, snapshot)
    if mapper_nodes:
        targets += mapper_targets(atlas, layer, cosine_power)
    return targets


def visualize(atlas: Atlas, layers: Sequence[str] | None = None, neurons: Sequence[int] | None | bool = None,
              concepts: bool = False, mapper_nodes: bool = False, classes: Sequence[int] | bool | None = None,
              snapshot: str | None = None, settings: Settings | None = None, centre: bool = False,
              cosine_power: float = 1.0, device: str = "auto", model=None, progress: bool = True,
              report: Callable[[int, int], None] | None = None) -> list[LayerVisualizations]:
    """Make and store feature visualizations; returns one :class:`LayerVisualizations` per layer.

    ``layers``: layer names or patterns (default: every conv and dense layer). ``neurons``,
    ``concepts``, ``mapper_nodes``: what to visualise on each layer (see
    :func:`choose_targets`). ``classes``: class logits too (a list of class indices, or
    ``True`` for all), stored under the layer ``output``. ``model``: the model again, for an
    atlas made from an in-memory model. ``report(done, total)`` counts layers.
    """
    settings = settings or Settings()
    snap = atlas.snapshot_name(snapshot)
    names = atlas.select_layers(list(layers)) if layers else [
        l.name for l in atlas.layers if l.kind in ("conv", "dense") and l.rows == "input"]
    plan = [(name, choose_targets(atlas, name, snap, neurons, concepts, mapper_nodes, centre, cosine_power))
            for name in names]
    if classes:
        plan.append((OUTPUT, class_targets(atlas, None if classes is True else list(classes))))
    plan = [(name, ts) for name, ts in plan if ts]
    if not plan:
        raise UserError("nothing to visualise: the layers chosen have no targets of the kinds asked for")
    loaded = reload_model(atlas, snap, model=model, device=device, progress=progress)
    preprocess = Preprocess.probe(loaded.bundle, _input_side(atlas), loaded.device)
    image_steps = sum(len(ts) for _, ts in plan) * settings.images * settings.steps
    out = []
    from tqdm.auto import tqdm

    with tqdm(total=image_steps, desc="feature visualization", unit="step", unit_scale=True,
              disable=not progress, leave=False) as bar:
        for i, (name, targets) in enumerate(plan):
            bar.set_postfix_str(f"{name} ({len(targets)} targets)")
            images, values = optimise(loaded.module, preprocess, name, targets, settings, loaded.device,
                                      report=bar.update)
            table = _table(targets, values, exemplar_activations(atlas, loaded, preprocess, name, targets, snap))
            attrs = {"steps": settings.steps, "lr": settings.lr, "seed": settings.seed, "diversity": settings.diversity,
                     "snapshot": snap, "layer": name}
            save_featvis(atlas, name, snap, images, table, attrs)
            out.append(LayerVisualizations(name, snap, table, images))
            if report is not None:
                report(i + 1, len(plan))
    return out


def _input_side(atlas: Atlas) -> int | None:
    size = atlas.manifest.model.get("input_size")
    return int(size[-1]) if size else None


def exemplar_activations(atlas: Atlas, loaded: ReloadedModel, preprocess: Preprocess, layer: str,
                         targets: Sequence[Target], snapshot: str, k: int = 8) -> list[tuple[float, int] | None]:
    """Per target, the best objective among its ``k`` top-ranked dataset inputs and that
    input's id, measured with the model as the synthesized images are; ``None`` where the
    atlas ranks no inputs for it."""
    tap = LayerTap(loaded.module, layer)
    out: list[tuple[float, int] | None] = []
    for target in targets:
        ids = exemplar_candidates(atlas, target, snapshot, k)
        if not len(ids):
            out.append(None)
            continue
        x = loaded.bundle.preprocess(loaded.source.get([int(i) for i in ids])).args.to(loaded.device)
        # the preprocessing already ran: measure the objective on model inputs as they are
        weights, centre, power = target_tensors([target] * len(ids), loaded.device)
        values = measure(tap, _identity(preprocess), x, weights, centre, power)
        best = int(np.argmax(values))
        out.append((float(values[best]), int(ids[best])))
    return out


def _identity(preprocess: Preprocess) -> Preprocess:
    one = torch.ones_like(preprocess.scale)
    return Preprocess(preprocess.size, one, torch.zeros_like(preprocess.offset))


def _table(targets: Sequence[Target], values: np.ndarray, exemplars: list[tuple[float, int] | None]) -> pd.DataFrame:
    return pd.DataFrame({
        "kind": [t.kind for t in targets],
        "target": [t.target for t in targets],
        "objective": [t.description for t in targets],
        "activation": values[:, 0].astype(np.float64),
        "activations": [v.astype(np.float64).tolist() for v in values],
        "exemplar_activation": pd.array([e[0] if e else None for e in exemplars], dtype="Float64"),
        "exemplar_input_id": pd.array([e[1] if e else None for e in exemplars], dtype="Int64"),
    })
