"""Finding layers by name or glob, and describing what they output.

Layer names are the names ``model.named_modules()`` prints (``features.block1``,
``encoder.layer.0.intermediate``), so a user can type what the model shows. A pattern may
use globs (``features.*``: ``*`` stays inside one dotted part, ``**`` crosses them) and may end in ``[i]`` or ``[key]`` to pick one element of
a layer that returns a tuple, list, dict or model-output object.

A module that runs several times in one forward pass (one activation module applied after
every conv) has one output per call: ``act#1`` names its second call (counted from 0), and
``act#1[0]`` an element of it. A bare ``act`` records the last call (extraction warns).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import LayerError

_ELEMENT = re.compile(r"^(?P<name>.*?)\[(?P<key>[^\[\]]+)\]$")
_CALL = re.compile(r"^(?P<name>.+)#(?P<call>[^#]*)$")


@dataclass(frozen=True)
class LayerRef:
    """A resolved layer: the module's name and, optionally, which call of the module
    (``call``, for modules run more than once per forward pass) and which element of its output."""

    module_name: str
    element: int | str | None = None
    call: int | None = None

    @property
    def name(self) -> str:
        name = self.module_name if self.call is None else f"{self.module_name}#{self.call}"
        return name if self.element is None else f"{name}[{self.element}]"


def module_names(model: torch.nn.Module) -> list[str]:
    """Every hookable module name in definition order (the root module has no name)."""
    return [n for n, _ in model.named_modules() if n]


def glob_regex(pattern: str) -> re.Pattern:
    """``*`` matches within one dotted name part, ``**`` across parts, ``?`` one character.

    So ``features.*`` is the direct children of ``features`` and
    ``encoder.layer.*.intermediate`` is exactly each layer's intermediate module.
    """
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^.]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _split_element(pattern: str) -> tuple[str, int | str | None]:
    m = _ELEMENT.match(pattern)
    if not m:
        return pattern, None
    key = m.group("key").strip().strip("'\"")
    return m.group("name"), int(key) if key.lstrip("-").isdigit() else key


def _split_call(pattern: str, base: str) -> tuple[str, int | None]:
    """``"act#2"`` -> ``("act", 2)``; a name without ``#`` has no call index."""
    m = _CALL.match(base)
    if not m:
        return base, None
    if not m.group("call").isdigit():
        raise LayerError(f"cannot read the call index in {pattern!r}: write the module name, '#' and a "
                         "number counted from 0, e.g. 'act#1' for its second call")
    return m.group("name"), int(m.group("call"))


def resolve_layers(model: torch.nn.Module, patterns: list[str]) -> list[LayerRef]:
    """Resolve names and globs to layers, in model order, without duplicates.

    Raises :class:`LayerError` naming the closest matches when a pattern matches nothing.
    A call index (``act#1``) is checked when the model runs (see ``hooks.LayerHooks``).
    """
    names = module_names(model)
    chosen: dict[str, LayerRef] = {}
    for pattern in patterns:
        base, element = _split_element(pattern)
        base, call = _split_call(pattern, base)
        if any(ch in base for ch in "*?"):
            rx = glob_regex(base)
            hits = [n for n in names if rx.fullmatch(n)]
        else:
            hits = [base] if base in names else []
        if not hits:
            close = difflib.get_close_matches(base, names, n=5, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise LayerError(
                f"no layer matches {pattern!r}{hint}. "
                f"Run `neurocarta layers --model ...` to list the layer names"
            )
        for h in hits:
            ref = LayerRef(h, element, call)
            chosen.setdefault(ref.name, ref)
    order = {n: i for i, n in enumerate(names)}
    return sorted(chosen.values(), key=lambda r: (order[r.module_name], -1 if r.call is None else r.call,
                                                 str(r.element)))


def pick_element(output: Any, ref: LayerRef) -> Any:
    """Apply ``ref.element`` to a module output, with an error that says what exists."""
    if ref.element is None:
        return output
    key = ref.element
    try:
        if isinstance(output, dict) or hasattr(output, "keys"):
            if isinstance(key, int):
                return list(output.values())[key]
            return output[key]
        if isinstance(output, (tuple, list)):
            if isinstance(key, str):
                raise KeyError(key)
            return output[key]
    except (KeyError, IndexError):
        pass
    raise LayerError(f"layer {ref.module_name!r} output has no element [{key}]: {describe_output(output)}")


def describe_output(output: Any) -> str:
    """A short human description of a module output: its type and tensor shapes."""
    if isinstance(output, torch.Tensor):
        return f"tensor {tuple(output.shape)}"
    if isinstance(output, dict) or hasattr(output, "keys"):
        parts = [f"{k!r}: {describe_output(v)}" for k, v in output.items()]
        return "{" + ", ".join(parts) + "}"
    if isinstance(output, (tuple, list)):
        kind = type(output).__name__
        return f"{kind} of {len(output)}: (" + ", ".join(describe_output(v) for v in output) + ")"
    return type(output).__name__


def output_kind(tensor: Any, ref: LayerRef) -> str:
    """Classify a layer output: ``conv`` (N,C,H,W), ``dense`` (N,C) or ``sequence`` (N,T,C).

    Anything that is not a 2-, 3- or 4-D tensor gets an error saying how to pick one.
    """
    if not isinstance(tensor, torch.Tensor):
        if isinstance(tensor, (tuple, list)) or hasattr(tensor, "keys"):
            example = "[0]" if isinstance(tensor, (tuple, list)) else "[<key>]"
            raise LayerError(
                f"layer {ref.name!r} returns {describe_output(tensor)}; pick one element "
                f"with a pattern like '{ref.module_name}{example}'"
            )
        raise LayerError(f"layer {ref.name!r} returns {type(tensor).__name__}, not a tensor")
    if tensor.ndim == 4:
        return "conv"
    if tensor.ndim in (1, 2):  # (N,) is one scalar per input: a dense layer of one neuron
        return "dense"
    if tensor.ndim == 3:
        return "sequence"
    raise LayerError(
        f"layer {ref.name!r} outputs a {tensor.ndim}-D tensor {tuple(tensor.shape)}; "
        "neurocarta captures (N,C), (N,T,C) and (N,C,H,W) outputs. Pick a layer after a reshape"
    )
