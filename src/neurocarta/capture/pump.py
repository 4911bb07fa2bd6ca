"""The one loop from the chunk runner to the sink, shared by a single-process run and a
distributed worker."""

from __future__ import annotations

from contextlib import closing
from typing import Callable, Sequence

from .rows import Rows
from .runner import ChunkRunner
from .sink import AtlasSink, Reductions


def pump(runner: ChunkRunner, sink: AtlasSink, s_index: int, snap: str, ranges: Sequence[tuple[int, int]],
         red: Reductions, *, flush_due: Callable[[], bool] | None = None,
         on_batch: Callable[[int], None] | None = None,
         on_flush: Callable[[int, int], None] | None = None) -> None:
    """Run the inputs of ``ranges`` and write them into ``sink``, updating ``red``.

    Each range is written whole when its last batch is done (ranges are storage chunks, or
    what is left of one), and earlier whenever ``flush_due()`` says so after a batch: that
    is how commits come every few seconds even when a chunk takes minutes. ``on_batch(n)``
    runs after every batch of ``n`` inputs (progress), ``on_flush(start, stop)`` after every
    write (the caller commits there).
    """
    ends = {stop for _, stop in ranges}
    pending: Rows | None = None
    with closing(runner.batches(ranges, first_snapshot=s_index == 0)) as batches:
        for batch in batches:
            pending = batch if pending is None else pending.extend(batch)
            if batch.stop in ends or (flush_due is not None and flush_due()):
                sink.write(s_index, snap, pending, red)
                if on_flush is not None:
                    on_flush(pending.start, pending.stop)
                pending = None
            if on_batch is not None:
                on_batch(batch.stop - batch.start)
