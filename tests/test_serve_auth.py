"""Serving beyond the loopback requires a token (issue 14, bug 10): the guard on every request,
the choice of token per host, and what ``neurocarta serve`` prints."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

import neurocarta as nc
from conftest import run_env
from neurocarta.cli import main
from neurocarta.errors import UserError
from neurocarta.viewer import create_app
from neurocarta.viewer.auth import TOKEN_ENV, choose_access, is_loopback, url_with_token
from test_viewer_api import _free_port

TOKEN = "s3cret-Token_for-tests"
NO_ENV: dict[str, str] = {}


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    """24 images of the tiny CNN, one layer, thumbnails: enough for every route the guard covers."""
    d = tmp_path_factory.mktemp("auth")
    rng = np.random.default_rng(0)
    np.savez(d / "img.npz", x=rng.integers(0, 255, size=(24, 16, 16, 3)).astype(np.uint8), y=rng.integers(0, 2, 24))
    return nc.extract("py:tiny_models:cnn_bundle", f"npz:{d / 'img.npz'}", d / "atlas", layers=["fc"],
                      thumb_size=16, progress=False)


@pytest.fixture(scope="module")
def static(tmp_path_factory):
    d = tmp_path_factory.mktemp("static")
    (d / "assets").mkdir()
    (d / "index.html").write_text('<!doctype html><script type="module" src="/assets/app.js"></script>')
    (d / "assets" / "app.js").write_text("fetch('/api/manifest')")
    return d


@pytest.fixture(scope="module")
def guarded(atlas, static):
    return create_app(atlas, static_dir=static, token=TOKEN)


def test_a_missing_or_wrong_token_gets_401(guarded):
    client = TestClient(guarded)
    r = client.get("/api/manifest")
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Token") and r.headers["cache-control"] == "no-store"
    page = client.get("/")
    assert page.status_code == 401 and "text/html" in page.headers["content-type"] and "?token=" in page.text
    assert "&lt;token&gt;" in page.text  # the hint is escaped, not markup
    assert client.post("/api/manifest").status_code == 401  # the guard answers before the read-only rule
    for wrong in ({"headers": {"Authorization": "token nope"}}, {"headers": {"X-Neurocarta-Token": TOKEN + "x"}},
                  {"params": {"token": TOKEN[:-1]}}, {"headers": {"Authorization": f"Basic {TOKEN}"}}):
        assert client.get("/api/manifest", **wrong).status_code == 401, wrong
    # the cookie holds a digest of the token, so the token itself is no valid cookie
    assert TestClient(guarded, cookies={"neurocarta-token-80": TOKEN}).get("/api/manifest").status_code == 401
    assert "set-cookie" not in client.get("/api/manifest", params={"token": "nope"}).headers


def test_the_token_passes_as_header_query_or_cookie(guarded, atlas):
    client = TestClient(guarded)
    for how in ({"headers": {"Authorization": f"token {TOKEN}"}}, {"headers": {"Authorization": f"Bearer {TOKEN}"}},
                {"headers": {"X-Neurocarta-Token": TOKEN}}):
        r = client.get("/api/manifest", **how)
        assert r.status_code == 200 and r.json()["n_inputs"] == 24, how
        assert "set-cookie" not in r.headers  # headers authenticate API clients without a cookie
    assert len(client.cookies) == 0

    # the first visit opens the printed URL; the cookie it sets lets the page's own requests through
    first = client.get("/", params={"token": TOKEN})
    assert first.status_code == 200 and "app.js" in first.text
    cookie = first.headers["set-cookie"]
    assert re.fullmatch(r"neurocarta-token-80=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict", cookie), cookie
    assert TOKEN not in cookie
    assert client.get("/assets/app.js").status_code == 200
    assert client.get("/api/manifest").json()["n_inputs"] == 24
    thumb = client.get("/api/thumbnail/3.png")
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")
    assert thumb.headers["cache-control"].startswith("private")  # no shared cache keeps a guarded image
    assert "set-cookie" not in client.get("/", params={"token": TOKEN}).headers  # set once, not on every visit
    client.cookies.clear()
    assert client.get("/api/manifest").status_code == 401


def test_loopback_serves_without_a_token(atlas):
    for host in ("127.0.0.1", "::1", "localhost", "[::1]", "127.5.6.7", "::ffff:127.0.0.1"):
        assert is_loopback(host), host
        assert choose_access(host, environ=NO_ENV).token is None, host
    for host in ("0.0.0.0", "::", "", "192.168.1.10", "10.0.0.5"):
        assert not is_loopback(host), host
    open_app = TestClient(create_app(atlas))
    assert open_app.get("/api/manifest").status_code == 200


def test_a_network_bind_gets_a_generated_token_unless_opted_out():
    first, second = choose_access("0.0.0.0", environ=NO_ENV), choose_access("0.0.0.0", environ=NO_ENV)
    assert first.generated and len(first.token) >= 40 and first.token != second.token
    assert re.fullmatch(r"[A-Za-z0-9_-]+", first.token) and first.warning is None
    assert url_with_token("http://0.0.0.0:8765/", first) == f"http://0.0.0.0:8765/?token={first.token}"

    mine = choose_access("0.0.0.0", token="mine-123", environ=NO_ENV)
    assert (mine.token, mine.generated) == ("mine-123", False)
    assert url_with_token("http://0.0.0.0:8765/", mine) == "http://0.0.0.0:8765/"  # a chosen token is not echoed
    from_env = choose_access("0.0.0.0", environ={TOKEN_ENV: "from-env"})
    assert (from_env.token, from_env.generated) == ("from-env", False)
    assert choose_access("127.0.0.1", token="mine-123", environ=NO_ENV).token == "mine-123"  # asked for: kept

    opted_out = choose_access("0.0.0.0", no_token=True, environ={TOKEN_ENV: "from-env"})
    assert opted_out.token is None and "--no-token" in opted_out.warning and "0.0.0.0" in opted_out.warning
    assert choose_access("127.0.0.1", no_token=True, environ=NO_ENV).warning is None  # nothing is exposed
    with pytest.raises(UserError, match="printable ASCII without spaces"):
        choose_access("0.0.0.0", token="two words", environ=NO_ENV)
    with pytest.raises(UserError, match="contradict"):
        choose_access("0.0.0.0", token="x", no_token=True, environ=NO_ENV)


def test_serve_prints_the_warning_or_the_plain_url(atlas, monkeypatch, capsys):
    """`serve` decides, binds, prints and hands the socket to uvicorn (stubbed here: no server runs)."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: None)
    assert main(["serve", str(atlas.root), "--host", "0.0.0.0", "--port", "0", "--no-token"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"viewer at http://0\.0\.0\.0:\d+/ ", out) and "token=" not in out
    warnings = [line for line in err.splitlines() if line.startswith("neurocarta: warning:")]
    assert len(warnings) == 1 and "without a token" in warnings[0]

    assert main(["serve", str(atlas.root), "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"viewer at http://127\.0\.0\.1:\d+/ ", out) and "token" not in out + err

    with pytest.raises(SystemExit) as exit_:
        main(["serve", str(atlas.root), "--token", "x", "--no-token"])
    assert exit_.value.code == 2


def test_cli_on_0_0_0_0_prints_a_token_url_and_requires_it(atlas):
    """The real server on all interfaces, reached only through the loopback."""
    port = _free_port()
    env = {k: v for k, v in run_env().items() if k != TOKEN_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "neurocarta", "serve", str(atlas.root), "--host", "0.0.0.0",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(rf"http://0\.0\.0\.0:{port}/\?token=([A-Za-z0-9_-]{{40,}})\s", line)
        assert m, line
        base = f"http://127.0.0.1:{port}/api/manifest"
        deadline = time.time() + 30
        while True:
            try:
                r = httpx.get(base, timeout=5)
                break
            except httpx.TransportError:
                assert time.time() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        assert r.status_code == 401
        assert httpx.get(base, headers={"Authorization": f"token {m.group(1)}"}, timeout=5).status_code == 200
        assert httpx.get(base, params={"token": m.group(1)}, timeout=5).json()["n_inputs"] == 24
    finally:
        proc.terminate()
        proc.wait(timeout=10)
