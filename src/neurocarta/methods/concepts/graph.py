"""The concept graph of one class: concept groups per layer, joined by influence.

NeuroCartography's Graph View draws, for a chosen class, the concept groups (neuron clusters)
that matter for the class in each layer and the links between groups of adjacent layers.

**Node importance** follows Summit (:func:`class_importance`): for every input, a layer's
channel maxima are ranked, and the top channels holding ``mass`` (3%) of the layer's total
each add 1 to ``A[class, channel]``. The top ``top_fraction`` (10%) of neurons by importance
then map to their clusters; a node is ``(layer, cluster)`` with the summed importance of its
top members.

**Edge influence.** The original read the edge weights from Summit's precomputed influence
matrix, which its repository does not ship. We compute them from what the atlas holds:

- ``kind="weight"`` (conv and dense layers, when extraction recorded the link matrix, see
  ``capture/links.py``): ``w(A, B) = sum over a in A, b in B of |W[b, a]| * |m_a|``, where
  ``|W[b, a]|`` is the absolute weight from neuron a to neuron b (summed over a conv's
  kernel) and ``m_a`` is a's mean activation over the class's inputs. It is the expected
  magnitude a's output sends into b, Summit's influence without per-input gradients.
- ``kind="coactivation"`` (any model, any pair without a link matrix):
  ``w(A, B) = sum over a in A, b in B of P(b in T | a in T)``, with ``T`` an input's top set
  (:func:`top_sets`: the same Summit top channels that count for importance) over the
  class's inputs; a pair whose ``a`` is never in a top set adds 0. Both kinds *sum* over
  member pairs, so a group's weight grows with the members that carry it, as Summit's
  aggregated influence does; the two kinds are in different units and only compare within
  one layer pair.

Only the top members of a cluster (those among the layer's top ``top_fraction``) make the
node and its edges: the graph shows what matters for the class, not whole clusters.

**Concept cascade** (:func:`cascade`) pushes one neuron (or cluster) forward through the
same matrices and reports the clusters it reaches most in each later layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...errors import UserError

Pair = tuple[str, str]
#: Summit's share of a layer's activation mass whose channels count per input.
DEFAULT_MASS = 0.03
_CHUNK_ROWS = 4096
# Relative slack when comparing cumulative float sums with the mass threshold, so that a
# channel ranked exactly at the threshold does not flip with rounding.
_TOL = 1e-9


@dataclass
class ConceptGraph:
    """One class's concept graph.

    ``nodes``: one row per ``(layer, cluster)``, indexed by node id (0..n-1), with columns
    layer, cluster, importance (summed over the top members), n_members and members (the
    top neuron indices in the cluster). Ordered by layer, then importance descending.
    ``edges``: source and target node ids (adjacent layers, earlier to later), weight > 0
    and kind (``"weight"`` or ``"coactivation"``).
    ``unclustered``: per layer, the top neurons left out because their cluster id is -1.
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame
    layers: list[str]
    unclustered: dict[str, np.ndarray] = field(default_factory=dict)

    def node_id(self, layer: str, cluster: int) -> int:
        """The node id of ``(layer, cluster)``."""
        hit = self.nodes.index[(self.nodes["layer"] == layer) & (self.nodes["cluster"] == cluster)]
        if len(hit) == 0:
            raise UserError(f"cluster {cluster} of layer {layer!r} is not in the graph (none of its neurons "
                            "is among the class's top neurons)")
        return int(hit[0])

    def to_networkx(self):
        """A ``networkx.DiGraph``: nodes by id with their columns as attributes, weighted edges."""
        import networkx as nx

        g = nx.DiGraph()
        for nid, row in self.nodes.iterrows():
            g.add_node(int(nid), layer=row["layer"], cluster=int(row["cluster"]),
                       importance=float(row["importance"]), n_members=int(row["n_members"]),
                       members=list(row["members"]))
        for row in self.edges.itertuples(index=False):
            g.add_edge(int(row.source), int(row.target), weight=float(row.weight), kind=row.kind)
        return g

    def __repr__(self) -> str:
        return f"<ConceptGraph {len(self.layers)} layers, {len(self.nodes)} nodes, {len(self.edges)} edges>"


# ----------------------------------------------------------------------------- inputs

_NO_LABELS = "the atlas has no labels, so there is no per-class graph: extract with a data set that has labels"


def require_labels(labels: Any) -> np.ndarray:
    """The labels as int64 class ids (-1 or missing = unknown), or a clear error when there are none."""
    if labels is None:
        raise UserError(_NO_LABELS)
    try:
        values = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise UserError("labels must be integer class ids (-1 for unknown)") from e
    if values.ndim != 1:
        raise UserError(f"labels must be one per input (1-D), not shape {values.shape}")
    values = np.where(np.isnan(values), -1.0, values)
    if not np.all(np.mod(values, 1) == 0):
        raise UserError("labels must be integer class ids (-1 for unknown)")
    if not (values >= 0).any():
        raise UserError(_NO_LABELS)
    return values.astype(np.int64)


def _rows(channel_max: Any) -> int:
    shape = getattr(channel_max, "shape", None)
    if shape is None or len(shape) != 2:
        raise UserError(f"channel maxima must be an (inputs x neurons) array, not shape {shape}")
    return int(shape[0])


def _block(channel_max: Any, start: int, stop: int) -> np.ndarray:
    x = np.asarray(channel_max[start:stop], dtype=np.float64)
    if not np.isfinite(x).all():
        raise UserError("channel maxima contain NaN or infinite values")
    return x


# ----------------------------------------------------------------------------- importance

def _top_block(x: np.ndarray, mass: float) -> np.ndarray:
    """Summit's per-input top channels of one block of rows (see :func:`top_sets`)."""
    x = np.maximum(x, 0.0)
    total = x.sum(axis=1, keepdims=True)
    order = np.argsort(-x, axis=1, kind="stable")
    ranked = np.take_along_axis(x, order, axis=1)
    before = np.cumsum(ranked, axis=1) - ranked  # mass ranked strictly above each channel
    keep = (before < (mass - _TOL) * total) & (ranked > 0)
    out = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(out, order, keep, axis=1)
    return out


def _check_mass(mass: float) -> None:
    if not 0 < mass <= 1:
        raise UserError(f"mass must be in (0, 1], not {mass}")


def top_sets(channel_max: Any, mass: float = DEFAULT_MASS) -> np.ndarray:
    """Each input's top channels, as an (inputs x neurons) boolean matrix.

    Per input, negative maxima count as 0 (they carry no activation mass), the channels are
    ranked by maximum (ties: lower index first), and a channel is in the top set while the
    mass ranked strictly above it is below ``mass`` of the row's total. So the channel that
    crosses the threshold counts and the strongest channel always does: with a peaked row the
    top channel alone can hold more than 3%, and a strict cut would then count nothing. A row
    of zeros (a dead layer for that input) has an empty top set.

    ``channel_max`` may be a numpy array or a lazy atlas view; it is read in row chunks.
    """
    _check_mass(mass)
    n = _rows(channel_max)
    parts = [_top_block(_block(channel_max, s, min(s + _CHUNK_ROWS, n)), mass) for s in range(0, n, _CHUNK_ROWS)]
    if not parts:
        return np.zeros((0, channel_max.shape[1]), dtype=bool)
    return np.concatenate(parts)


def class_importance(channel_max: Any, labels: Any, n_classes: int, mass: float = DEFAULT_MASS) -> np.ndarray:
    """Summit's activation aggregation: ``A[class, neuron]`` = how many of the class's inputs
    have the neuron among their top channels (see :func:`top_sets` for the rule).

    Parameters
    ----------
    channel_max : (inputs x neurons) per-input maxima (spatial max for conv layers).
    labels : (inputs,) class ids; -1 (unknown) rows are skipped.
    n_classes : number of classes (rows of the result).
    mass : share of each input's activation mass whose channels count (Summit: 0.03).

    Returns
    -------
    (n_classes, n_neurons) int64 counts. Computed in row chunks, memory O(chunk x neurons).
    """
    _check_mass(mass)
    labels = require_labels(labels)
    n = _rows(channel_max)
    n_neurons = int(channel_max.shape[1])
    if len(labels) != n:
        raise UserError(f"{len(labels)} labels for {n} inputs of channel maxima")
    if n_classes < 1 or labels.max() >= n_classes:
        raise UserError(f"labels go up to {labels.max()} but n_classes is {n_classes}")
    counts = np.zeros(n_classes * n_neurons, dtype=np.int64)
    for s in range(0, n, _CHUNK_ROWS):
        e = min(s + _CHUNK_ROWS, n)
        top = _top_block(_block(channel_max, s, e), mass)
        lab = labels[s:e]
        rows, cols = np.nonzero(top & (lab >= 0)[:, None])
        counts += np.bincount(lab[rows] * n_neurons + cols, minlength=counts.size)
    return counts.reshape(n_classes, n_neurons)


# ----------------------------------------------------------------------------- graph

def _layer_nodes(layer: str, cluster_ids: np.ndarray, importance: np.ndarray,
                 top_fraction: float) -> tuple[pd.DataFrame, np.ndarray]:
    """The nodes of one layer and the top neurons left unclustered.

    The top ``ceil(top_fraction * n)`` neurons by importance (ties: lower index) with
    importance > 0 enter; an unimportant neuron never makes a node.
    """
    k = max(1, int(np.ceil(top_fraction * len(importance))))
    top = np.argsort(-importance, kind="stable")[:k]
    top = top[importance[top] > 0]
    ids = cluster_ids[top]
    unclustered = np.sort(top[ids < 0])
    top, ids = top[ids >= 0], ids[ids >= 0]
    rows = []
    for c in np.unique(ids):
        members = np.sort(top[ids == c])
        rows.append({"layer": layer, "cluster": int(c), "importance": float(importance[members].sum()),
                     "n_members": int(len(members)), "members": [int(m) for m in members]})
    frame = pd.DataFrame(rows, columns=["layer", "cluster", "importance", "n_members", "members"])
    frame = frame.sort_values(["importance", "cluster"], ascending=[False, True], kind="stable")
    return frame.reset_index(drop=True), unclustered


def _membership(nodes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(neuron, node position) for every member of a layer's nodes."""
    neurons = [np.asarray(m, dtype=np.int64) for m in nodes["members"]]
    if not neurons:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pos = np.repeat(np.arange(len(neurons)), [len(m) for m in neurons])
    return np.concatenate(neurons), pos


def _aggregate(pairwise: np.ndarray, pos_b: np.ndarray, pos_a: np.ndarray, n_b: int, n_a: int) -> np.ndarray:
    """Sum a (members_b x members_a) matrix into (nodes_b x nodes_a) blocks."""
    one_b = np.zeros((len(pos_b), n_b))
    one_b[np.arange(len(pos_b)), pos_b] = 1.0
    one_a = np.zeros((len(pos_a), n_a))
    one_a[np.arange(len(pos_a)), pos_a] = 1.0
    return one_b.T @ pairwise @ one_a


def conditional_top(top_a: np.ndarray, top_b: np.ndarray, a_idx: Any = None, b_idx: Any = None) -> np.ndarray:
    """``P(b in T | a in T)`` over the rows (inputs), as a (neurons_b x neurons_a) matrix.

    ``top_a`` and ``top_b`` are boolean (inputs x neurons) top sets of two layers over the
    same inputs; ``a_idx`` / ``b_idx`` restrict the neurons. A neuron ``a`` that is never in
    a top set gives a column of zeros (no evidence, no influence).
    """
    ta = np.asarray(top_a)[:, slice(None) if a_idx is None else a_idx].astype(np.float32)
    tb = np.asarray(top_b)[:, slice(None) if b_idx is None else b_idx].astype(np.float32)
    both = tb.T @ ta
    count_a = ta.sum(axis=0)
    return np.divide(both, count_a[None, :], out=np.zeros_like(both), where=count_a[None, :] > 0).astype(np.float64)


def _check_graph_inputs(layers: list[str], clusters: Mapping[str, Any], importance: Mapping[str, Any],
                        top_fraction: float) -> dict[str, np.ndarray]:
    if not layers:
        raise UserError("no layers given: clusters must map each layer to its neurons' cluster ids")
    if not 0 < top_fraction <= 1:
        raise UserError(f"top_fraction must be in (0, 1], not {top_fraction}")
    missing = [l for l in layers if l not in importance]
    if missing:
        raise UserError(f"no importance for layer(s) {', '.join(map(repr, missing))}; give one value per neuron")
    ids = {}
    for layer in layers:
        c = np.asarray(clusters[layer])
        imp = np.asarray(importance[layer])
        if c.ndim != 1 or imp.shape != c.shape:
            raise UserError(f"layer {layer!r}: {c.shape} cluster ids but importance of shape {imp.shape}; "
                            "give one of each per neuron")
        ids[layer] = c.astype(np.int64)
    return ids


def _check_activations(mean_activation: Mapping[str, Any], n: dict[str, int]) -> None:
    for layer, m in mean_activation.items():
        shape = np.asarray(m).shape
        if layer in n and shape != (n[layer],):
            raise UserError(f"mean activation of {layer!r} has shape {shape}, expected ({n[layer]},)")


def _edge_kind(a: str, b: str, n: dict[str, int], links: Mapping[Pair, Any], coactivation: Mapping[str, Any],
               mean_activation: Mapping[str, Any] | None = None) -> str:
    """Which influence joins layers a and b, after checking its inputs' shapes.

    ``mean_activation`` is only required (not None) where weight edges need it.
    """
    if (a, b) in links:
        w = np.asarray(links[(a, b)])
        if w.shape != (n[b], n[a]):
            raise UserError(f"link matrix {a!r} -> {b!r} has shape {w.shape}, expected ({n[b]}, {n[a]}) "
                            "(next layer's neurons x this layer's)")
        if mean_activation is not None and a not in mean_activation:
            raise UserError(f"weight-based edges from {a!r} need its mean activation over the class's inputs")
        return "weight"
    if a in coactivation and b in coactivation:
        ta, tb = np.asarray(coactivation[a]), np.asarray(coactivation[b])
        if ta.ndim != 2 or tb.ndim != 2 or ta.shape[1] != n[a] or tb.shape[1] != n[b] or len(ta) != len(tb):
            raise UserError(f"co-activation top sets of {a!r} {ta.shape} and {b!r} {tb.shape} must be "
                            "(inputs x neurons) over the same inputs")
        return "coactivation"
    raise UserError(f"no influence between {a!r} and {b!r}: the atlas has no link matrix for them; "
                    "pass coactivation top sets (top_sets of each layer over the class's inputs)")


def _pair_edges(kind: str, a: str, b: str, nodes_a: pd.DataFrame, nodes_b: pd.DataFrame,
                links: Mapping[Pair, Any], mean_activation: Mapping[str, Any],
                coactivation: Mapping[str, Any]) -> np.ndarray:
    """(nodes_b x nodes_a) edge weights between two adjacent layers' nodes."""
    a_idx, pos_a = _membership(nodes_a)
    b_idx, pos_b = _membership(nodes_b)
    if kind == "weight":
        w = np.abs(np.asarray(links[(a, b)], dtype=np.float64))
        m = np.abs(np.asarray(mean_activation[a], dtype=np.float64))
        pairwise = w[np.ix_(b_idx, a_idx)] * m[a_idx][None, :]
    else:
        pairwise = conditional_top(coactivation[a], coactivation[b], a_idx, b_idx)
    return _aggregate(pairwise, pos_b, pos_a, len(nodes_b), len(nodes_a))


def concept_graph(clusters: Mapping[str, Any], importance: Mapping[str, Any],
                  links: Mapping[Pair, Any] | None = None, mean_activation: Mapping[str, Any] | None = None,
                  top_fraction: float = 0.1, coactivation: Mapping[str, Any] | None = None) -> ConceptGraph:
    """The concept graph of one class (see the module docstring for the measures).

    Parameters
    ----------
    clusters : ``{layer: cluster id per neuron}`` (-1 = unclustered), layers in forward
        order; adjacent layers are consecutive keys.
    importance : ``{layer: (n_neurons,)}`` importance for the class (a row of
        :func:`class_importance`).
    links : ``{(layer, next_layer): |W| (n_next, n_layer)}``, e.g. ``Atlas.links()``.
    mean_activation : ``{layer: (n_neurons,)}`` mean activation over the class's inputs
        (spatial mean for conv layers); needed for every layer that starts a linked pair.
    top_fraction : share of each layer's neurons, by importance, that make the nodes.
    coactivation : ``{layer: (class inputs x n_neurons) bool}`` top sets (:func:`top_sets`
        over the class's inputs, same rows in every layer), used for pairs without a link.

    Returns
    -------
    :class:`ConceptGraph`.
    """
    layers = list(clusters)
    ids = _check_graph_inputs(layers, clusters, importance, top_fraction)
    links, mean_activation, coactivation = links or {}, mean_activation or {}, coactivation or {}
    n = {l: len(ids[l]) for l in layers}
    _check_activations(mean_activation, n)
    kinds = {(a, b): _edge_kind(a, b, n, links, coactivation, mean_activation) for a, b in zip(layers, layers[1:])}
    per_layer, unclustered = {}, {}
    for layer in layers:
        imp = np.asarray(importance[layer], dtype=np.float64)
        per_layer[layer], unclustered[layer] = _layer_nodes(layer, ids[layer], imp, top_fraction)
    nodes = pd.concat([per_layer[l] for l in layers], ignore_index=True)
    nodes.index.name = "node"
    offsets = dict(zip(layers, np.cumsum([0] + [len(per_layer[l]) for l in layers])[:-1]))
    edges = []
    for (a, b), kind in kinds.items():
        if len(per_layer[a]) == 0 or len(per_layer[b]) == 0:
            continue
        weights = _pair_edges(kind, a, b, per_layer[a], per_layer[b], links, mean_activation, coactivation)
        tb, ta = np.nonzero(weights > 0)
        edges.append(pd.DataFrame({"source": ta + offsets[a], "target": tb + offsets[b],
                                   "weight": weights[tb, ta], "kind": kind}))
    columns = ["source", "target", "weight", "kind"]
    edge_frame = pd.concat(edges, ignore_index=True) if edges else pd.DataFrame(columns=columns)
    edge_frame = edge_frame[columns].astype({"source": np.int64, "target": np.int64, "weight": np.float64})
    edge_frame = edge_frame.sort_values(["source", "target"], kind="stable").reset_index(drop=True)
    return ConceptGraph(nodes, edge_frame, layers, unclustered)


# ----------------------------------------------------------------------------- cascade

def _start_vector(layer: str, ids: np.ndarray, index: int, unit: str,
                  mean_activation: Mapping[str, Any]) -> np.ndarray:
    """The pushed activity in the start layer: one neuron, or a cluster's members weighted
    by their mean activation when given (uniformly otherwise)."""
    u = np.zeros(len(ids))
    if unit == "neuron":
        if not 0 <= index < len(ids):
            raise UserError(f"layer {layer!r} has neurons 0..{len(ids) - 1}, not {index}")
        u[index] = 1.0
        return u
    members = ids == index
    if not members.any():
        raise UserError(f"layer {layer!r} has no cluster {index}")
    act = np.abs(np.asarray(mean_activation[layer], dtype=np.float64)) if layer in mean_activation else None
    u[members] = act[members] if act is not None and act[members].sum() > 0 else 1.0
    return u / u.sum()


def _gate(layer: str, mean_activation: Mapping[str, Any]) -> np.ndarray | float:
    """Relative class activity of a reached layer's neurons (1 without activations)."""
    if layer not in mean_activation:
        return 1.0
    m = np.maximum(np.asarray(mean_activation[layer], dtype=np.float64), 0.0)
    top = m.max() if m.size else 0.0
    return m / top if top > 0 else np.zeros_like(m)


def _top_clusters(layer: str, ids: np.ndarray, u: np.ndarray, top: int) -> pd.DataFrame:
    keep = ids >= 0
    clusters, inverse = np.unique(ids[keep], return_inverse=True)
    scores = np.bincount(inverse, weights=u[keep], minlength=len(clusters))
    order = np.lexsort((clusters, -scores))
    order = order[scores[order] > 0][:top]
    return pd.DataFrame({"layer": layer, "cluster": clusters[order].astype(np.int64), "score": scores[order]})


def cascade(clusters: Mapping[str, Any], start: tuple[str, int], links: Mapping[Pair, Any] | None = None,
            coactivation: Mapping[str, Any] | None = None, mean_activation: Mapping[str, Any] | None = None,
            top: int = 5, unit: str = "neuron") -> pd.DataFrame:
    """The concept cascade: which clusters of each later layer a neuron (or cluster) drives most.

    The start is a one-hot vector on neuron ``start[1]`` of layer ``start[0]``
    (``unit="cluster"``: the cluster's members, weighted by mean activation when given).
    Each step to the next layer multiplies by ``|W|`` (n_next x n_this) when ``links`` has
    the pair, else by the co-activation matrix ``P(b in T | a in T)``; so a later neuron's
    score sums, over every path from the start, the product of the path's link strengths.
    With ``mean_activation`` a reached neuron's score is scaled by its class activity
    relative to the layer's most active neuron, so a dead ReLU passes nothing on. Scores
    are then normalised to sum 1 per layer (a share of the start's influence, comparable
    across depths, where raw products would shrink or grow with every layer). A cluster
    scores the sum of its neurons' shares (-1 neurons are left out).

    Returns
    -------
    DataFrame (layer, cluster, score): up to ``top`` clusters with score > 0 per later
    layer, layers in order, best first.
    """
    layers = list(clusters)
    layer, index = start
    if layer not in clusters:
        raise UserError(f"cascade start layer {layer!r} is not among the layers: {', '.join(layers)}")
    if unit not in ("neuron", "cluster"):
        raise UserError(f"unit must be 'neuron' or 'cluster', not {unit!r}")
    if top < 1:
        raise UserError(f"top must be at least 1, not {top}")
    links, coactivation, mean_activation = links or {}, coactivation or {}, mean_activation or {}
    ids = {l: np.asarray(clusters[l]).astype(np.int64) for l in layers}
    n = {l: len(ids[l]) for l in layers}
    _check_activations(mean_activation, n)
    later = layers[layers.index(layer):]
    for a, b in zip(later, later[1:]):  # check every step before computing any
        _edge_kind(a, b, n, links, coactivation)
    u = _start_vector(layer, ids[layer], int(index), unit, mean_activation)
    frames = []
    for a, b in zip(later, later[1:]):
        if (a, b) in links:
            step = np.abs(np.asarray(links[(a, b)], dtype=np.float64))
        else:
            step = conditional_top(coactivation[a], coactivation[b])
        u = (step @ u) * _gate(b, mean_activation)
        total = u.sum()
        u = u / total if total > 0 else u
        frames.append(_top_clusters(b, ids[b], u, top))
    if not frames:
        return pd.DataFrame({"layer": pd.Series(dtype=object), "cluster": pd.Series(dtype=np.int64),
                             "score": pd.Series(dtype=np.float64)})
    return pd.concat(frames, ignore_index=True)
