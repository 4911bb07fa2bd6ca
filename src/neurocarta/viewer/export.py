"""``neurocarta export ATLAS --html OUT``: the viewer as ONE self-contained HTML file that
opens from ``file://`` offline.

The built ``index.html`` gets its scripts, styles and small assets inlined, plus

    <script>window.__NC_STATIC__ = {PATH: PAYLOAD, ...}</script>

holding the payload of every GET the front end would make, keyed by the path it would fetch
(names unencoded, query as the front end writes it; see :func:`static_payloads` for the exact
keys). JSON endpoints hold their JSON; images hold ``data:`` URLs; Arrow endpoints are
exported in their ``format=json`` form. The front end reads ``window.__NC_STATIC__[path]``
when it exists instead of fetching.

Text exemplars (``/api/exemplars/...``) and per-token activations (``/api/tokens/...``) are
not exported: a token layer's exemplars repeat each sentence for every neuron (megabytes per
layer) and per-token values exist per input and per neuron or cluster; the offline viewer shows
no sentences for a text layer (everything else works).

Above a size cap the export refuses, naming the cap and ``--sample N`` (a seeded subset of
inputs for the input table, thumbnails and per-input maps).
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import UserError
from .data import FindingsFailed, NotFound, ViewerData, png_bytes, records, tile
from .routes import path as route_path

if TYPE_CHECKING:
    from ..store import Atlas

#: Inputs per exported page of the input table (the front end asks for these pages).
PAGE = 1000
#: Per-input topographic maps are exported when at most this many inputs are.
MAX_INPUT_MAPS = 2000


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _data_url(body: bytes, media: str) -> str:
    return f"data:{media};base64,{base64.b64encode(body).decode('ascii')}"


def static_payloads(data: ViewerData, ids: np.ndarray, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every payload the front end may fetch, keyed by path (the paths of ``routes.json``).

    Keys (``<...>`` are names from the manifest, written unencoded):

    - ``/api/manifest`` (with ``"export": {"sample": N or null, "inputs": [ids], "errors": {}}``
      added), ``/api/findings``, ``/api/topomap``
    - ``/api/inputs?offset=<o>&limit=1000&format=json`` for o = 0, 1000, ... over the exported inputs
    - ``/api/thumbnail/<input_id>.png`` (a ``data:image/jpeg`` URL) for the exported inputs
    - ``/api/topomap/<name>`` and, when at most 2,000 inputs are exported,
      ``/api/topomap/<name>/input/<input_id>`` (last snapshot; layers with one row per input)
    - ``/api/mapper/<layer>``, ``/api/mapper/<layer>/members?format=json``,
      ``/api/mapper/<layer>/flow/<next layer>`` (consecutive stored layers, atlas order)
    - ``/api/input-projection`` and ``/api/input-projection/<layer>`` (every projected point;
      a lasso's map against the rest is computed by the server only)
    - ``/api/concepts/<snapshot>``, ``/api/concepts/<snapshot>/nearest/<neuron>?k=10``
    - ``/api/patches/<snapshot>/<layer>/<neuron>.png`` (data: URL) where patches are stored
    - ``/api/featvis/<snapshot>/<layer>`` and ``/api/featvis/<snapshot>/<layer>/<kind>/<target>.png``
      (data: URL; image ``k > 0`` of a target under ``...png?i=k``) where visualizations are stored
    - ``/api/attributions/<snapshot>/<input_id>`` and, for image items,
      ``/api/attributions/<snapshot>/<input_id>/<index>.png`` (data: URL): the stored
      attributions of the exported inputs (the manifest lists only those)

    An endpoint the server would answer with an error (today: findings whose rule fails) is
    left out, and ``manifest["export"]["errors"]`` maps its path to the server's message, so
    the offline viewer shows the same error state as the served one.
    """
    say = progress or (lambda message: None)
    atlas = data.atlas
    out: dict[str, Any] = {}
    manifest = data.manifest()
    errors: dict[str, str] = {}
    manifest["export"] = {"sample": None if len(ids) == atlas.n_inputs else int(len(ids)),
                          "inputs": [int(i) for i in ids], "errors": errors}
    exported = {str(int(i)) for i in ids}  # attributions of exported inputs only
    manifest["attributions"] = {snap: [i for i in have if i in exported]
                                for snap, have in manifest.get("attributions", {}).items()}
    manifest["attributions"] = {snap: have for snap, have in manifest["attributions"].items() if have}
    out[route_path("manifest")] = manifest
    try:
        out[route_path("findings")] = data.findings()
    except FindingsFailed as e:
        errors[route_path("findings")] = str(e)
    names = data.topomap_names()
    out[route_path("topomaps")] = names
    table = data.input_frame().iloc[ids].reset_index(drop=True)
    for start in range(0, max(len(table), 1), PAGE):
        out[f"{route_path('inputs')}?offset={start}&limit={PAGE}&format=json"] = records(table.iloc[start:start + PAGE])
    if atlas.has_thumbnails:
        say(f"{len(ids)} thumbnails")
        for i in ids:  # JPEG: a third of PNG's size on textured thumbnails, so the demo fits the cap
            out[route_path("thumbnail", input_id=int(i))] = _data_url(jpeg_bytes(data.thumbnail(int(i))), "image/jpeg")
    say(f"{len(names)} topographic maps")
    per_input = len(ids) <= MAX_INPUT_MAPS and atlas.mode == "full"
    for name in names:
        out[route_path("topomap", name=name)] = data.topomap(name)
        if per_input:
            out.update(_input_maps(data, name, ids))
    stored = [l for l in atlas.layer_names if l in set(atlas.maps("mapper"))]
    say(f"{len(stored)} Mapper graphs")
    for layer in stored:
        out[route_path("mapper", layer=layer)] = data.mapper(layer)
        out[f"{route_path('mapper_members', layer=layer)}?format=json"] = data.mapper_members_json(layer)
    for a, b in zip(stored, stored[1:]):
        out[route_path("mapper_flow", layer=a, next_layer=b)] = data.mapper_flow(a, b)
    projected = data.projection_layers()
    out[route_path("input_projections")] = projected
    say(f"{len(projected)} input projections")
    for layer in projected:  # every point, even with --sample: the inputs left out are drawn grey
        out[route_path("input_projection", layer=layer)] = data.input_projection(layer)
    for snap in atlas.maps("concepts"):
        say(f"concept atlas {snap}")
        out[route_path("concepts", snapshot=snap)] = data.concepts(snap)
        for neuron in range(len(data.concept_result(snap).neurons)):
            try:
                out[f"{route_path('concepts_nearest', snapshot=snap, neuron=neuron)}?k=10"] = \
                    data.concepts_nearest(snap, neuron, 10)
            except NotFound:
                pass
    for snap, layers in manifest.get("patches", {}).items():
        for layer in layers:
            say(f"exemplar patches {layer} {snap}")
            p = data._patches(snap, layer)
            for neuron in range(p.shape[0]):
                out[route_path("patches", snapshot=snap, layer=layer, neuron=neuron)] = \
                    _data_url(png_bytes(tile(p[neuron])), "image/png")
    for snap, layers in manifest.get("featvis", {}).items():
        for layer in layers:
            say(f"feature visualizations {layer} {snap}")
            payload = out[route_path("featvis", snapshot=snap, layer=layer)] = data.featvis(snap, layer)
            for t in payload["targets"]:
                image = route_path("featvis_image", snapshot=snap, layer=layer, kind=t["kind"], target=t["target"])
                for k in range(t["images"]):
                    out[image if k == 0 else f"{image}?i={k}"] = \
                        _data_url(data.featvis_png(snap, layer, t["kind"], t["target"], k), "image/png")
    for snap, inputs in manifest["attributions"].items():
        say(f"attributions of {len(inputs)} inputs {snap}")
        for i in inputs:
            payload = data.attributions(snap, int(i))
            out[route_path("attributions", snapshot=snap, input_id=i)] = payload
            for item in payload["items"]:
                if item["kind"] == "image":
                    out[route_path("attribution_image", snapshot=snap, input_id=i, index=item["index"])] = \
                        _data_url(data.attribution_png(snap, int(i), item["index"]), "image/png")
    return out


def _input_maps(data: ViewerData, name: str, ids: np.ndarray) -> dict[str, Any]:
    """Per-input z-scored maps of one topomap, for many inputs at once (one read). Token
    layers are left out: their per-input maps would repeat the layer's width for every input
    of a text atlas, for a view the offline viewer does not need to open a sentence."""
    r = data.topomap_result(name)
    if data.atlas.manifest.layer(r.layer).rows == "token":
        return {}
    maps = data.topomap_inputs(name, ids, data.atlas.snapshots[-1])
    return {route_path("topomap_input", name=name, input_id=i): payload for i, payload in maps.items()}


# ------------------------------------------------------------------------- inlining


def _local(static_root: Path, ref: str) -> Path | None:
    """The file of ``static_root`` an href/src points to, or None (external, data:, missing)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^//|^#", ref, re.I):
        return None
    clean = ref.split("?", 1)[0].split("#", 1)[0].lstrip("./").lstrip("/")
    target = (static_root / clean).resolve()
    if not target.is_relative_to(static_root) or not target.is_file():
        return None
    return target


def _media(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _inline_css(css: str, static_root: Path, base: Path) -> str:
    def url(m: re.Match) -> str:
        ref = m.group(2)
        target = _local(static_root, ref) if ref.startswith("/") else None
        if target is None and not re.match(r"^[a-z]+:", ref, re.I):
            cand = (base / ref.split("?", 1)[0].split("#", 1)[0]).resolve()
            target = cand if cand.is_relative_to(static_root) and cand.is_file() else None
        if target is None:
            return m.group(0)
        return f"url({_data_url(target.read_bytes(), _media(target))})"

    return re.sub(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""", url, css)


def _script_text(js: str) -> str:
    # "</script" would end the inline element early; "<\/script" means the same to JS.
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.I)


def inline_assets(html: str, static_root: Path) -> str:
    """``index.html`` with its local scripts, stylesheets and icons inlined."""
    static_root = static_root.resolve()

    def script(m: re.Match) -> str:
        attrs = m.group(1)
        src = re.search(r"""\ssrc\s*=\s*(['"])(.*?)\1""", attrs)
        if not src:
            return m.group(0)
        target = _local(static_root, src.group(2))
        if target is None:
            return m.group(0)
        rest = re.sub(r"""\s(src|crossorigin)(\s*=\s*(['"]).*?\3)?""", "", attrs)
        return f"<script{rest}>{_script_text(target.read_text(encoding='utf-8'))}</script>"

    def link(m: re.Match) -> str:
        tag = m.group(0)
        rel = re.search(r"""\srel\s*=\s*(['"])(.*?)\1""", tag)
        href = re.search(r"""\shref\s*=\s*(['"])(.*?)\1""", tag)
        if not rel or not href:
            return tag
        target = _local(static_root, href.group(2))
        if target is None:
            return tag
        kind = rel.group(2).lower()
        if "modulepreload" in kind or "preload" in kind.split():
            return ""  # its module is inlined where it is imported
        if "stylesheet" in kind:
            css = _inline_css(target.read_text(encoding="utf-8"), static_root, target.parent)
            css = re.sub(r"</(style)", r"<\\/\1", css, flags=re.I)
            return f"<style>{css}</style>"
        return tag.replace(href.group(0), f' href="{_data_url(target.read_bytes(), _media(target))}"')

    html = re.sub(r"<script\b([^>]*)>\s*</script>", script, html, flags=re.I | re.S)
    html = re.sub(r"<link\b[^>]*>", link, html, flags=re.I | re.S)

    def img(m: re.Match) -> str:
        target = _local(static_root, m.group(3))
        return m.group(0) if target is None else f'{m.group(1)}="{_data_url(target.read_bytes(), _media(target))}"'

    return re.sub(r"""(<img\b[^>]*?\ssrc)\s*=\s*(['"])(.*?)\2""", img, html, flags=re.I | re.S)


def export_html(atlas: Atlas | str | Path, out: str | Path, static_dir: str | Path | None = None, max_mb: float = 50.0,
                sample: int | None = None, seed: int = 0, progress: bool = False) -> Path:
    """Write the viewer of ``atlas`` (a path or an opened Atlas) as one offline HTML file.

    Parameters
    ----------
    out : the HTML file to write (replaced atomically).
    static_dir : the built front end (default: the package's ``viewer/static``).
    max_mb : refuse when the file would be larger than this many megabytes.
    sample : export a seeded random subset of this many inputs (input table, thumbnails and
        per-input maps); the maps themselves always cover every input.
    """
    import sys

    from ..store import Atlas, open_atlas
    from .app import STATIC

    static_root = Path(static_dir or STATIC).resolve()
    index = static_root / "index.html"
    if not index.is_file():
        raise UserError(f"the viewer's web assets are not built (no {index}); build them with `make web`, then export")
    atlas = atlas if isinstance(atlas, Atlas) else open_atlas(atlas)
    if sample is not None and sample < 1:
        raise UserError(f"--sample must be at least 1, got {sample}")
    n = atlas.n_inputs
    if sample is not None and sample < n:
        ids = np.sort(np.random.default_rng(seed).choice(n, size=int(sample), replace=False))
    else:
        ids = np.arange(n)
    say = (lambda m: print(f"neurocarta: export: {m}", file=sys.stderr)) if progress else None
    payload = static_payloads(ViewerData(atlas), ids, say)
    for path, message in payload[route_path("manifest")]["export"]["errors"].items():
        print(f"neurocarta: export: warning: {path} is left out: {message}", file=sys.stderr)
    blob = json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    blob = blob.replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    data_script = f"<script>window.__NC_STATIC__={blob};</script>"
    html = inline_assets(index.read_text(encoding="utf-8"), static_root)
    head = re.search(r"<head\b[^>]*>", html, flags=re.I)
    html = (html[:head.end()] + data_script + html[head.end():]) if head else data_script + html
    body = html.encode("utf-8")
    size_mb = len(body) / 1e6
    if size_mb > max_mb:
        hint = max(1, int(len(ids) * max_mb / size_mb * 0.8))
        raise UserError(f"the export would be {size_mb:.1f} MB, above the {max_mb:g} MB cap (--max-mb); "
                        f"export a seeded subset of inputs with --sample N (e.g. --sample {hint}) or raise --max-mb")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_bytes(body)
    os.replace(tmp, out)
    return out
