"""``topomap(atlas, layer, ...)``: profiles, layout and metrics of one layer, as a result that
saves into the atlas (``maps/topomap/<layer>@<group_by>/``) and reloads from it.

With several snapshots, the layout is computed once, on the layout snapshot (the last by
default, as in the original's training use case), and every snapshot's profiles are drawn
on it, so the frames of a training animation are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...errors import UserError
from ...render.images import map_images
from ..defaults import TOPOMAP_DISTANCE, TOPOMAP_K, TOPOMAP_METHOD, TOPOMAP_PROFILE
from .estimator import TopoMap
from .metrics import smoothness_auc
from .profiles import Profiles, profiles_from_stats, raw_profiles
from .stats import separation

if TYPE_CHECKING:
    from ...store import Atlas

PROFILE_KINDS = ("nap", "contrastive", "raw")
KIND = "topomap"


@dataclass
class TopoMapResult:
    """One layer's topographic map: a layout shared by every snapshot, and per-snapshot values.

    ``values[snapshot]`` is (neurons x groups): the profile each group paints on the map.
    """

    layer: str
    group_by: str
    groups: list[str]
    counts: dict[str, list[int]]
    layout: np.ndarray
    values: dict[str, np.ndarray]
    metrics: dict
    params: dict
    layout_snapshot: str
    grid_cells: np.ndarray | None = None
    grid_shape: tuple[int, int] | None = None
    silent: np.ndarray | None = None  # neurons with a constant profile, parked outside the map
    separation: dict[str, float] = field(default_factory=dict)

    @property
    def snapshots(self) -> list[str]:
        return list(self.values)

    @property
    def name(self) -> str:
        return result_name(self.layer, self.group_by)

    @property
    def n_neurons(self) -> int:
        return self.layout.shape[0]

    @property
    def live(self) -> np.ndarray:
        """Neurons drawn on interpolated maps (every neuron but the silent ones)."""
        return ~self.silent if self.silent is not None else np.ones(self.n_neurons, dtype=bool)

    def frame(self, snapshot: str | None = None) -> np.ndarray:
        """(neurons x groups) values of one snapshot (default: the layout snapshot)."""
        snap = snapshot or self.layout_snapshot
        if snap not in self.values:
            raise UserError(f"this topomap has no snapshot {snap!r}; it has: {', '.join(self.values)}")
        return self.values[snap]

    @property
    def group_names(self) -> list[str]:
        """Display names of the groups (class names for label and pred groups)."""
        return list(self.params.get("group_names") or self.groups)

    def group_index(self, groups) -> list[int]:
        wanted = [str(g) for g in (groups if isinstance(groups, (list, tuple)) else [groups])]
        names = self.group_names
        missing = [g for g in wanted if g not in self.groups and g not in names]
        if missing:
            raise UserError(f"this topomap has no group {missing[0]!r}; groups: {', '.join(names)}")
        return [self.groups.index(g) if g in self.groups else names.index(g) for g in wanted]

    # ------------------------------------------------------------ drawing (neurocarta.render)
    def plot(self, groups=None, snapshot: str | None = None, **kwargs):
        """A matplotlib Figure with one map per group (see :func:`neurocarta.render.plot_topomap`)."""
        from ...render import plot_topomap

        return plot_topomap(self, groups=groups, snapshot=snapshot, **kwargs)

    def _repr_png_(self) -> bytes:
        """Jupyter shows the result as its figure (every group, the last snapshot)."""
        from ...render import figure_png

        return figure_png(self.plot())

    def animate(self, path, **kwargs):
        """Write a GIF or MP4 over every snapshot, on this map's one layout."""
        from ...render import animate_topomap

        return animate_topomap(self, path, **kwargs)

    # ------------------------------------------------------------ storage
    def save(self, atlas: Atlas) -> None:
        neurons = pd.DataFrame({"neuron": np.arange(self.n_neurons), "x": self.layout[:, 0], "y": self.layout[:, 1]})
        neurons["silent"] = self.silent if self.silent is not None else np.zeros(self.n_neurons, dtype=bool)
        if self.grid_cells is not None:
            neurons["cell"] = self.grid_cells
        frames = []
        for snap, v in self.values.items():
            f = pd.DataFrame(v, columns=[f"g{i}" for i in range(v.shape[1])])
            f.insert(0, "neuron", np.arange(self.n_neurons))
            f.insert(0, "snapshot", snap)
            frames.append(f)
        meta = {"layer": self.layer, "group_by": self.group_by, "groups": self.groups, "counts": self.counts,
                "metrics": self.metrics, "params": self.params, "layout_snapshot": self.layout_snapshot,
                "grid_shape": list(self.grid_shape) if self.grid_shape else None, "separation": self.separation}
        atlas.save_map(KIND, self.name, {"neurons": neurons, "values": pd.concat(frames, ignore_index=True)}, meta)

    @classmethod
    def load(cls, atlas: Atlas, layer: str, group_by: str = "label") -> "TopoMapResult":
        tables, meta = atlas.load_map(KIND, result_name(layer, group_by))
        neurons, table = tables["neurons"], tables["values"]
        cols = [f"g{i}" for i in range(len(meta["groups"]))]
        values = {snap: part.sort_values("neuron")[cols].to_numpy(dtype=np.float64)
                  for snap, part in table.groupby("snapshot", sort=False)}
        return cls(layer=meta["layer"], group_by=meta["group_by"], groups=meta["groups"], counts=meta["counts"],
                   layout=neurons[["x", "y"]].to_numpy(dtype=np.float64), values=values, metrics=meta["metrics"],
                   params=meta["params"], layout_snapshot=meta["layout_snapshot"],
                   grid_cells=neurons["cell"].to_numpy() if "cell" in neurons else None,
                   grid_shape=tuple(meta["grid_shape"]) if meta["grid_shape"] else None,
                   silent=neurons["silent"].to_numpy(dtype=bool),
                   separation=meta.get("separation", {}))

    def __repr__(self) -> str:
        m = self.metrics
        return (f"<TopoMapResult {self.layer!r} by {self.group_by!r}: {self.n_neurons} neurons, {len(self.groups)} groups, "
                f"{len(self.values)} snapshot(s), {self.params.get('method')} trustworthiness "
                f"{m.get('trustworthiness', float('nan')):.3f}>")


def result_name(layer: str, group_by: str) -> str:
    return f"{layer}@{group_by}"


def _profiles(atlas: Atlas, layer, group_by, snapshot, profile, stat, min_count, n_samples, seed):
    """A snapshot's profiles, and the group statistics they came from (None for raw)."""
    if profile == "raw":
        balanced = None if group_by in (None, "", "random") else group_by
        return raw_profiles(atlas, layer, n=n_samples, balanced_by=balanced, snapshot=snapshot, stat=stat,
                            seed=seed), None
    stats = atlas.group_stats(layer, group_by, snapshot=snapshot, stat=stat)
    return profiles_from_stats(stats, profile, min_count, layer), stats


def topomap(atlas: Atlas, layer: str, group_by: str = "label", method: str = TOPOMAP_METHOD,
            distance: str = TOPOMAP_DISTANCE,
            profile: str = TOPOMAP_PROFILE, grid: bool = False, refine: bool = False, snapshots="last",
            layout_snapshot: str | None = None, groups=None, min_count: int = 1, stat: str = "mean",
            n_samples: int = 1000, seed: int = 0, k: int = TOPOMAP_K, save: bool = False) -> TopoMapResult:
    """The topographic map of one layer of ``atlas``.

    Parameters
    ----------
    group_by : input-table column(s) whose values are the groups (``label``, ``pred``,
        ``correct``, ``"label_name,correct"``, ``"confusion"``, an attribute, a user column).
    method, distance, grid, refine, seed, k : passed to :class:`TopoMap`.
    profile : ``"nap"`` (the original's), ``"contrastive"`` (one vs rest effect sizes) or
        ``"raw"`` (activations of ``n_samples`` inputs; balanced over ``group_by``, or
        random with ``group_by="random"``). Raw profiles draw one map per sample, so they
        serve the layout; group maps need nap or contrastive.
    snapshots : ``"last"``, ``"all"`` or a list of snapshot names to paint on the layout.
    groups : keep only these group values (in this order); a value with no inputs is an error.
    save : also store the result in the atlas.
    """
    if profile not in PROFILE_KINDS:
        raise UserError(f"profile must be one of {', '.join(PROFILE_KINDS)}, not {profile!r}")
    if layer not in atlas.layer_names:
        raise UserError(f"the atlas has no layer {layer!r}; layers: {', '.join(atlas.layer_names)}")
    info = atlas.manifest.layer(layer)
    if info.n_neurons < 3:
        raise UserError(f"layer {layer!r} has {info.n_neurons} neuron(s); a topographic map needs at least 3")
    all_snaps = atlas.snapshots
    if snapshots == "last":
        snaps = [all_snaps[-1]]
    elif snapshots == "all":
        snaps = list(all_snaps)
    else:
        snaps = [atlas.snapshot_name(s) for s in snapshots]
    base = atlas.snapshot_name(layout_snapshot) if layout_snapshot else snaps[-1]
    if base not in snaps:
        snaps.append(base)

    def build(snap: str) -> tuple[Profiles, object]:
        p, stats = _profiles(atlas, layer, group_by, snap, profile, stat, min_count, n_samples, seed)
        if groups is not None and profile != "raw":
            p = _pick(p, groups)
        return p, stats

    prof, base_stats = build(base)
    model = TopoMap(method=method, distance=distance, k=k, seed=seed, refine=refine, grid=grid).fit(prof)
    values, counts, sep = {}, {}, {}
    for snap in snaps:
        p, stats = (prof, base_stats) if snap == base else build(snap)
        if p.groups != prof.groups:  # a group empty in one snapshot's outputs (pred, correct)
            p = _reindex(p, prof.groups)
        values[snap] = p.values
        counts[snap] = [int(c) for c in p.counts]
        if stats is not None:
            sep[snap] = separation(stats)
    metrics = dict(model.metrics_)
    if grid:
        metrics["grid"] = model.grid_metrics_
    if profile != "raw" and len(prof.groups) <= 64:
        # The original's smoothness score of the drawn maps (float images; lower is smoother).
        live = ~model.silent_
        img = map_images(model.layout_[live], prof.values[live], res=100).images
        metrics["smoothness_auc"] = smoothness_auc(img)
    # Keep snapshot order as in the atlas.
    values = {s: values[s] for s in all_snaps if s in values}
    params = {"method": method, "distance": distance, "profile": profile, "grid": grid, "refine": refine,
              "seed": seed, "k": k, "stat": stat, "min_count": min_count}
    labels = [str(g) for g in prof.groups]
    names = atlas.class_names  # the labels' names; predictions are named by the model's classes
    predicted = atlas.prediction_names() if group_by == "pred" else {}
    if predicted and all(g.isdigit() for g in labels):
        params["group_names"] = [predicted.get(int(g), g) for g in labels]
    elif group_by in ("label", "pred") and names and all(g.isdigit() and int(g) < len(names) for g in labels):
        params["group_names"] = [names[int(g)] for g in labels]
    result = TopoMapResult(layer=layer, group_by=group_by, groups=labels, counts=counts,
                           layout=model.layout_, values=values, metrics=metrics, params=params,
                           layout_snapshot=base, grid_cells=getattr(model, "grid_cells_", None),
                           grid_shape=getattr(model, "grid_shape_", None), silent=model.silent_, separation=sep)
    if save:
        result.save(atlas)
    return result


def _pick(p: Profiles, groups) -> Profiles:
    wanted = [str(g) for g in (groups if isinstance(groups, (list, tuple)) else [groups])]
    have = [str(g) for g in p.groups]
    missing = [g for g in wanted if g not in have]
    if missing:
        raise UserError(f"group {missing[0]!r} has no inputs in column {p.by!r}; groups with inputs: {', '.join(have)}")
    idx = [have.index(g) for g in wanted]
    if len(idx) < 2:
        raise UserError("a topographic map needs at least 2 groups")
    return Profiles(values=p.values[:, idx], groups=[p.groups[i] for i in idx], counts=p.counts[idx], layer=p.layer, by=p.by)


def _reindex(p: Profiles, groups: list) -> Profiles:
    have = [str(g) for g in p.groups]
    values = np.zeros((p.values.shape[0], len(groups)))
    counts = np.zeros(len(groups), dtype=np.int64)
    for j, g in enumerate(groups):
        if str(g) in have:
            values[:, j] = p.values[:, have.index(str(g))]
            counts[j] = p.counts[have.index(str(g))]
    return Profiles(values=values, groups=list(groups), counts=counts, layer=p.layer, by=p.by)
