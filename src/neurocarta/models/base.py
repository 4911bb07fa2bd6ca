"""The model-bundle contract every model adapter follows.

A model spec resolves to a :class:`ModelBundle`: the ``torch.nn.Module`` plus what it needs
around it, above all its own preprocessing from raw items (see
:class:`neurocarta.data.base.DataSource`) to model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .checkpoint import load_state_dict_file


@dataclass
class ModelInputs:
    """One preprocessed batch.

    ``args`` is passed to the module as ``module(args)`` for a tensor or ``module(**args)``
    for a dict. Text models also fill the token fields so that sequence layers can be
    written one row per real (non-padding) token.
    """

    args: torch.Tensor | dict[str, torch.Tensor]
    attention_mask: torch.Tensor | None = None  # (N, T) 1 for real tokens
    token_ids: torch.Tensor | None = None  # (N, T)
    tokens: list[list[str]] | None = None  # per input, the token strings of length T
    special_tokens_mask: torch.Tensor | None = None  # (N, T) 1 for [CLS], [SEP] and the like
    offsets: Any = None  # (N, T, 2) int character offsets of each token in its text (fast tokenizers)
    truncated: Any = None  # (N,) bool: texts cut at the model's maximum length

    def to(self, device: torch.device) -> "ModelInputs":
        if isinstance(self.args, dict):
            args = {k: v.to(device) for k, v in self.args.items()}
        else:
            args = self.args.to(device)
        return ModelInputs(args, self.attention_mask, self.token_ids, self.tokens, self.special_tokens_mask,
                           self.offsets, self.truncated)


@dataclass
class ModelBundle:
    """A model and everything extraction needs to run it.

    Parameters
    ----------
    module : the network; extraction puts it in ``eval()`` mode.
    spec : the spec string it was loaded from (recorded in the manifest).
    modality : which data modality it accepts: ``"image"``, ``"text"`` or ``"array"``.
    preprocess : raw items -> :class:`ModelInputs`.
    class_names : output class names when the model is a classifier.
    default_layers : layer patterns used when the user names none.
    load_snapshot : loads one checkpoint file into ``module`` (default: a state dict).
    """

    module: torch.nn.Module
    spec: str
    modality: str
    preprocess: Callable[[Sequence[Any]], ModelInputs]
    class_names: list[str] | None = None
    default_layers: list[str] = field(default_factory=list)
    load_snapshot: Callable[[torch.nn.Module, Path], None] = load_state_dict_file
    tokenizer: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def forward(self, inputs: ModelInputs) -> Any:
        if isinstance(inputs.args, dict):
            return self.module(**inputs.args)
        return self.module(inputs.args)
