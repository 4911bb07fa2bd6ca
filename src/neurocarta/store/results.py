"""Method results stored inside an atlas: ``maps/<kind>/<name>/`` (private to the store).

A result is a few Parquet tables plus ``meta.json``. It is written to a temporary folder
and swapped in with renames, so a crash never leaves half a result, and rewriting a result
replaces it whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import AtlasError
from .atomic import replaced
from .layout import MAPS, node


def folder(root: Path, kind: str, name: str) -> Path:
    return Path(root) / MAPS / node(kind) / node(name)


def save(root: Path, kind: str, name: str, tables: dict[str, pd.DataFrame], meta: dict) -> Path:
    final = folder(root, kind, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    with replaced(final) as tmp:
        tmp.mkdir()
        for key, table in tables.items():
            table.to_parquet(tmp / f"{key}.parquet", index=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=_jsonable))
    return final


def load(root: Path, kind: str, name: str) -> tuple[dict[str, pd.DataFrame], dict]:
    path = folder(root, kind, name)
    if not (path / "meta.json").exists():
        have = names(root, kind)
        raise AtlasError(f"the atlas has no {kind} result {name!r}; "
                         + (f"it has: {', '.join(have)}" if have else f"run `neurocarta {kind}` first"))
    meta = json.loads((path / "meta.json").read_text())
    tables = {p.stem: pd.read_parquet(p) for p in sorted(path.glob("*.parquet"))}
    return tables, meta


def names(root: Path, kind: str) -> list[str]:
    base = Path(root) / MAPS / node(kind)
    if not base.exists():
        return []
    from urllib.parse import unquote

    return sorted(unquote(p.name) for p in base.iterdir() if (p / "meta.json").exists() and not p.name.startswith("."))


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
