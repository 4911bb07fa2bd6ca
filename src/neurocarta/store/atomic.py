"""Replacing a folder in one step: what is written beside its final place is swapped in by
renames, so a reader sees the old folder or the new one, never half of one, and a crash
mid-write leaves the old one in place."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replaced(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``final``; when the block ends cleanly, it takes
    ``final``'s place (an existing ``final`` is removed after the swap). On an error the
    temporary path is removed and ``final`` is untouched."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
