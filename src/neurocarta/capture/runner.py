"""The chunk runner: the forward passes of an extraction and what is collected from them.

:meth:`ChunkRunner.batches` runs the model batch by batch over input ranges, with hooks on
the planned layers, and yields each batch's :class:`~.rows.Rows`: conv maps reduced to mean,
max and argmax, token rows without padding, pooled sequences, outputs (pred, confidence,
loss), token tables and thumbnails. A background thread loads and preprocesses the next
batch meanwhile. Values are rounded to the storage dtype here, once, so every statistic
downstream sees exactly what is stored. The runner writes nothing (see sink.py).
"""

from __future__ import annotations

import math
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
from ..store.manifest import LayerInfo
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
        token_rows = plan.has_token_rows
        # The loader thread prepares the next batch while the model runs; storing stays in the
        # caller's thread. (A store thread was measured slower on 2 cores, and writing chunk i
        # while chunk i+1 runs gained nothing on MiniLM: the forward pass already uses both
        # cores, see docs/benchmarks.md.)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="neurocarta-load") as pool, \
                LayerRecorder(plan.module, plan.refs) as rec:
            future = pool.submit(self._load_batch, *spans[0])
            for i, (b_start, b_stop) in enumerate(spans):
                items, inputs = future.result()
                if i + 1 < len(spans):
                    future = pool.submit(self._load_batch, *spans[i + 1])
                rec.clear()
                mask = self._token_mask(inputs)
                rec.row_mask = mask if token_rows else None
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
        for name, info in plan.infos.items():
            cap = captured[name]
            if cap.kind == "conv":
                mean, mx = self._rounded(name, cap.mean, ids), self._rounded(name, cap.max, ids)
                rows.add(name, mean=mean, max=mx, argmax=cap.argmax)
            elif cap.kind == "dense":
                rows.add(name, value=self._rounded(name, cap.value, ids))
            else:
                rows.add(name, **self._sequence_rows(name, info, cap, row_mask, ids))
        if row_mask is not None:  # text inputs: always record the tokens
            rows.tokens.append(self._token_frame(inputs, row_mask, ids))
        if logits is not None:
            rows.outputs.append(self._outputs(logits, ids))
        if plan.source.modality == "image" and first_snapshot:
            rows.thumbs.append(np.stack([thumbnail(im, plan.opts.thumb_size) for im in items]))

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

    def _sequence_rows(self, name: str, info: LayerInfo, cap: Captured, row_mask: np.ndarray | None,
                       ids: np.ndarray) -> dict[str, np.ndarray]:
        value = cap.value
        mask = row_mask if row_mask is not None else np.ones(value.shape[:2], dtype=bool)
        pool = info.pooling
        if pool is None:
            b_idx, pos = np.nonzero(mask)
            rows = self._rounded(name, value if cap.selected else value[b_idx, pos], ids[b_idx])
            return {"value": rows, "row_input": ids[b_idx], "row_pos": pos.astype(np.int32)}
        if pool == "cls":
            pooled = value[:, 0]
        elif pool == "mean":
            w = mask[:, :, None].astype(np.float32)
            pooled = (value * w).sum(1) / np.maximum(w.sum(1), 1.0)
        else:
            pooled = np.where(mask[:, :, None], value, -np.inf).max(1)
            pooled[~mask.any(1)] = 0.0
        return {"value": self._rounded(name, pooled, ids)}

    def _rounded(self, name: str, x: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Round to the storage dtype once, so every downstream statistic (top-k, group
        sums) sees exactly the stored values; one finiteness pass catches NaN, Inf and
        float16 overflow together."""
        # torch converts and checks on all cores; numpy's astype and isfinite use one
        half = self.plan.store_dtype == np.float16
        t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float16 if half else torch.float32)
        r = t.numpy()
        # The sum is finite exactly when every value is (NaN and Inf propagate; the wider
        # accumulator cannot overflow on finite values), and it is one read of the block:
        # isfinite().all() writes a bool per value and cost 20x the conversion itself on
        # float16 (2.8 vs 0.13 ms on a 560 x 1536 block of MiniLM tokens, one thread).
        if not math.isfinite(float(t.sum(dtype=torch.float32 if half else torch.float64))):
            check_finite(name, x, ids)  # raises for NaN or Inf in the layer output itself
            raise NonFiniteError(f"layer {name!r} has activations beyond the float16 range (|x| > 65504); "
                                 "pass --dtype float32")
        return r

    def _outputs(self, logits: torch.Tensor, ids: np.ndarray) -> dict[str, np.ndarray]:
        """pred, its name, confidence, and (when the data's labels are the model's classes,
        models/classes.py) loss and correct; otherwise those two are NA.

        Plain arrays per batch; the sink builds one DataFrame (:meth:`Rows.outputs_frame`).
        """
        plan = self.plan
        labels_all = plan.labels
        logits = logits.float().cpu()
        conf, pred = logits.softmax(dim=1).max(dim=1)
        out = {schema.INPUT_ID: ids, schema.PRED: pred.numpy().astype(np.int64), schema.CONFIDENCE: conf.numpy()}
        n_outputs = int(logits.shape[1])
        if self._classes is None or len(self._classes[0]) != n_outputs:  # once per run
            match = labels_are_model_classes(plan.bundle.class_names, plan.source.class_names,
                                             plan.n_label_classes, n_outputs)
            names = prediction_names(plan.bundle.class_names, plan.source.class_names, match, n_outputs)
            self._classes = (np.array(names, dtype=object), match)
        names, match = self._classes
        out[schema.PRED_NAME] = names[out[schema.PRED]]
        if labels_all is not None and match:
            labels = labels_all[ids]
            known = labels >= 0
            loss = F.cross_entropy(logits, torch.from_numpy(np.maximum(labels, 0)), reduction="none").numpy()
            out[schema.LOSS] = np.where(known, loss, np.nan).astype(np.float32)
            out[schema.CORRECT] = np.where(known, (out[schema.PRED] == labels).astype(np.int8), -1)
        else:
            out[schema.LOSS] = np.full(len(ids), np.nan, dtype=np.float32)
            out[schema.CORRECT] = np.full(len(ids), -1, dtype=np.int8)
        return out


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
