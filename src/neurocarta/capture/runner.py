"""The chunk runner: the forward passes of an extraction and what is collected from them.

:meth:`ChunkRunner.batches` runs the model batch by batch over input ranges, with hooks on
the planned layers, and yields each batch's :class:`~.rows.Rows`: conv maps reduced to mean,
max and argmax, token rows without padding, pooled sequences, outputs (pred, confidence,
loss), token tables and thumbnails. A background thread loads and preprocesses the next
batch meanwhile. The hooks reduce on the model's device; each batch's reduced values are
then rounded to the storage dtype there, checked for NaN and Inf, and copied to the host in
one step (host.py), so every statistic downstream sees exactly what is stored, and with a
GPU only reduced values cross to the host. The runner writes nothing (see sink.py).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import NonFiniteError
from ..models import ModelInputs
from ..models.classes import labels_are_model_classes, prediction_names
from ..store import schema
from .host import round_to_host
from .hooks import Captured, LayerRecorder, check_finite, find_logits
from .plan import ExtractionPlan
from .rows import Rows


class ChunkRunner:
    """Runs the plan's model over input ranges and collects each batch's rows."""

    def __init__(self, plan: ExtractionPlan):
        self.plan = plan
        # the name of each output class, and whether the labels are those classes
        self._classes: tuple[np.ndarray, bool] | None = None

    def batches(self, ranges: Sequence[tuple[int, int]], first_snapshot: bool) -> Iterator[Rows]:
        """One :class:`Rows` per batch over ``ranges``, in order; no batch crosses a range's end
        (so a caller can write whole ranges). Thumbnails are kept on the first snapshot only.

        The loader thread runs one batch ahead, across range ends too. Close the iterator
        (``contextlib.closing``) when stopping early: that removes the hooks.
        """
        plan = self.plan
        bs = plan.opts.batch_size
        spans = [(b, min(b + bs, hi)) for lo, hi in ranges for b in range(lo, hi, bs)]
        if not spans:
            return
        needs_mask = plan.has_token_rows or any(i.pooling for i in plan.infos.values())
        # The loader thread prepares the next batch while the model runs; storing stays in the
        # caller's thread. (A store thread was measured slower on 2 cores, and writing chunk i
        # while chunk i+1 runs gained nothing on MiniLM: the forward pass already uses both
        # cores, see docs/benchmarks.md.)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="neurocarta-load") as pool, \
                LayerRecorder(plan.module, plan.refs, {n: i.pooling for n, i in plan.infos.items()}) as rec:
            future = pool.submit(self._load_batch, *spans[0])
            for i, (b_start, b_stop) in enumerate(spans):
                items, inputs = future.result()
                if i + 1 < len(spans):
                    future = pool.submit(self._load_batch, *spans[i + 1])
                rec.clear()
                mask = self._token_mask(inputs)
                # on the model's device once per batch, not once per hook
                rec.row_mask = mask.to(plan.device) if mask is not None and needs_mask else None
                rows = Rows(b_start, b_stop)
                with torch.no_grad():
                    output = plan.bundle.forward(inputs.to(plan.device))
                    ids = np.arange(b_start, b_stop, dtype=np.int64)
                    self._collect(rows, rec.captured, inputs, mask, ids, find_logits(output), items,
                                  first_snapshot)
                yield rows

    def _load_batch(self, b_start: int, b_stop: int) -> tuple[list[Any], ModelInputs]:
        items = self.plan.source.get(np.arange(b_start, b_stop))
        return items, self.plan.bundle.preprocess(items)

    def _token_mask(self, inputs: ModelInputs) -> torch.Tensor | None:
        """The (B, T) tokens that are recorded (real tokens, special ones when asked); None
        for inputs that are not token sequences. Token layers' hooks copy only these rows."""
        if inputs.attention_mask is None:
            return None
        mask = inputs.attention_mask.bool()
        if inputs.special_tokens_mask is not None and not self.plan.opts.special_tokens:
            mask = mask & ~inputs.special_tokens_mask.bool()
        return mask

    def _collect(self, rows: Rows, captured: dict[str, Captured], inputs: ModelInputs, mask: torch.Tensor | None,
                 ids: np.ndarray, logits: torch.Tensor | None, items: list[Any], first_snapshot: bool) -> None:
        plan = self.plan
        row_mask = mask.cpu().numpy() if mask is not None else None
        # What goes to the host, keyed (layer, signal): rounded to the storage dtype, or exact.
        rounded: dict[tuple[str, str], torch.Tensor] = {}
        exact: dict[tuple[str, str], torch.Tensor] = {}
        token_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # layer -> (input ids, positions) of its rows
        for name, info in plan.infos.items():
            cap = captured[name]
            if cap.kind == "conv":
                rounded[name, "mean"], rounded[name, "max"] = cap.mean, cap.max
                exact[name, "argmax"] = cap.argmax.to(torch.int32)  # half the bytes to copy; the sink narrows it
            elif cap.kind == "sequence" and not cap.pooled:
                b_idx, pos = np.nonzero(row_mask if cap.selected else np.ones(cap.value.shape[:2], dtype=bool))
                token_rows[name] = (ids[b_idx], pos.astype(np.int32))
                rounded[name, "value"] = cap.value if cap.selected else cap.value.flatten(0, 1)
            else:
                rounded[name, "value"] = cap.value
        if logits is not None:
            exact.update(self._outputs(logits, ids))
        host, bad = round_to_host(rounded, exact, torch.float16 if plan.store_dtype == np.float16 else torch.float32)
        if bad is not None:
            self._non_finite(bad, rounded[bad], token_rows[bad[0]][0] if bad[0] in token_rows else ids)
        for name, info in plan.infos.items():
            if info.kind == "conv":
                rows.add(name, mean=host[name, "mean"], max=host[name, "max"], argmax=host[name, "argmax"])
            elif name in token_rows:
                row_input, row_pos = token_rows[name]
                rows.add(name, value=host[name, "value"], row_input=row_input, row_pos=row_pos)
            else:
                rows.add(name, value=host[name, "value"])
        if row_mask is not None:  # text inputs: always record the tokens
            rows.tokens.append(self._token_frame(inputs, row_mask, ids))
        if logits is not None:
            rows.outputs.append(self._output_columns(ids, {k[1]: host[k] for k in host if k[0] == _OUTPUTS}))
        if plan.source.modality == "image" and first_snapshot:
            rows.thumbs.append(thumbnails(items, plan.opts.thumb_size))

    def _non_finite(self, key: tuple[str, str], values: torch.Tensor, row_ids: np.ndarray) -> None:
        """Raise the error for a block whose rounded values are not all finite: NaN or Inf
        in the layer output itself, naming the inputs, or float16 overflow."""
        name = key[0]
        check_finite(name, values.float().cpu().numpy(), row_ids)
        raise NonFiniteError(f"layer {name!r} has activations beyond the float16 range (|x| > 65504); "
                             "pass --dtype float32")

    def _token_frame(self, inputs: ModelInputs, row_mask: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
        """One table row per recorded token: its input, position, id, text, offsets and the
        attributes of the word span it starts in; warns about truncated texts."""
        source = self.plan.source
        b_idx, pos = np.nonzero(row_mask)
        frame = pd.DataFrame({
            schema.INPUT_ID: ids[b_idx], schema.POSITION: pos.astype(np.int32),
            schema.TOKEN_ID: inputs.token_ids.cpu().numpy()[b_idx, pos].astype(np.int64),
            schema.TOKEN: [inputs.tokens[b][p] for b, p in zip(b_idx, pos)],
        })
        if inputs.offsets is not None:
            frame[schema.TOKEN_START] = inputs.offsets[b_idx, pos, 0].astype(np.int32)
            frame[schema.TOKEN_END] = inputs.offsets[b_idx, pos, 1].astype(np.int32)
            if source.span_attributes:
                special = (inputs.special_tokens_mask.cpu().numpy().astype(bool)[b_idx, pos]
                           if inputs.special_tokens_mask is not None else np.zeros(len(b_idx), bool))
                attrs = token_attributes(source.spans(ids), source.span_attributes, source.span_fill, b_idx,
                                         frame[schema.TOKEN_START].to_numpy(), frame[schema.TOKEN_END].to_numpy(), special)
                for k, v in attrs.items():
                    frame[k] = v
        if inputs.truncated is not None and inputs.truncated.any():
            cut = ids[np.asarray(inputs.truncated, dtype=bool)]
            limit = self.plan.bundle.info.get("max_length", "its maximum")
            warnings.warn(f"{len(cut)} text(s) longer than the model's maximum of {limit} tokens were "
                          f"truncated (input ids {', '.join(map(str, cut[:5]))}{', ...' if len(cut) > 5 else ''}); "
                          "only their first tokens are recorded", stacklevel=2)
        return frame

    def _outputs(self, logits: torch.Tensor, ids: np.ndarray) -> dict[tuple[Any, str], torch.Tensor]:
        """pred, confidence and (when the data's labels are the model's classes,
        models/classes.py) the loss per input, computed on the model's device: only these
        (B,) vectors go to the host, not the (B, classes) scores."""
        plan = self.plan
        logits = logits.float()
        conf, pred = logits.softmax(dim=1).max(dim=1)
        out = {(_OUTPUTS, schema.PRED): pred, (_OUTPUTS, schema.CONFIDENCE): conf}
        n_outputs = int(logits.shape[1])
        if self._classes is None or len(self._classes[0]) != n_outputs:  # once per run
            match = labels_are_model_classes(plan.bundle.class_names, plan.source.class_names,
                                             plan.n_label_classes, n_outputs)
            names = prediction_names(plan.bundle.class_names, plan.source.class_names, match, n_outputs)
            self._classes = (np.array(names, dtype=object), match)
        if plan.labels is not None and self._classes[1]:
            labels = torch.from_numpy(np.maximum(plan.labels[ids], 0)).to(logits.device)
            out[_OUTPUTS, schema.LOSS] = F.cross_entropy(logits, labels, reduction="none")
        return out

    def _output_columns(self, ids: np.ndarray, host: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """pred, its name, confidence, loss and correct per input as plain arrays (the sink
        builds one DataFrame, :meth:`Rows.outputs_frame`); loss and correct are NA where the
        labels are not the model's classes, or unknown (-1)."""
        names, _ = self._classes
        pred = host[schema.PRED].astype(np.int64)
        out = {schema.INPUT_ID: ids, schema.PRED: pred, schema.CONFIDENCE: host[schema.CONFIDENCE]}
        out[schema.PRED_NAME] = names[pred]
        if schema.LOSS in host:
            labels = self.plan.labels[ids]
            known = labels >= 0
            out[schema.LOSS] = np.where(known, host[schema.LOSS], np.nan).astype(np.float32)
            out[schema.CORRECT] = np.where(known, (pred == labels).astype(np.int8), -1)
        else:
            out[schema.LOSS] = np.full(len(ids), np.nan, dtype=np.float32)
            out[schema.CORRECT] = np.full(len(ids), -1, dtype=np.int8)
        return out


#: the key of the model outputs among a batch's host copies (see ChunkRunner._collect)
_OUTPUTS = "\x00outputs"

def thumbnails(images: list[Any], size: int) -> np.ndarray:
    """A batch's (B, size, size, 3) uint8 thumbnails. Images that already are such arrays
    (the built-in shapes at the thumbnail size) are stacked as they are: a call per image
    cost 4x the stacking (1.35 vs 0.36 ms per batch of 64)."""
    if all(isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.shape == (size, size, 3) for im in images):
        return np.stack(images)
    return np.stack([thumbnail(im, size) for im in images])


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 (size, size, 3) thumbnail: the image resized to fit, centred on black."""
    from PIL import Image

    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    a = a[:, :, :3]
    if a.shape[0] == size and a.shape[1] == size:
        return np.ascontiguousarray(a, dtype=np.uint8)
    im = Image.fromarray(a.astype(np.uint8))
    scale = size / max(a.shape[0], a.shape[1])
    new = (max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale)))
    resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.BILINEAR
    im = im.resize(new, resample)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(im, ((size - new[0]) // 2, (size - new[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def token_attributes(spans: list[list[tuple[int, int, dict]]], names: Sequence[str], fill: dict[str, str],
                     b_idx: np.ndarray, start: np.ndarray, end: np.ndarray,
                     special: np.ndarray) -> dict[str, np.ndarray]:
    """Each token's word attributes: those of the span holding its first character.

    ``b_idx`` is each token's input within the batch, ``start``/``end`` its character
    offsets. Subword pieces of one word all start inside its span, so they share its
    attributes; tokens in no span get ``fill``, special tokens the value ``"special"``.
    """
    out = {n: np.array([fill.get(n, "")] * len(b_idx), dtype=object) for n in names}
    for b in np.unique(b_idx):
        sp = spans[int(b)]
        if not sp:
            continue
        sel = np.flatnonzero(b_idx == b)
        s_starts = np.fromiter((x[0] for x in sp), dtype=np.int64, count=len(sp))
        s_ends = np.fromiter((x[1] for x in sp), dtype=np.int64, count=len(sp))
        k = np.searchsorted(s_starts, start[sel], side="right") - 1
        hit = (k >= 0) & (end[sel] > start[sel])
        hit[hit] &= start[sel][hit] < s_ends[k[hit]]
        for i, j in zip(sel[hit], k[hit]):
            values = sp[int(j)][2]
            for n in names:
                if n in values:
                    out[n][i] = values[n]
    for n in names:
        out[n][special] = "special"
    return out
