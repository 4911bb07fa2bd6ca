"""The viewer inside a Jupyter notebook: ``nc.show(atlas)``.

The viewer is served from a background thread on a free port of the loopback, and the cell
shows it in an iframe. What the user selects there comes back to Python through one extra
endpoint, ``POST /_notebook/state``, that only notebook views have: the front end (its
``web/src/lib/notebook.ts``) posts its state, the URL hash it already keeps, whenever it
changes, with the view's own random token in a header. ``view.selection`` turns the last
reported state into a table (the lasso's inputs, a Mapper node's members, a clicked input,
the picked neurons), resolved by the same code that serves the viewer's payloads.

Why a loopback server rather than a widget: the viewer is a whole app (six linked views,
Arrow payloads, thumbnails by URL) that already runs against this server; a widget would
have to re-route every fetch through the kernel's comm channel. ``neurocarta serve`` keeps
its read-only app: the state endpoint is a separate ASGI layer around it, mounted here only.
See docs/architecture.md ("The viewer in Jupyter").
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import numpy as np
import pandas as pd
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import UserError
from .app import STATIC, BackgroundServer, bind_socket, create_app
from .auth import is_loopback
from .data import BadRequest, NotFound, ViewerData

if TYPE_CHECKING:
    from ..store import Atlas

#: The one writable path of a notebook view (web/src/lib/notebook.ts posts to it).
STATE_PATH = "/_notebook/state"
#: The header carrying the view's token (a custom header also keeps other sites' forms out:
#: a browser sends it cross-origin only after a CORS preflight, which this endpoint never grants).
STATE_TOKEN_HEADER = "x-neurocarta-notebook"
#: The URL query parameter that tells the front end it runs in a notebook, and its token.
STATE_QUERY = "notebook"
#: A state is a URL hash: a few hundred bytes, a lasso of 500 vertices at most about 10 kB.
MAX_STATE_BYTES = 64 * 1024

INPUT_KINDS = ("input", "inputs", "node")
#: The views the front end has (web/src/lib/store.svelte.ts, VIEWS), in its keyboard order.
VIEWS = ("topomap", "projection", "graph", "mapper", "inspector", "inputs")


class NotebookView:
    """One viewer shown in a notebook: ``_repr_html_`` is its iframe, ``selection`` what is
    selected in it now, ``close()`` stops its server."""

    def __init__(self, data: ViewerData, server: BackgroundServer, token: str, start: dict[str, str],
                 height: int):
        self._data, self._server, self._token, self._height = data, server, token, height
        self._start = start
        self.address = server.url  # kept: the socket's name is gone once the server stops
        self._lock = threading.Lock()
        self._hash: str | None = None  # the last state the front end reported (None: not yet)
        self._reports = 0

    # ------------------------------------------------------------ the page
    @property
    def url(self) -> str:
        """The viewer's address with this view's token (open it in a browser tab to pop it out)."""
        fragment = urlencode({**self._start, "notour": "1"})
        return f"{self.address}?{urlencode({STATE_QUERY: self._token})}#{fragment}"

    def _repr_html_(self) -> str:
        return (f'<iframe src="{html.escape(self.url)}" width="100%" height="{int(self._height)}" '
                f'style="border:1px solid #8884;border-radius:4px" title="neurocarta viewer"></iframe>')

    def __repr__(self) -> str:
        state = "running" if self._server.thread.is_alive() else "stopped"
        return f"<NotebookView of {self._data.atlas.root.name!r} at {self.address} ({state})>"

    def close(self) -> None:
        """Stop this view's server (the iframe goes blank)."""
        self._server.stop()

    # ------------------------------------------------------------ the state the page reports
    def _receive(self, hash_text: str) -> None:
        with self._lock:
            self._hash = hash_text
            self._reports += 1

    @property
    def reports(self) -> int:
        """How many state reports the page has sent (a cell can wait for the first one)."""
        return self._reports

    @property
    def state(self) -> dict[str, str]:
        """The viewer's state as the page last reported it: its URL hash as a dict
        (``view``, ``sel``, ``tm``, ``snap``, ...); empty before the page has loaded."""
        with self._lock:
            text = self._hash
        if text is None:
            return {}
        return {k: v[-1] for k, v in parse_qs(text.lstrip("#"), keep_blank_values=False).items()}

    @property
    def selection(self) -> pd.DataFrame:
        """What is selected in the viewer now, as a table.

        A lasso on the input projection, a Mapper node or a clicked input: those inputs' rows
        of ``atlas.inputs`` (``input_id``, label, prediction, metadata). A neuron, a lasso of
        the neuron projection or a concept cluster: one row per neuron (``layer``, ``unit``).
        Nothing selected: an empty table with an ``input_id`` column.
        """
        return resolve_selection(self._data, self.state)


def resolve_selection(data: ViewerData, state: dict[str, str]) -> pd.DataFrame:
    """The table of the selection ``state["sel"]`` (the front end's ``selToString`` form,
    web/src/lib/store.svelte.ts), read through the viewer's own payload code."""
    text = state.get("sel", "")
    kind, _, rest = text.partition(":")
    try:
        if kind in INPUT_KINDS:
            return _inputs_table(data, _selected_inputs(data, kind, rest))
        if kind in ("neuron", "neurons", "cluster"):
            return _neurons_table(data, kind, rest, state.get("snap") or None)
    except (NotFound, BadRequest) as e:
        raise UserError(f"the viewer's selection {text[:80]!r} cannot be read: {e}") from None
    return _inputs_table(data, np.zeros(0, dtype=np.int64))


def _selected_inputs(data: ViewerData, kind: str, rest: str) -> np.ndarray:
    """The input ids of an input-side selection, sorted and unique."""
    layer, _, last = rest.rpartition(":")
    if kind == "input":
        return np.array([_integer(rest, "input id")], dtype=np.int64)
    if kind == "node":
        members = data.mapper_members(data.layer(layer))
        return np.unique(members.loc[members["node"] == _integer(last, "Mapper node"), "input_id"].to_numpy(np.int64))
    _, ids = data.projection_selection(data.layer(layer), last)  # a lasso: points inside its polygon
    return np.unique(ids)


def _inputs_table(data: ViewerData, ids: np.ndarray) -> pd.DataFrame:
    table = data.input_frame()
    if "input_id" not in table:  # the store keeps ids as the row order
        table = table.assign(input_id=np.arange(len(table)))
    return table[table["input_id"].isin(ids)].reset_index(drop=True)


def _neurons_table(data: ViewerData, kind: str, rest: str, snapshot: str | None) -> pd.DataFrame:
    if kind == "neuron":
        layer, _, unit = rest.rpartition(":")
        return pd.DataFrame({"layer": [data.layer(layer)], "unit": [_integer(unit, "neuron")]})
    # concept-neuron indices (a lasso of the neuron projection) or a cluster: rows of the concept atlas
    neurons = data.concept_result(data.snapshot(snapshot)).neurons
    if kind == "cluster":
        picked = neurons[neurons["cluster"] == _integer(rest, "cluster")]
    else:
        rows = [_integer(v, "neuron index") for v in rest.split(".") if v]
        picked = neurons.iloc[[r for r in rows if 0 <= r < len(neurons)]]
    return picked[["layer", "unit", "cluster"]].reset_index(drop=True)


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"{what} must be an integer, got {text[:40]!r}") from None


def state_endpoint(viewer_app: Any, token: str, receive_state) -> Any:
    """An ASGI app: ``POST STATE_PATH`` with the token reports the page's state to
    ``receive_state(hash)``; every other request goes to the (read-only) ``viewer_app``."""

    async def app(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != STATE_PATH:
            await viewer_app(scope, receive, send)
            return
        response = await _answer_state(Request(scope, receive), token, receive_state)
        await response(scope, receive, send)

    return app


async def _answer_state(request: Request, token: str, receive_state) -> Response:
    if request.method != "POST":
        return JSONResponse({"error": "POST the state as {\"hash\": ...}"}, status_code=405, headers={"Allow": "POST"})
    if request.client is None or not is_loopback(request.client.host):
        return JSONResponse({"error": "notebook state is accepted from this machine only"}, status_code=403)
    if not secrets.compare_digest(request.headers.get(STATE_TOKEN_HEADER, ""), token):
        return JSONResponse({"error": "wrong or missing notebook token"}, status_code=403)
    body = await request.body()
    if len(body) > MAX_STATE_BYTES:
        return JSONResponse({"error": f"a state is at most {MAX_STATE_BYTES} bytes"}, status_code=413)
    try:
        state = json.loads(body)
        hash_text = state["hash"]
        if not isinstance(hash_text, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "the body must be JSON {\"hash\": \"...\"}"}, status_code=400)
    receive_state(hash_text)
    return Response(status_code=204)


def show(atlas: Atlas | str | Path, view: str | None = None, height: int = 720, port: int = 0,
         static_dir: str | Path | None = None) -> NotebookView:
    """Show the viewer of ``atlas`` in a notebook cell (the returned view displays itself).

    ``view``: the view to open on (``topomap``, ``projection``, ``graph``, ``mapper``,
    ``inspector`` or ``inputs``). ``port``: the loopback port (0: a free one). Read back what
    is selected with ``view.selection``; ``view.close()`` stops the server.
    """
    import uvicorn

    from ..store import Atlas as AtlasClass
    from ..store import open_atlas

    if not isinstance(height, int) or height < 100:
        raise UserError(f"height must be an integer number of pixels, at least 100; got {height!r}")
    if view is not None and view not in VIEWS:
        raise UserError(f"no view {view!r}; views: {', '.join(VIEWS)}")
    opened = atlas if isinstance(atlas, AtlasClass) else open_atlas(atlas)
    viewer_app = create_app(opened, static_dir)
    data: ViewerData = viewer_app.state.data
    token = secrets.token_urlsafe(24)
    start = {"view": view} if view else {}
    sock = bind_socket("127.0.0.1", port)  # the loopback only, whatever the caller's network
    holder: list[NotebookView] = []
    app = state_endpoint(viewer_app, token, lambda text: holder[0]._receive(text))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="neurocarta-notebook", daemon=True)
    nb_view = NotebookView(data, BackgroundServer(server, sock, thread), token, start, height)
    holder.append(nb_view)
    thread.start()
    if not (Path(static_dir or STATIC) / "index.html").is_file():
        print("neurocarta: the web assets are not built (make web); the frame will say so", flush=True)
    return nb_view


__all__ = ["NotebookView", "resolve_selection", "show"]
