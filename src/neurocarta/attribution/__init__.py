"""Attributions: which pixels or tokens of an input move a class, a neuron or a concept group
(Captum's saliency and integrated gradients), stored in the atlas for the viewer's inspector.

It sits beside capture: it needs the model (reloaded from what the atlas recorded,
capture/reload.py) and writes through ``store.attributions``, which the viewer reads without
torch.
"""

from .run import attribute, parse_inputs
from .targets import TARGET_FORMS, Target, parse_method, parse_target

__all__ = ["attribute", "parse_inputs", "parse_method", "parse_target", "Target", "TARGET_FORMS"]
