"""Parsing the spec strings users type: ``shapes:n=2000,seed=1``, ``text:corpus.txt``,
``py:my_pkg.models:build``, ``py:nets/mynet.py:build``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
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
    """The callable ``target`` names: ``module:callable`` (a module importable from the working
    directory or the Python path, as with ``python -m``) or ``path/to/file.py:callable`` (a
    file, relative to the working directory; its folder becomes importable too, as for a
    script). ``callable`` may be dotted (``Class.build``). A wrong form gets one line with
    the right one."""
    where, colon, attr = target.rpartition(":") if ":" in target else (target, "", "")
    if not colon or not where or not attr or attr.endswith(".py"):
        raise SpecError(f"{what} 'py:{target}' names no callable: write py:{_module_form(target)}:NAME "
                        f"(a module) or py:{_file_form(target)}:NAME (a file), NAME being the function that "
                        "builds it")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _import_file(where, attr, what)
    else:
        module = _import_module(where, attr, what)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                            and getattr(v, "__module__", None) == module.__name__)
            hint = f"; it defines {', '.join(public[:8])}" if public else ""
            raise SpecError(f"{where} has no {attr!r} (for {what}){hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"{where}:{attr} is not callable (for {what})")
    return obj


def _module_form(text: str) -> str:
    """``nets/mynet.py`` -> ``nets.mynet``: how a file is named as a module."""
    text = text.split(":")[0]
    return text[:-3].replace("/", ".").replace("\\", ".") if text.endswith(".py") else text


def _file_form(text: str) -> str:
    text = text.split(":")[0]
    return text if text.endswith(".py") else text.replace(".", "/") + ".py"


def _import_module(name: str, attr: str, what: str) -> Any:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.split(".")[0] != e.name.split(".")[0]:  # the module is there; its own import failed
            raise SpecError(f"module {name!r} (for {what}) imports {e.name!r}, which is not installed") from e
        raise SpecError(f"cannot import module {name!r} for {what}: there is no such module; modules resolve "
                        f"from the working directory ({Path.cwd()}) and the Python path, or give a file as "
                        f"py:path/to/file.py:{attr}") from e
    except ImportError as e:
        raise SpecError(f"cannot import module {name!r} for {what}: {e}") from e


def _import_file(where: str, attr: str, what: str) -> Any:
    path = Path(where).expanduser()
    if not path.suffix:
        path = path.with_suffix(".py")
    if not path.is_file():
        module = _module_form(where)
        hint = (f"; for the installed module write py:{module}:{attr}" if _importable(module) else
                " (paths are relative to the working directory)")
        raise SpecError(f"file {str(path)!r} for {what} does not exist in {Path.cwd()}{hint}")
    path = path.resolve()
    # the same name in every process (distributed workers load the file again)
    name = f"_neurocarta_py_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if name in sys.modules:  # loaded once per process: a second spec gets the same classes
        return sys.modules[name]
    if str(path.parent) not in sys.path:  # its own imports of sibling files work, as for a script
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot load {path} as Python for {what}; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise SpecError(f"running {path} for {what} failed: {type(e).__name__}: {e}") from e
    return module


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
