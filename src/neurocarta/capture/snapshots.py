"""Training snapshots: several checkpoints of one architecture, captured over the same inputs."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from ..errors import UserError


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def resolve_snapshots(spec: str | list[str | Path] | None) -> list[tuple[str, Path | None]]:
    """``(name, path)`` pairs in natural order (epoch2 before epoch10).

    With no snapshots the model's current weights form one snapshot named ``final``.
    """
    if spec is None or spec == [] or spec == "":
        return [("final", None)]
    if isinstance(spec, (str, Path)):
        paths = [Path(p) for p in glob.glob(str(Path(spec).expanduser()))]
        if not paths:
            raise UserError(f"--snapshots {spec!r} matches no file; give a glob like 'ckpt/epoch*.pt'")
    else:
        paths = [Path(p) for p in spec]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise UserError(f"snapshot file(s) not found: {', '.join(missing[:3])}")
    paths = sorted(paths, key=_natural_key)
    names: list[str] = []
    for p in paths:
        name = p.stem
        if name in names:
            name = f"{p.parent.name}-{p.stem}"
        names.append(name)
    return list(zip(names, paths))
