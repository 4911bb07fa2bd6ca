"""Layer similarity by minibatch linear CKA: every pair of (atlas, layer, snapshot), within one
atlas (its layers, its snapshots) and across two atlases made on the same inputs.

The inputs are those every atlas holds (``representations.shared_inputs``: matched by
``input_id``), at most ``max_inputs`` of them (a seeded subset: 10,000 is what CKA studies
use, and it bounds memory at max_inputs x the neurons of all compared layers x 4 bytes). They
are shuffled with the seed and cut into minibatches of ``batch_size`` or a little more (never a
short last batch), and every pair's unbiased HSIC is summed over them (``cka.MinibatchCKA``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...errors import UserError
from ..defaults import COMPARISON_BATCH_SIZE, COMPARISON_MAX_INPUTS
from .cka import MIN_BATCH, MinibatchCKA
from .representations import Representation, input_rows, shared_inputs

if TYPE_CHECKING:
    from ...store import Atlas

SNAPSHOT_CHOICES = ("all", "last")


def batches(n: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """Seeded random minibatches of positions 0..n-1, each of ``batch_size`` to 2 x ``batch_size``
    - 1 positions (np.array_split of one permutation: no short last batch)."""
    if batch_size < MIN_BATCH:
        raise UserError(f"batch_size must be at least {MIN_BATCH} (unbiased HSIC), got {batch_size}")
    order = np.random.default_rng([seed, 19]).permutation(n)
    return np.array_split(order, max(1, n // batch_size))


def minibatch_cka(rows: list[np.ndarray], batch_size: int = COMPARISON_BATCH_SIZE, seed: int = 0,
                  progress: bool = False) -> tuple[np.ndarray, int]:
    """The CKA matrix of representations ``rows`` (each inputs x features, the same inputs in the
    same order) over seeded random minibatches, and the number of minibatches.

    BLAS runs on one thread here: b x b Grams are too small to share out, and on a busy machine
    the spinning threads cost 20 times the work (10,000 inputs x 24 representations: 18 CPU s
    with the default threads, 0.9 s with one)."""
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    acc = MinibatchCKA(len(rows))
    parts = batches(len(rows[0]), batch_size, seed)
    with threadpool_limits(limits=1, user_api="blas"):
        for part in tqdm(parts, desc="CKA", unit="batch", disable=not progress):
            acc.update([r[part] for r in rows])
    return acc.matrix(), len(parts)


@dataclass
class LayerSimilarity:
    """CKA between every pair of compared representations (``representations``: one row each,
    with its atlas label, layer and snapshot); ``cka`` is the symmetric matrix in that order."""
    representations: pd.DataFrame
    cka: np.ndarray
    atlases: dict[str, str]  # label (A, B) -> url
    layers: dict[str, list[str]]  # label -> layers, in model order
    snapshots: dict[str, list[str]]  # label -> snapshots compared, in training order
    params: dict = field(default_factory=dict)  # n_inputs, batch_size, n_batches, seed, max_inputs

    def _index(self, label: str, layer: str, snapshot: str) -> int:
        r = self.representations
        hit = np.flatnonzero((r["atlas"] == label) & (r["layer"] == layer) & (r["snapshot"] == snapshot))
        if not len(hit):
            raise UserError(f"no representation {label}:{layer}@{snapshot} in this comparison")
        return int(hit[0])

    def _last(self, label: str, snapshot: str | None) -> str:
        if label not in self.snapshots:
            raise UserError(f"no atlas {label!r} in this comparison; atlases: {', '.join(self.snapshots)}")
        snaps = self.snapshots[label]
        if snapshot is None:
            return snaps[-1]
        if snapshot not in snaps:
            raise UserError(f"snapshot {snapshot!r} of atlas {label} is not compared; compared: {', '.join(snaps)}")
        return snapshot

    def between(self, a: str = "A", b: str | None = None, snapshot_a: str | None = None,
                snapshot_b: str | None = None) -> pd.DataFrame:
        """CKA of atlas ``a``'s layers (rows) with atlas ``b``'s (columns; default ``a`` itself),
        each at one snapshot (default: its last)."""
        b = b or a
        sa, sb = self._last(a, snapshot_a), self._last(b, snapshot_b)
        rows = [self._index(a, layer, sa) for layer in self.layers[a]]
        cols = [self._index(b, layer, sb) for layer in self.layers[b]]
        return pd.DataFrame(self.cka[np.ix_(rows, cols)], index=self.layers[a], columns=self.layers[b])

    def training(self, label: str = "A") -> pd.DataFrame:
        """CKA of each layer (rows) at each snapshot (columns) with the same layer at the last
        snapshot: how far each layer still was from its final representation."""
        last = self._last(label, None)
        snaps = self.snapshots[label]
        out = [[self.cka[self._index(label, layer, s), self._index(label, layer, last)] for s in snaps]
               for layer in self.layers[label]]
        return pd.DataFrame(out, index=self.layers[label], columns=snaps)

    def panels(self) -> list[tuple[str, str, pd.DataFrame]]:
        """The figures' panels, ``(key, title, table)``: each atlas's layers x layers at its last
        snapshot, A's layers x B's, and each atlas's layers x snapshots when it has several."""
        out = []
        for label in self.atlases:
            out.append((f"layers_{label}", f"{label}: layers x layers ({self.snapshots[label][-1]})",
                        self.between(label)))
        if len(self.atlases) == 2:
            out.append(("across", "A layers (rows) x B layers", self.between("A", "B")))
        for label in self.atlases:
            if len(self.snapshots[label]) > 1:
                out.append((f"training_{label}", f"{label}: each layer vs its last snapshot", self.training(label)))
        return out

    def to_json(self) -> dict:
        """Everything as plain JSON: the atlases, parameters, every representation and the
        full matrix (null where a representation has no variance), and the panels."""
        def clean(values: np.ndarray) -> list:
            return [[None if not math.isfinite(v) else round(float(v), 6) for v in row] for row in values]

        return {"atlases": self.atlases, "params": self.params, "layers": self.layers, "snapshots": self.snapshots,
                "representations": self.representations.to_dict(orient="records"), "cka": clean(self.cka),
                "panels": [{"key": k, "title": t, "rows": [str(i) for i in df.index],
                            "columns": [str(c) for c in df.columns], "values": clean(df.to_numpy())}
                           for k, t, df in self.panels()]}

    def plot(self):
        """A matplotlib Figure: one heatmap per panel."""
        from ...render.comparison import plot_similarity

        return plot_similarity([(t, df) for _, t, df in self.panels()],
                               note=f"linear CKA (unbiased, minibatch) on {self.params['n_inputs']:,} shared inputs")

    def _repr_png_(self) -> bytes:
        from ...render.comparison import figure_png

        return figure_png(self.plot())

    def __repr__(self) -> str:
        return (f"<LayerSimilarity {len(self.representations)} representations of {', '.join(self.atlases)} "
                f"on {self.params.get('n_inputs', 0):,} inputs>")


def _representations(label: str, atlas: "Atlas", layers: list[str] | None, snapshots: str) -> list[Representation]:
    names = atlas.select_layers(layers)
    snaps = atlas.snapshots if snapshots == "all" else atlas.snapshots[-1:]
    return [Representation(atlas, label, layer, snap) for snap in snaps for layer in names]


def layer_similarity(atlas: "Atlas", other: "Atlas | None" = None, layers: list[str] | None = None,
                     other_layers: list[str] | None = None, snapshots: str = "all", batch_size: int = COMPARISON_BATCH_SIZE,
                     max_inputs: int = COMPARISON_MAX_INPUTS, seed: int = 0, progress: bool = False) -> LayerSimilarity:
    """Minibatch linear CKA between every pair of the layers (globs: ``layers``, ``other_layers``;
    default all) of ``atlas`` (A) and ``other`` (B), at every snapshot (``snapshots="all"``) or
    the last (``"last"``), on the inputs both hold (matched by ``input_id``)."""
    from tqdm.auto import tqdm

    if snapshots not in SNAPSHOT_CHOICES:
        raise UserError(f"snapshots must be one of {', '.join(SNAPSHOT_CHOICES)}, not {snapshots!r}")
    if int(max_inputs) < MIN_BATCH:
        raise UserError(f"max_inputs must be at least {MIN_BATCH}, got {max_inputs}")
    atlases = {"A": atlas} if other is None else {"A": atlas, "B": other}
    reps = _representations("A", atlas, layers, snapshots)
    if other is not None:
        reps += _representations("B", other, other_layers, snapshots)
    ids = shared_inputs(atlases)
    if len(ids) > max_inputs:
        ids = np.sort(np.random.default_rng([seed, 20]).choice(ids, size=int(max_inputs), replace=False))
    rows = [input_rows(r, ids) for r in tqdm(reps, desc="reading layers", unit="layer", disable=not progress)]
    cka, n_batches = minibatch_cka(rows, batch_size, seed, progress)
    table = pd.DataFrame({"atlas": [r.atlas_label for r in reps], "layer": [r.layer for r in reps],
                          "snapshot": [r.snapshot for r in reps], "name": [r.name for r in reps]})
    return LayerSimilarity(
        representations=table, cka=cka, atlases={k: a.url for k, a in atlases.items()},
        layers={k: a.select_layers(layers if k == "A" else other_layers) for k, a in atlases.items()},
        snapshots={k: list(dict.fromkeys(table.loc[table["atlas"] == k, "snapshot"])) for k in atlases},
        params={"n_inputs": int(len(ids)), "batch_size": int(batch_size), "n_batches": n_batches,
                "max_inputs": int(max_inputs), "seed": int(seed), "estimator": "linear CKA, unbiased HSIC, minibatch",
                "modes": {k: a.mode for k, a in atlases.items()}})
