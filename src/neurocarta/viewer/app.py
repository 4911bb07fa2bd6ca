"""The viewer's server: a read-only FastAPI app over one atlas, plus ``serve`` for the CLI.

Everything under ``/api`` is computed by :class:`~neurocarta.viewer.data.ViewerData` and
cached in memory as encoded bytes with an ETag, so a repeated request costs a dictionary
look-up (and a 304 when the browser already has it). Anything else is a file of the built
front end (``viewer/static/``), resolved and checked to stay inside that folder.

Security: GET and HEAD only (anything else is a 405 before routing); names in API paths are
looked up in the atlas's own lists, never joined into file paths; the server binds to
127.0.0.1 unless told otherwise, and beyond the loopback requires a token (``auth.py``); no docs
pages (they would load scripts from a CDN).
"""

from __future__ import annotations

import asyncio
import errno
import mimetypes
import socket
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import UserError
from ..store.status import read_map_status, status_version
from .auth import TokenGuard, choose_access, url_with_token
from .data import BadRequest, FindingsFailed, NotFound, ViewerData, encode_json, etag_of, parse_int
from .routes import template

if TYPE_CHECKING:
    from ..store import Atlas

STATIC = Path(__file__).resolve().parent / "static"
ARROW = "application/vnd.apache.arrow.stream"
JSON = "application/json"
IMAGE_CACHE = "public, max-age=86400"
CACHE_BYTES = 512 * 2**20  # encoded responses kept in memory
REVALIDATE = "no-cache"  # JSON: the browser keeps it and revalidates by ETag (cheap 304s)

NOT_BUILT = """<!doctype html><html><head><meta charset="utf-8"><title>neurocarta</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>neurocarta</h1>
<p>The server is running, but the viewer's web assets are not built into this installation.</p>
<p>Build them from a source checkout with <code>make web</code> (needs Node.js), then restart
<code>neurocarta serve</code>. The API answers meanwhile: <a href="/api/manifest">/api/manifest</a>.</p>
</body></html>"""

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("image/svg+xml", ".svg")
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("font/woff2", ".woff2")


class _LRU:
    """A thread-safe mapping key -> (body, etag), bounded by the bytes of its bodies."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._d.get(key)
            if hit is not None:
                self._d.move_to_end(key)
            return hit

    def put(self, key, value) -> None:
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self.bytes -= len(old[0])
            self._d[key] = value
            self.bytes += len(value[0])
            while self.bytes > self.max_bytes and len(self._d) > 1:
                self.bytes -= len(self._d.popitem(last=False)[1][0])


class ReadOnly:
    """ASGI middleware: only GET and HEAD reach the app; anything else is a 405."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            response = JSONResponse({"error": f"method {scope['method']} is not allowed: the viewer is read-only "
                                              "(GET and HEAD only)"}, status_code=405, headers={"Allow": "GET, HEAD"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())[:500]}, status_code=status)


def _send(request: Request, body: bytes, etag: str, media_type: str, cache_control: str,
          headers: dict | None = None) -> Response:
    base = {"ETag": etag, "Cache-Control": cache_control, **(headers or {})}
    match = request.headers.get("if-none-match")
    if match and (match.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in match.split(",")]):
        return Response(status_code=304, headers=base)
    return Response(body, media_type=media_type, headers=base)


def create_app(atlas_path: Atlas | str | Path, static_dir: str | Path | None = None,
               token: str | None = None, compare: Atlas | str | Path | None = None) -> FastAPI:
    """The read-only viewer app over the atlas at ``atlas_path`` (an opened Atlas also works).

    ``compare``: a second atlas for the comparison page (``serve A --compare B``).

    ``static_dir``: the built front end (default: the package's ``viewer/static``).
    ``token``: when given, every request must carry it (see ``viewer/auth.py``).
    """
    from ..store import Atlas, open_atlas

    atlas = atlas_path if isinstance(atlas_path, Atlas) else open_atlas(atlas_path)
    other = compare if compare is None or isinstance(compare, Atlas) else open_atlas(compare)
    data = ViewerData(atlas, compare=other)
    static_root = Path(static_dir or STATIC).resolve()
    cache = _LRU(CACHE_BYTES)

    app = FastAPI(title="neurocarta viewer", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(ReadOnly)
    if token is not None:
        app.add_middleware(TokenGuard, token=token)  # added last, so it runs first: no 405 before the 401
    app.state.data = data
    app.state.static_root = static_root

    def get(path: str):
        return app.api_route(path, methods=["GET", "HEAD"], include_in_schema=False)

    inflight: dict[Any, asyncio.Future] = {}
    maps_seen: list = [None]

    def maps_version() -> Any:
        """Where the map stages stand (``maps/_status.json``'s identity): it changes whenever a
        stage stores a layer's map, and then every payload read from the maps is recomputed,
        so a map that appears after the server started is served, never a stale "absent"."""
        version = status_version(atlas.location)
        if version != maps_seen[0]:
            maps_seen[0] = version
            data.forget_maps()
        return version

    async def cached(request: Request, key: Any, make: Callable[[], bytes], media_type: str = JSON,
                     cache_control: str = REVALIDATE, headers: dict | None = None, maps: bool = True) -> Response:
        if maps:  # keyed by the maps' version; thumbnails and static files do not depend on them
            key = (maps_version(), key)
        hit = cache.get(key)
        if hit is None:
            # single flight: concurrent requests for the same missing payload share one computation
            waiting = inflight.get(key)
            if waiting is not None:
                hit = await asyncio.shield(waiting)
            else:
                future = inflight[key] = asyncio.get_running_loop().create_future()
                try:
                    body = await run_in_threadpool(make)
                    hit = (body, etag_of(body))
                    cache.put(key, hit)
                    future.set_result(hit)
                except BaseException as e:
                    future.set_exception(e)
                    future.exception()  # retrieved: no "never retrieved" warning when nobody waits
                    raise
                finally:
                    inflight.pop(key, None)
        return _send(request, hit[0], hit[1], media_type, cache_control, headers)

    def as_json(fn: Callable, *args) -> Callable[[], bytes]:
        return lambda: encode_json(fn(*args))

    # ------------------------------------------------------------ errors: {"error": "one line"}
    # our own exceptions carry their one-line message; the status says whose fault it is
    def answer_with(status: int) -> Callable:
        async def handler(request, exc):
            return _error(status, str(exc))
        return handler

    for kind, status in ((NotFound, 404), (BadRequest, 400), (FindingsFailed, 500), (UserError, 404)):
        app.add_exception_handler(kind, answer_with(status))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc):
        errs = exc.errors()
        what = ", ".join(f"{'.'.join(map(str, e.get('loc', [])[1:]))}: {e.get('msg')}" for e in errs[:3])
        return _error(400, f"bad parameter {what}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(request, exc):
        return _error(500, f"internal error ({exc.__class__.__name__}): please report it")

    # ------------------------------------------------------------ API
    @get(template("manifest"))
    async def manifest(request: Request):
        return await cached(request, "manifest", as_json(data.manifest))

    @get(template("inputs"))
    async def inputs(request: Request, offset: int = 0, limit: int = 1000, format: str = "arrow"):
        if format not in ("arrow", "json"):
            raise BadRequest("format must be arrow or json")
        if offset < 0 or limit < 0:
            raise BadRequest("offset and limit must be non-negative")
        total = str(atlas.n_inputs)
        if format == "json":
            from .data import records

            make = lambda: encode_json(records(data.inputs(offset, limit)))  # noqa: E731
            return await cached(request, ("inputs", offset, limit, "json"), make, headers={"X-Total-Count": total})
        make = lambda: data.arrow_bytes(data.inputs(offset, limit))  # noqa: E731
        return await cached(request, ("inputs", offset, limit, "arrow"), make, ARROW, headers={"X-Total-Count": total})

    @get(template("thumbnail"))
    async def thumbnail(request: Request, input_id: str):
        i = parse_int(input_id, "input_id")
        return await cached(request, ("thumb", i), lambda: data.thumbnail_png(i), "image/png", IMAGE_CACHE,
                            maps=False)

    @get(template("patches"))
    async def patches(request: Request, snapshot: str, layer: str, neuron: str):
        snap, lay, n = data.snapshot(snapshot), data.layer(layer), parse_int(neuron, "neuron")
        return await cached(request, ("patch", snap, lay, n), lambda: data.patch_png(snap, lay, n),
                            "image/png", IMAGE_CACHE)

    @get(template("featvis"))
    async def featvis(request: Request, snapshot: str, layer: str):
        snap = data.snapshot(snapshot)
        return await cached(request, ("featvis", snap, layer), as_json(data.featvis, snap, layer))

    @get(template("featvis_image"))
    async def featvis_image(request: Request, snapshot: str, layer: str, kind: str, target: str, i: int = 0):
        snap = data.snapshot(snapshot)
        # revalidated, not kept a day: a new `neurocarta visualize` run replaces the images
        return await cached(request, ("featvis-png", snap, layer, kind, target, i),
                            lambda: data.featvis_png(snap, layer, kind, target, i), "image/png", REVALIDATE)

    @get(template("attributions"))
    async def attributions(request: Request, snapshot: str, input_id: str):
        snap, i = data.snapshot(snapshot), parse_int(input_id, "input_id")
        return await cached(request, ("attributions", snap, i), as_json(data.attributions, snap, i))

    @get(template("attribution_image"))
    async def attribution_image(request: Request, snapshot: str, input_id: str, index: str):
        snap, i, k = data.snapshot(snapshot), parse_int(input_id, "input_id"), parse_int(index, "index")
        return await cached(request, ("attribution-png", snap, i, k), lambda: data.attribution_png(snap, i, k),
                            "image/png", REVALIDATE)

    @get(template("exemplars"))
    async def exemplars(request: Request, snapshot: str, layer: str, neuron: str, k: int = 9):
        n = parse_int(neuron, "neuron")
        snap, lay = data.snapshot(snapshot), data.layer(layer)
        return await cached(request, ("exemplars", snap, lay, n, k), as_json(data.exemplars, snap, lay, n, k))

    @get(template("tokens"))
    async def tokens(request: Request, input_id: str, layer: str, neuron: int | None = None,
                     cluster: int | None = None, snapshot: str | None = None):
        i = parse_int(input_id, "input_id")
        snap, lay = data.snapshot(snapshot), data.layer(layer)
        return await cached(request, ("tokens", i, lay, snap, neuron, cluster),
                            as_json(data.token_values, i, lay, snap, neuron, cluster))

    @get(template("topomaps"))
    async def topomaps(request: Request):
        return await cached(request, "topomaps", as_json(data.topomap_names))

    @get(template("topomap"))
    async def topomap(request: Request, name: str):
        return await cached(request, ("topomap", name), as_json(data.topomap, name))

    @get(template("topomap_input"))
    async def topomap_input(request: Request, name: str, input_id: str, snapshot: str | None = None):
        i = parse_int(input_id, "input_id")
        snap = data.snapshot(snapshot)
        return await cached(request, ("topomap-input", name, i, snap), as_json(data.topomap_input, name, i, snap))

    @get(template("groupings"))
    async def groupings(request: Request):
        return await cached(request, "groupings", as_json(data.groupings))

    @get(template("topomap_groups"))
    async def topomap_groups(request: Request, name: str, column: str, snapshot: str | None = None):
        snap = data.snapshot(snapshot)
        return await cached(request, ("topomap-groups", name, column, snap),
                            as_json(data.topomap_groups, name, column, snap))

    @get(template("topomap_mapper_node"))
    async def topomap_node(request: Request, name: str, layer: str, node: str, snapshot: str | None = None):
        n = parse_int(node, "node")
        snap = data.snapshot(snapshot)
        return await cached(request, ("topomap-node", name, layer, n, snap),
                            as_json(data.topomap_node, name, data.layer(layer), n, snap))

    @get(template("mapper"))
    async def mapper(request: Request, layer: str):
        return await cached(request, ("mapper", layer), as_json(data.mapper, layer))

    @get(template("mapper_members"))
    async def mapper_members(request: Request, layer: str, format: str = "arrow"):
        if format == "json":
            return await cached(request, ("members", layer, "json"), as_json(data.mapper_members_json, layer))
        if format != "arrow":
            raise BadRequest("format must be arrow or json")
        return await cached(request, ("members", layer, "arrow"),
                            lambda: data.arrow_bytes(data.mapper_members(layer)), ARROW)

    @get(template("mapper_flow"))
    async def mapper_flow(request: Request, layer: str, next_layer: str):
        return await cached(request, ("flow", layer, next_layer), as_json(data.mapper_flow, layer, next_layer))

    @get(template("concepts"))
    async def concepts(request: Request, snapshot: str):
        return await cached(request, ("concepts", snapshot), as_json(data.concepts, snapshot))

    @get(template("concepts_nearest"))
    async def nearest(request: Request, snapshot: str, neuron: str, k: int = 10):
        n = parse_int(neuron, "neuron")
        return await cached(request, ("nearest", snapshot, n, k), as_json(data.concepts_nearest, snapshot, n, k))

    @get(template("map_status"))
    async def map_status(request: Request):
        # never cached: a stage whose process died turns "interrupted" without the file changing
        maps_version()
        body = encode_json(read_map_status(atlas.location))
        return _send(request, body, etag_of(body), JSON, REVALIDATE)

    @get(template("comparison"))
    async def comparison(request: Request):
        return await cached(request, "comparison", as_json(data.comparison))

    @get(template("findings"))
    async def findings(request: Request):
        return await cached(request, "findings", as_json(data.findings))

    @get(template("input_projections"))
    async def input_projections(request: Request):
        return await cached(request, "input-projections", as_json(data.projection_layers))

    @get(template("input_projection"))
    async def input_projection(request: Request, layer: str):
        return await cached(request, ("input-projection", layer), as_json(data.input_projection, data.layer(layer)))

    @get(template("topomap_selection"))
    async def topomap_selection(request: Request, name: str, layer: str, polygon: str, snapshot: str | None = None):
        snap, lay = data.snapshot(snapshot), data.layer(layer)
        return await cached(request, ("topomap-selection", name, lay, polygon, snap),
                            as_json(data.topomap_selection, name, lay, polygon, snap))

    # ------------------------------------------------------------ the front end
    @get("/{path:path}")
    async def static(request: Request, path: str):
        if path == "api" or path.startswith("api/"):
            raise NotFound(f"no API endpoint /{path[:80]}")
        index = static_root / "index.html"
        if path in ("", "index.html"):
            if not index.is_file():
                return HTMLResponse(NOT_BUILT, headers={"Cache-Control": REVALIDATE})
            target = index
        else:
            if "\x00" in path or "\\" in path:
                raise NotFound("not found")
            target = (static_root / path).resolve()
            # resolve() follows links and '..': what is left must still sit inside the folder
            if not target.is_relative_to(static_root) or not target.is_file():
                raise NotFound("not found")
        stat = target.stat()
        key = ("static", str(target), stat.st_mtime_ns, stat.st_size)
        media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if media.startswith("text/") or media == JSON:
            media += "; charset=utf-8"
        immutable = target.parent.name == "assets"  # Vite's content-hashed files
        return await cached(request, key, target.read_bytes, media,
                            "public, max-age=31536000, immutable" if immutable else REVALIDATE, maps=False)

    return app


# ------------------------------------------------------------------------- serving


def bind_socket(host: str = "127.0.0.1", port: int = 8765) -> socket.socket:
    """A listening socket on ``host:port``, or a UserError saying the port is in use.

    Binding here, before uvicorn starts, turns "address in use" into one clear line, and
    handing uvicorn this very socket leaves no window for another process to take the port.
    """
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise UserError(f"cannot resolve host {host!r} ({e.strerror}); use an address such as 127.0.0.1") from e
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise UserError(f"port {port} is in use; pick another with --port") from e
        if e.errno in (errno.EACCES, errno.EPERM):
            raise UserError(f"no permission to listen on port {port}; pick one above 1023 with --port") from e
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); check --host and --port") from e
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def serve(atlas_path: Atlas | str | Path, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False,
          static_dir: str | Path | None = None, log_level: str = "warning", sock: socket.socket | None = None,
          token: str | None = None, no_token: bool = False, compare: Atlas | str | Path | None = None) -> None:
    """Serve the viewer of ``atlas_path`` until interrupted, printing its URL; ``compare``: a
    second atlas for the comparison page.

    A host beyond the loopback requires a token (``token``, else ``NEUROCARTA_TOKEN``, else one
    generated and printed in the URL) unless ``no_token``; see ``viewer/auth.py``.
    """
    server, sock = _prepare_server(atlas_path, host, port, open_browser, static_dir, log_level, sock, token, no_token,
                                   compare=compare)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """The viewer served from a thread, while the caller goes on (the demo builds its maps)."""

    def __init__(self, server: Any, sock: socket.socket, thread: threading.Thread):
        self.server, self.sock, self.thread = server, sock, thread

    @property
    def url(self) -> str:
        return url_of(self.sock)

    def wait(self) -> None:
        """Serve until Ctrl+C (or until the server stops), then stop cleanly."""
        try:
            while self.thread.is_alive():
                self.thread.join(0.5)  # a timed join: Ctrl+C reaches the main thread
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    # ``with serve_in_background(...) as viewer:``: the server stops however the block ends
    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_background(atlas_path: Atlas | str | Path, host: str = "127.0.0.1", port: int = 8765,
                        open_browser: bool = False, static_dir: str | Path | None = None,
                        log_level: str = "warning", sock: socket.socket | None = None, token: str | None = None,
                        no_token: bool = False) -> BackgroundServer:
    """:func:`serve`, from a daemon thread: returns once the port listens (its URL printed).
    Maps stored afterwards are served as they appear (the app watches ``maps/_status.json``)."""
    server, sock = _prepare_server(atlas_path, host, port, open_browser, static_dir, log_level, sock, token, no_token)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="neurocarta-viewer", daemon=True)
    thread.start()
    return BackgroundServer(server, sock, thread)


def _prepare_server(atlas_path: Atlas | str | Path, host: str, port: int, open_browser: bool,
                    static_dir: str | Path | None, log_level: str, sock: socket.socket | None, token: str | None,
                    no_token: bool, compare: Atlas | str | Path | None = None) -> tuple[Any, socket.socket]:
    """The uvicorn server of the viewer app and its listening socket, the URL printed."""
    import uvicorn

    access = choose_access(sock.getsockname()[0] if sock else host, token, no_token)
    app = create_app(atlas_path, static_dir, token=access.token, compare=compare)  # atlas errors before the port
    sock = sock or bind_socket(host, port)
    url = url_with_token(url_of(sock), access)
    if access.warning:
        print(f"neurocarta: warning: {access.warning}", file=sys.stderr, flush=True)
    required = "; requests need your token" if access.token and not access.generated else ""
    print(f"neurocarta: viewer at {url}  (Ctrl+C to stop{required})", flush=True)
    if not (Path(static_dir or STATIC) / "index.html").is_file():
        print("neurocarta: the web assets are not built; the API answers, the page says how to build them "
              "(make web)", file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", timeout_keep_alive=30,
                            backlog=2048)
    return uvicorn.Server(config), sock
