"""Who may read the served atlas: a token guard for binds beyond the loopback (Jupyter's practice).

An atlas holds thumbnails, labels and activations, so a server that other machines can reach
requires a token: generated per run (or chosen with ``--token`` / ``NEUROCARTA_TOKEN``), printed
once in the URL, and checked on every request. A request may carry it as the header
``Authorization: token X`` (or ``Bearer X``), the header ``X-Neurocarta-Token: X``, the query
parameter ``?token=X``, or the cookie that a valid ``?token=`` sets, so the viewer's own fetches
and images work after the first visit without knowing the token. Loopback binds stay tokenless:
only this machine can reach them. ``--no-token`` opts out on a network bind, with a warning.
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..errors import UserError

TOKEN_ENV = "NEUROCARTA_TOKEN"
TOKEN_HEADER = "x-neurocarta-token"
TOKEN_QUERY = "token"
AUTH_SCHEMES = ("token", "bearer")
COOKIE_PREFIX = "neurocarta-token"

NEEDS_TOKEN = ("this viewer requires a token: open the URL that `neurocarta serve` printed (it ends in "
               "?token=...), or send the header 'Authorization: token <token>'")


@dataclass(frozen=True)
class Access:
    """What ``serve`` enforces and prints: the token to require (None: open) and where it came from."""

    token: str | None
    generated: bool = False  # made here: print it in the URL; a user's own token is never echoed
    warning: str | None = None  # one line for stderr when a network bind is left open


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) is reachable from this machine only."""
    host = host.strip("[]").split("%")[0]  # "[::1]" and scoped "fe80::1%eth0" forms
    if host.lower() == "localhost":
        return True
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:  # a name: loopback only if every address it resolves to is
        try:
            addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None)}
        except (socket.gaierror, UnicodeError, ValueError):
            return False
    # an IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged by its IPv4 form
    addresses = {getattr(a, "ipv4_mapped", None) or a for a in addresses}
    return bool(addresses) and all(a.is_loopback for a in addresses)


def check_token(token: str) -> str:
    """A user's token must survive headers, URLs and cookies unchanged: printable ASCII, no spaces."""
    if not token or not all("!" <= ch <= "~" for ch in token):
        raise UserError("the token (--token or NEUROCARTA_TOKEN) must be non-empty printable ASCII without "
                        "spaces; or leave it unset and one is generated")
    return token


def choose_access(host: str, token: str | None = None, no_token: bool = False,
                  environ: Mapping[str, str] = os.environ) -> Access:
    """The token rule for serving on ``host``.

    A token given by the user (argument, else ``NEUROCARTA_TOKEN``) is always required. Otherwise a
    loopback host is open, and any other host gets a generated token unless ``no_token`` opts out.
    """
    given = token if token is not None else environ.get(TOKEN_ENV) or None
    if no_token:
        if token is not None:
            raise UserError("--token and --no-token contradict each other; give one of them")
        if is_loopback(host):
            return Access(None)
        return Access(None, warning=f"--no-token: anyone who can reach {host} reads this atlas (thumbnails, labels, "
                                    "activations) without a token; drop --no-token to require one")
    if given is not None:
        return Access(check_token(given))
    if is_loopback(host):
        return Access(None)
    return Access(secrets.token_urlsafe(32), generated=True)


def url_with_token(url: str, access: Access) -> str:
    """The URL to print or open: with ``?token=`` only for a generated token (printed this once)."""
    return f"{url}?{TOKEN_QUERY}={quote(access.token, safe='')}" if access.generated and access.token else url


class TokenGuard:
    """ASGI middleware: every HTTP (and WebSocket) request must carry the token, else a 401.

    A valid ``?token=`` also sets a cookie (HttpOnly, SameSite=Strict) so that the page's own
    fetches and images pass without the token in their URLs. The cookie holds a digest of the
    token, not the token; comparisons are constant-time. Responses are marked ``private`` so no
    shared cache keeps what only token holders may read.
    """

    def __init__(self, app, token: str):
        self.app = app
        self._token = check_token(token).encode()
        self._cookie_value = hashlib.sha256(b"neurocarta-cookie:" + self._token).hexdigest().encode()

    def _matches(self, candidate: str | None, expected: bytes) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode("utf-8", "replace"), expected)

    def _header_token(self, conn: HTTPConnection) -> str | None:
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() in AUTH_SCHEMES and value.strip():
            return value.strip()
        return conn.headers.get(TOKEN_HEADER)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        cookie_name = f"{COOKIE_PREFIX}-{(scope.get('server') or ('', ''))[1]}"  # one per port on a host
        from_query = self._matches(conn.query_params.get(TOKEN_QUERY), self._token)
        from_cookie = self._matches(conn.cookies.get(cookie_name), self._cookie_value)
        allowed = from_query or from_cookie or self._matches(self._header_token(conn), self._token)
        if not allowed:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _unauthorized(scope["path"])(scope, receive, send)
            return
        set_cookie = from_query and not from_cookie
        cookie = (f"{cookie_name}={self._cookie_value.decode()}; Path=/; HttpOnly; SameSite=Strict").encode()

        async def send_guarded(message):
            if message["type"] == "http.response.start":
                headers = [(k, v.replace(b"public", b"private") if k.lower() == b"cache-control" else v)
                           for k, v in message.get("headers", [])]
                if set_cookie:
                    headers.append((b"set-cookie", cookie))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_guarded)


def _unauthorized(path: str) -> Response:
    headers = {"WWW-Authenticate": 'Token realm="neurocarta"', "Cache-Control": "no-store"}
    if path == "/api" or path.startswith("/api/"):
        return JSONResponse({"error": NEEDS_TOKEN}, status_code=401, headers=headers)
    page = ('<!doctype html><html><head><meta charset="utf-8"><title>neurocarta: token required</title></head>'
            '<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto"><h1>neurocarta</h1>'
            f"<p>{html.escape(NEEDS_TOKEN.replace('`', ''))}.</p></body></html>")
    return HTMLResponse(page, status_code=401, headers=headers)
