"""Trained weights from a file: ``--checkpoint FILE`` and the snapshot files of a training run.

A checkpoint is a state dict (``torch.save(model.state_dict(), path)``), also inside the
wrappers training loops write (``{"state_dict": ...}``, ``{"model": ...}``, with or without
a ``module.``/``model.`` prefix on every key), or, only with ``trust``, a whole pickled
module (unpickling runs code from the file, so it must be one the user made). Every
failure is one :class:`SpecError` line: which file, what is wrong, a few of the missing and
unexpected key names when the architecture does not match.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import SpecError

#: The keys training loops wrap a state dict in (PyTorch Lightning, timm's and many
#: scripts' ``{"model": ...}``); looked for in this order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
#: Prefixes one whole state dict may carry (DataParallel, a Lightning module's attribute,
#: torch.compile).
KEY_PREFIXES = ("module.", "model.", "_orig_mod.")
#: Key names a mismatch message shows per kind.
SHOWN_KEYS = 3
SAVE_HINT = "save it with torch.save(model.state_dict(), path)"


def read_checkpoint(path: Path, trust: bool = False, into: str = "the model",
                    what: str = "checkpoint") -> "Mapping[str, torch.Tensor] | torch.nn.Module":
    """The state dict in ``path`` (unwrapped), or with ``trust`` the pickled module it holds.

    ``into`` names the model and ``what`` the file (``checkpoint``, ``snapshot``, ``weights``)
    in the error messages, which all start ``cannot load {what} {path} into {into}``.
    """
    cannot = f"cannot load {what} {path} into {into}"
    if not path.is_file():
        raise SpecError(f"{cannot}: no such file; check the path (it is relative to the working directory)")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a file that is not torch's raises KeyError, EOFError, ...
        if not _holds_objects(e):
            raise SpecError(f"{cannot}: it is not a file torch.save wrote ({type(e).__name__}: "
                            f"{_first_line(e)}); {SAVE_HINT}") from e
        if not trust:
            raise SpecError(f"{cannot}: it holds pickled Python objects (a whole model?), not only tensors; "
                            "unpickling runs code from the file, so pass --trust (trust=True) if you made it "
                            f"yourself, or {SAVE_HINT}") from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - unpickling raises whatever the pickled code raises
            raise SpecError(f"{cannot}: unpickling failed ({type(e).__name__}: {_first_line(e)}); the "
                            "classes it was saved with must be importable here") from e
    return _unwrap(obj, cannot)


def _holds_objects(error: BaseException) -> bool:
    """Whether torch's safe loader refused the file for holding objects other than tensors
    (a pickled module), rather than for not being a torch file at all."""
    text = str(error)
    return isinstance(error, pickle.UnpicklingError) and "Unsupported global" in text


def _unwrap(obj: Any, cannot: str) -> "Mapping[str, torch.Tensor] | torch.nn.Module":
    for _ in range(3):  # {"state_dict": {"model": ...}} and the like
        if isinstance(obj, torch.nn.Module) or _is_state_dict(obj):
            return obj
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj), None)
        if inner is None:
            break
        obj = inner
    what = f"a dict with keys {', '.join(map(str, list(obj)[:5]))}" if isinstance(obj, Mapping) else \
        f"a {type(obj).__name__}"
    raise SpecError(f"{cannot}: it holds {what}, not a state dict (nor one under "
                    f"{'/'.join(WRAPPER_KEYS)}); {SAVE_HINT}")


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _strip_prefix(state: Mapping[str, torch.Tensor], expected: set[str]) -> Mapping[str, torch.Tensor]:
    """``state`` without a prefix every key carries (``module.`` ...) when that fits ``expected`` better."""
    for _ in range(2):  # "model.module." is two
        if set(state) <= expected:
            break
        prefix = next((p for p in KEY_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        stripped = {k[len(prefix):]: v for k, v in state.items()}
        if len(set(stripped) & expected) <= len(set(state) & expected):
            break
        state = stripped
    return state


def load_state_dict_checked(module: torch.nn.Module, state: Mapping[str, torch.Tensor], cannot: str) -> None:
    """Load ``state`` into ``module``, or raise one line (starting ``cannot``) naming a few
    missing, unexpected and wrongly shaped keys (torch's own message runs over many lines)."""
    own = module.state_dict()
    state = _strip_prefix(state, set(own))
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = [f"{label} {_some(keys)}" for label, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("other shapes", shapes)) if keys]
    if problems:
        raise SpecError(f"{cannot}: the keys do not fit ({'; '.join(problems)}); pass a state dict of this "
                        "architecture (the --model that was trained)")
    module.load_state_dict(state)


def _some(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(keys[:SHOWN_KEYS]) + more


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def load_state_dict_file(module: torch.nn.Module, path: Path, into: str = "the model",
                         what: str = "snapshot") -> None:
    """Load the state dict in ``path`` into ``module`` (a snapshot or weights file: never a
    pickled module, whatever ``trust`` says elsewhere)."""
    state = read_checkpoint(Path(path), trust=False, into=into, what=what)
    load_state_dict_checked(module, state, f"cannot load {what} {path} into {into}")


def apply_checkpoint(module: torch.nn.Module, path: "str | Path", trust: bool = False,
                     into: str = "the model") -> torch.nn.Module:
    """The model with the weights of checkpoint ``path``: ``module`` with the state dict
    loaded into it, or (``trust``) the pickled module the file holds instead."""
    path = Path(path).expanduser()
    loaded = read_checkpoint(path, trust=trust, into=into)
    if isinstance(loaded, torch.nn.Module):
        return loaded
    load_state_dict_checked(module, loaded, f"cannot load checkpoint {path} into {into}")
    return module
