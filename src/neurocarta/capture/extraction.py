"""The extraction entry point: run a model over a data source and stream activations into an atlas.

Three parts do the work, and :class:`Extraction` drives them:

- the plan (plan.py) loads the model and the data, probes the layers and writes the manifest;
- the chunk runner (runner.py) runs the model batch by batch with hooks on the chosen layers,
  while a background thread loads and preprocesses the next batch;
- the sink (sink.py) updates the streaming top-k and group sums and writes the rows, only
  through :class:`~neurocarta.store.writer.AtlasWriter`.

The inputs are cut into chunks of ``chunk_size`` (the storage chunk). Each chunk is written
whole and committed; a chunk that takes longer than ``commit_every`` seconds is written and
committed in parts, so a kill never loses more than that much work, and the progress bar
moves with every batch. Rerunning the same command resumes from the last commit. With
``workers`` or ``scheduler``, shards of chunks run on Dask workers instead (distributed.py).
Memory is bounded by the batch and chunk sizes, never by the data size.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..store.atlas import Atlas, open_atlas
from ..store.writer import AtlasWriter
from . import distributed
from .links import link_weights
from .plan import MODES, POOLINGS, ExtractionPlan, ExtractOptions, coalesce
from .pump import pump
from .runner import ChunkRunner
from .sink import AtlasSink, Reductions

__all__ = ["MODES", "POOLINGS", "ExtractOptions", "Extraction", "extract"]


def extract(model: Any, data: Any, out: str | Path, layers: list[str] | None = None,
            **options: Any) -> Atlas:
    """Capture the activations of ``layers`` of ``model`` over ``data`` into the atlas ``out``.

    Parameters
    ----------
    model : a model spec (``"demo-cnn"``, ``"efficientnet-lite0"``, ``"minilm"``,
        ``"py:pkg.mod:fn"``...), a :class:`~neurocarta.models.ModelBundle` or an ``nn.Module``.
    data : a data spec (``"shapes"``, ``"text:corpus.txt"``...) or a DataSource.
    out : the atlas folder or an fsspec URL (``memory://``, ``s3://``, ``gs://``). An
        unfinished atlas there with the same settings is resumed.
    layers : module names or globs (``*`` stays inside one name part, ``**`` crosses dots);
        default: the model's own default layers.
    **options : see :class:`ExtractOptions`: ``batch_size``, ``device``, ``limit``, ``topk``,
        ``mode`` (``"full"`` or ``"summary"``), ``snapshots`` (glob or list of state-dict
        files), ``seed``, ``chunk_size``, ``dtype``, ``pool`` (sequence layers: ``mean``,
        ``max``, ``cls``), ``special_tokens``, ``group_by``, ``sample_size``,
        ``max_layer_bytes``, ``thumb_size``, ``overwrite``, ``trust``, ``progress``,
        ``commit_every`` (seconds of work between commits, default 30), ``inputs`` (a
        ``.csv``/``.parquet`` metadata table or a DataFrame joined on ``path`` or
        ``input_id``, data/metadata.py), ``columns`` (declared column roles, e.g.
        ``{"flipped": "bookkeeping"}``: store/schema.py);
        scale-out (docs/scale.md): ``workers`` (a local Dask cluster of that many processes),
        ``scheduler`` (an address or a ``distributed.Client``), ``shard_size`` (inputs per task).

    Returns
    -------
    The complete :class:`~neurocarta.store.atlas.Atlas`.
    """
    opts = ExtractOptions(layers=layers, **options)
    opts.check()
    return Extraction(model, data, out, opts).run()


class Extraction:
    """One extraction run; see the module docstring for the flow."""

    def __init__(self, model: Any, data: Any, out: "str | Path", opts: ExtractOptions):
        self.opts = opts
        self.plan = ExtractionPlan(model, data, out, opts)
        self.out = self.plan.out

    def run(self) -> Atlas:
        # A cluster starts first, and its workers import torch and neurocarta while this
        # process probes the model and prepares the atlas (capture/distributed.py).
        with distributed.cluster(self.opts) as client:
            # held for the run: Dask cancels the tasks of futures nobody holds
            warming = distributed.warm_up(client) if client is not None else []
            atlas = self._run(client)
            del warming
            return atlas

    def _run(self, client: Any) -> Atlas:
        plan = self.plan
        plan.probe()
        if self.opts.distributed:
            distributed.check_supported(plan)
        writer = AtlasWriter.open(self.out, plan.manifest(), plan.table, overwrite=self.opts.overwrite)
        if writer.complete:
            print(f"{self.out} is already complete; nothing to do (pass --overwrite to redo it)", file=sys.stderr)
            return self._finished()
        sink = AtlasSink(plan, writer)
        runner = ChunkRunner(plan)
        dispatcher = distributed.ShardDispatcher(client, plan, sink) if client is not None else None
        progress = writer.progress
        start_snap = int(progress.get("snapshot", 0))
        bar = tqdm(total=plan.n * len(plan.snapshots), initial=start_snap * plan.n + int(progress.get("n_done", 0)),
                   unit="input", unit_scale=True, disable=not self.opts.progress, dynamic_ncols=True,
                   desc="extract")
        token_rows = 0
        try:
            for s_index in range(start_snap, len(plan.snapshots)):
                name, path = plan.snapshots[s_index]
                if path is not None:
                    plan.load_snapshot(path)
                writer.write_links(name, link_weights(plan.module, plan.link_modules))
                bar.set_postfix_str(f"snapshot {name}")
                red = self._run_snapshot(s_index, writer, sink, runner, dispatcher, bar)
                token_rows = red.token_rows
        finally:
            bar.close()
        writer.finish({i.name: (token_rows if i.rows == "token" else plan.n) for i in plan.infos.values()})
        return self._finished()

    def _finished(self) -> Atlas:
        """The complete atlas, with the column roles declared for this run (``columns``) added
        to its manifest: a rerun with other declarations updates them."""
        atlas = open_atlas(self.out)
        if self.opts.columns:
            atlas.declare_columns(self.opts.columns)
        return atlas

    def _run_snapshot(self, s_index: int, writer: AtlasWriter, sink: AtlasSink, runner: ChunkRunner,
                      dispatcher: "distributed.ShardDispatcher | None", bar: tqdm) -> Reductions:
        """Run what is left of snapshot ``s_index``, committing as it goes, and write its summaries."""
        plan = self.plan
        snap = plan.snapshots[s_index][0]
        red, done = self._resume_point(writer, s_index)
        sink.prepare(snap, red)
        todo = plan.ranges_to_do(done)

        def commit(start: int, stop: int) -> None:
            nonlocal done, last_commit
            done = coalesce(done + [[start, stop]])
            writer.commit(s_index, sum(hi - lo for lo, hi in done), red.state(), shards=done)
            last_commit = time.monotonic()

        last_commit = time.monotonic()
        if dispatcher is not None:
            for (a, b), result in dispatcher.run(s_index, todo):
                dispatcher.merge(result, red)
                commit(a, b)
                bar.update(b - a)
        else:
            every = self.opts.commit_every
            pump(runner, sink, s_index, snap, todo, red, on_batch=bar.update, on_flush=commit,
                 flush_due=lambda: time.monotonic() - last_commit >= every)
        sink.write_summaries(snap, red)
        if s_index + 1 < len(plan.snapshots):
            writer.commit(s_index + 1, 0, Reductions().state())
        return red

    def _resume_point(self, writer: AtlasWriter, s_index: int) -> tuple[Reductions, list[list[int]]]:
        """The committed reductions of snapshot ``s_index`` and the input ranges done."""
        progress = writer.progress
        if int(progress.get("snapshot", 0)) != s_index or not int(progress.get("n_done", 0)):
            return Reductions(), []
        red = Reductions.from_state(self.opts.topk, writer.load_state())
        done = progress.get("shards") or [[0, int(progress["n_done"])]]
        return red, [list(map(int, r)) for r in done]
