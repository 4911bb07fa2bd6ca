"""Parsing the spec strings users type: ``shapes:n=2000,seed=1``, ``text:corpus.txt``,
``py:my_pkg.models:build``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from .errors import SpecError


def split_spec(spec: str) -> tuple[str, str]:
    """``"kind:rest"`` -> ``("kind", "rest")``; a bare ``"kind"`` -> ``("kind", "")``."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError("an empty spec was given; see `neurocarta extract --help` for the forms")
    kind, _, rest = spec.strip().partition(":")
    return kind.strip(), rest.strip()


def parse_options(text: str) -> dict[str, Any]:
    """``"n=2000,seed=1,bias=0.9"`` -> ``{"n": 2000, "seed": 1, "bias": 0.9}``."""
    out: dict[str, Any] = {}
    if not text:
        return out
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise SpecError(f"cannot read option {part!r}: write options as key=value,key=value")
        out[key.strip()] = _coerce(value.strip())
    return out


def _coerce(value: str) -> Any:
    low = value.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def existing_path(text: str, what: str) -> Path:
    path = Path(text).expanduser()
    if not text:
        raise SpecError(f"{what} needs a path, e.g. '{what}:/data/my-set'")
    if not path.exists():
        raise SpecError(f"{what} path {text!r} does not exist; check the spelling or the working directory")
    return path


def import_callable(target: str, what: str) -> Any:
    """Import ``module:callable`` (the working directory is importable, as with ``python -m``)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SpecError(f"{what} must look like 'py:package.module:callable', got 'py:{target}'")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SpecError(f"cannot import module {module_name!r} for {what}: {e}") from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"module {module_name!r} has no attribute {attr!r} (for {what})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"{module_name}:{attr} is not callable (for {what})")
    return obj
