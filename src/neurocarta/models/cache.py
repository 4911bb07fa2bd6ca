"""Where neurocarta caches what it makes once (the demo CNN's checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$NEUROCARTA_CACHE`` when set, else ``~/.cache/neurocarta``."""
    env = os.environ.get("NEUROCARTA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neurocarta"
