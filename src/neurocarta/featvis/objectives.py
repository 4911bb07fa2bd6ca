"""What an image is optimised for: a direction in one layer's neuron space.

Every objective here is one weight vector ``w`` over a layer's neurons, so targets of any
kind share one batch (one row of ``W`` per image):

- a neuron: ``w`` one-hot (a conv channel's spatial mean, or its centre position);
- a concept group: ``w`` one on each member (the sum over its members);
- a Mapper node: ``w`` the node's mean activation vector (TopoAct's choice), as a dot
  product, optionally times ``cos(a, w) ** p`` (Activation Atlas), which favours images
  whose whole activation vector points the node's way rather than one strong neuron;
- a class: ``w`` one-hot over the model's output logits.

Several images of one target also get a diversity term: minus the mean cosine similarity of
their activation patterns (Gram matrices for conv layers, as Lucid's diversity objective),
so they show different ways to excite the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

KINDS = ("neuron", "concept", "mapper_node", "class")


@dataclass
class Target:
    """One thing to visualise: ``kind`` (see :data:`KINDS`), its id as text (neuron index,
    concept group id, Mapper node id, class index), the layer, and its direction ``weights``
    over the layer's neurons. ``centre``: a conv layer's centre position instead of the
    channel mean. ``cosine_power``: Activation Atlas's cosine factor (0: the plain dot).
    ``description``: the objective in words, as stored and shown."""

    kind: str
    target: str
    layer: str
    weights: np.ndarray
    description: str
    centre: bool = False
    cosine_power: float = 0.0


def layer_vector(acts: torch.Tensor, centre: bool) -> torch.Tensor:
    """A layer output as one vector per image: (B, C, H, W) -> the spatial mean, or the
    centre position with ``centre``; (B, C) as it is."""
    if acts.ndim == 4:
        if centre:
            return acts[:, :, acts.shape[2] // 2, acts.shape[3] // 2]
        return acts.mean(dim=(2, 3))
    if acts.ndim == 2:
        return acts
    raise ValueError(f"feature visualization needs a conv (N, C, H, W) or dense (N, C) layer, got {tuple(acts.shape)}")


def objective_values(acts: torch.Tensor, weights: torch.Tensor, centre: torch.Tensor,
                     cosine_power: torch.Tensor) -> torch.Tensor:
    """Each image's objective (B,): ``<v, w>`` times ``max(cos(v, w), 0) ** p`` where ``p > 0``.

    ``weights`` (B, C); ``centre`` (B,) bool; ``cosine_power`` (B,)."""
    if acts.ndim == 4 and bool(centre.any()):
        vectors = torch.where(centre[:, None], layer_vector(acts, True), layer_vector(acts, False))
    else:
        vectors = layer_vector(acts, False)
    dot = (vectors * weights).sum(dim=1)
    if not bool((cosine_power > 0).any()):
        return dot
    cos = dot / (vectors.norm(dim=1) * weights.norm(dim=1) + 1e-8)
    factor = torch.where(cosine_power > 0, cos.clamp(min=1e-4) ** cosine_power, torch.ones_like(cos))
    return dot * factor


def diversity_penalty(acts: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """(B,) each image's mean cosine similarity to the other images of its group (the same
    target); 0 for an image alone in its group."""
    b = acts.shape[0]
    if acts.ndim == 4:
        flat = acts.flatten(2)
        feats = (flat @ flat.transpose(1, 2)).flatten(1) / flat.shape[2]  # Gram matrices
    else:
        feats = acts
    feats = torch.nn.functional.normalize(feats.flatten(1), dim=1)
    sim = feats @ feats.T
    same = (groups[:, None] == groups[None, :]) & ~torch.eye(b, dtype=torch.bool, device=acts.device)
    count = same.sum(dim=1)
    return torch.where(count > 0, (sim * same).sum(dim=1) / count.clamp(min=1), torch.zeros_like(count, dtype=sim.dtype))
