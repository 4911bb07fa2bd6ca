"""Feature visualization: images optimised to excite a neuron, a concept group, a Mapper
node's direction or a class, made with the atlas's own model (so it sits beside capture;
``neurocarta.methods`` never imports torch) and stored in the atlas for the viewer.

``param`` (Fourier image, decorrelated colour), ``transforms`` (jitter, scale, rotation),
``relu`` (redirected gradients at the start), ``objectives`` (directions in a layer's neuron
space, the diversity term), ``optimize`` (the batched loop), ``targets`` (targets and
exemplars from an atlas), ``run`` (:func:`visualize`), ``stage`` (the map stage).
"""

from .optimize import Settings
from .run import LayerVisualizations, visualize

__all__ = ["LayerVisualizations", "Settings", "visualize"]
