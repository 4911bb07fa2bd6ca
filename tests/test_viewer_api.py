"""The viewer's read-only API (FastAPI TestClient) against the Python API, its security rules,
``neurocarta serve`` and the static single-file export."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import neurocarta as nc
import tiny_models
from conftest import run_env
from neurocarta.errors import UserError
from neurocarta.methods.concepts import load_concepts
from neurocarta.methods.mapper import flow, load_mapper
from neurocarta.methods.topomap import load_topomap
from neurocarta.viewer import create_app, export_html
from neurocarta.viewer.data import tile
from test_cli import _one_line_error, nc_cli

INDEX = """<!doctype html><html><head><meta charset="utf-8"><title>nc</title>
<script type="module" crossorigin src="/assets/app.js"></script>
<link rel="stylesheet" crossorigin href="/assets/app.css">
</head><body><div id="app"></div></body></html>"""


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    """An image atlas of the tiny CNN: 2 snapshots, labels, thumbnails, and all three maps."""
    from neurocarta.pipeline import build_concepts, build_mappers, build_topomaps

    d = tmp_path_factory.mktemp("viewer")
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 60, size=(n, 16, 16, 3)).astype(np.uint8)
    for g in range(4):  # each class has its colour, class 3 a white square
        x[y == g, :, :, g % 3] += 150
    x[y == 3, 4:12, 4:12] = 255
    np.savez(d / "img.npz", x=x, y=y)
    snaps = d / "snaps"
    snaps.mkdir()
    model = tiny_models.cnn()
    torch.save(model.state_dict(), snaps / "step2.pt")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    torch.save(model.state_dict(), snaps / "step1.pt")
    a = nc.extract("py:tiny_models:cnn_bundle", f"npz:{d / 'img.npz'}", d / "atlas", layers=["conv", "act", "head"],
                   snapshots=str(snaps / "step*.pt"), thumb_size=16, progress=False)
    build_topomaps(a, method="pca", grid=True, snapshots=True, progress=False)
    build_mappers(a, intervals=10, progress=False)
    build_concepts(a, k=20, snapshots=True, progress=False)
    return nc.open_atlas(a.root)


@pytest.fixture(scope="module")
def static(tmp_path_factory):
    d = tmp_path_factory.mktemp("static")
    (d / "assets").mkdir()
    (d / "index.html").write_text(INDEX)
    (d / "assets" / "app.js").write_text("const s = '</script>'; document.title = 'viewer ' + s.length;")
    (d / "assets" / "app.css").write_text("body { background: url(/assets/dot.svg); }")
    (d / "assets" / "dot.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>')
    (d.parent / f"{d.name}-secret.txt").write_text("SECRET outside the static folder")
    (d / "link.txt").symlink_to(d.parent / f"{d.name}-secret.txt")
    return d


@pytest.fixture(scope="module")
def client(atlas, static):
    return TestClient(create_app(atlas.root, static_dir=static))


def test_manifest(client, atlas):
    r = client.get("/api/manifest")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    m = r.json()
    assert m["n_inputs"] == 300 and m["snapshots"] == ["step1", "step2"] and m["modality"] == "image"
    assert m["has_thumbnails"] is True and m["model"] == "py:tiny_models:cnn_bundle"
    assert [(l["name"], l["kind"], l["n_neurons"], l["rows"]) for l in m["layers"]] == \
        [(l.name, l.kind, l.n_neurons, l.rows) for l in atlas.layers]
    assert m["layers"][0]["spatial"] == [16, 16] and m["layers"][0]["receptive_field"] == 3
    assert m["maps"] == {"topomap": ["act@label", "conv@label", "head@label"], "mapper": ["act", "conv", "head"],
                         "concepts": ["step1", "step2"], "inputs": []}  # no input projection made here
    assert m["patches"] == {"step2": ["conv", "act", "head"]}
    assert {"name", "data", "class_names"} <= set(m)


def test_inputs_arrow_and_json(client, atlas):
    want = atlas.inputs.iloc[10:60].reset_index(drop=True)
    assert {"pred", "correct", "confidence"} <= set(want.columns)
    r = client.get("/api/inputs?offset=10&limit=50&format=arrow")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert r.headers["x-total-count"] == "300"
    got = pa.ipc.open_stream(r.content).read_all().to_pandas()
    pd.testing.assert_frame_equal(got, want)
    assert client.get("/api/inputs?offset=10&limit=50").content == r.content  # arrow is the default
    rows = client.get("/api/inputs?offset=10&limit=50&format=json").json()
    assert len(rows) == 50 and rows[0]["input_id"] == 10 and rows[0]["label"] == int(want["label"][0])
    assert rows[3]["confidence"] == pytest.approx(float(want["confidence"][3]))
    assert client.get("/api/inputs?offset=290&limit=50&format=json").json()[-1]["input_id"] == 299
    for bad in ("format=csv", "limit=100000000", "offset=-1", "limit=abc"):
        r = client.get(f"/api/inputs?{bad}")
        assert r.status_code == 400 and set(r.json()) == {"error"}, bad


def test_thumbnails_with_etag(client, atlas):
    r = client.get("/api/thumbnail/7.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "public, max-age=86400" and r.headers["etag"]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))), atlas.thumbnail(7))
    again = client.get("/api/thumbnail/7.png", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == r.headers["etag"]
    assert client.get("/api/thumbnail/7.png", headers={"If-None-Match": '"other"'}).status_code == 200
    for bad in ("300.png", "7.jpg", "-1.png", "x.png"):
        r = client.get(f"/api/thumbnail/{bad}")
        assert r.status_code == 404 and "error" in r.json(), bad
    # JSON payloads carry ETags too
    m = client.get("/api/manifest")
    assert client.get("/api/manifest", headers={"If-None-Match": m.headers["etag"]}).status_code == 304


def test_patches(client, atlas):
    r = client.get("/api/patches/step2/conv/4.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.headers["etag"]
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    assert img.shape == (96, 96, 3)
    np.testing.assert_array_equal(img, tile(atlas.patches("conv", "step2")[4]))
    np.testing.assert_array_equal(img[32:64, :32], atlas.patches("conv", "step2")[4, 3])  # row-major 3x3
    assert client.get("/api/patches/step2/conv/4.png", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    for bad in ("step1/conv/0.png", "step2/conv/6.png", "step2/nope/0.png", "nope/conv/0.png", "step2/conv/a.png"):
        assert client.get(f"/api/patches/{bad}").status_code == 404, bad


def test_topomap(client, atlas):
    assert client.get("/api/topomap").json() == atlas.maps("topomap")
    t = client.get("/api/topomap/act@label").json()
    r = load_topomap(atlas, "act", "label")
    assert t["layer"] == "act" and t["group_by"] == "label" and t["snapshots"] == ["step1", "step2"]
    assert t["groups"] == r.groups == ["0", "1", "2", "3"] and t["group_names"] == r.group_names
    np.testing.assert_allclose(t["x"], r.layout[:, 0], atol=1e-6)
    np.testing.assert_allclose(t["y"], r.layout[:, 1], atol=1e-6)
    assert t["silent"] == r.silent.tolist()
    for snap in r.snapshots:
        for j, g in enumerate(r.groups):
            np.testing.assert_allclose(t["values"][snap][g], r.values[snap][:, j], atol=1e-6)
    assert t["metrics"]["trustworthiness"] == pytest.approx(r.metrics["trustworthiness"])
    assert t["grid_shape"] == list(r.grid_shape) and t["grid_cells"] == r.grid_cells.tolist()
    # one input's map: z-scores against the layer's per-neuron mean and std
    x = atlas.activations("act", "step1")[:].astype(np.float64)
    std = x.std(axis=0)
    want = np.where(std > 0, (x[42] - x.mean(axis=0)) / np.where(std > 0, std, 1), 0)
    got = client.get("/api/topomap/act@label/input/42?snapshot=step1").json()
    assert got["snapshot"] == "step1" and got["input_id"] == 42
    np.testing.assert_allclose(got["values"], want, atol=1e-3)
    assert client.get("/api/topomap/act@label/input/42").json()["snapshot"] == "step2"
    for bad in ("nope@label", "act@label/input/300", "act@label/input/x", "act@label/input/1?snapshot=zz"):
        assert client.get(f"/api/topomap/{bad}").status_code == 404, bad
    # any categorical column paints the map: NAP per value, as the stored maps are made
    groupings = client.get("/api/groupings").json()
    pred = atlas.outputs("step2")["pred"].to_numpy()
    # the untrained tiny CNN predicts two classes and is never right in step2, but right for some
    # inputs in step1: outputs are judged over every snapshot, since the slider paints any of them
    # pred is offered by name (pred_name; these classes are named by their index)
    assert groupings == {"pred_name": ["1", "3"], "correct": ["False", "True"]} and not atlas.inputs["correct"].any()
    g = client.get("/api/topomap/act@label/groups/pred_name?snapshot=step2").json()
    assert g["groups"] == ["1", "3"] and g["counts"] == [int((pred == 1).sum()), int((pred == 3).sum())]
    x2 = atlas.activations("act", "step2")[:].astype(np.float64)
    means = np.stack([x2[pred == int(v)].mean(axis=0) for v in g["groups"]])
    for v, want_v in zip(g["groups"], means - means.mean(axis=0)):
        np.testing.assert_allclose(g["values"][v], want_v, atol=1e-3)
    assert sum(g["counts"]) == len(x)
    assert client.get("/api/topomap/act@label/groups/input_id").status_code == 404
    # a Mapper node's map: the z-score of its members' mean activation, over every member
    members = load_mapper(atlas, "act").members()
    ids = np.unique(members.loc[members["node"] == 2, "input_id"])
    want = np.where(std > 0, (x[ids].mean(axis=0) - x.mean(axis=0)) / np.where(std > 0, std, 1), 0)
    got = client.get("/api/topomap/act@label/mapper/act/2?snapshot=step1").json()
    assert got["n_inputs"] == len(ids) > 1 and got["node"] == 2
    np.testing.assert_allclose(got["values"], want, atol=1e-3)
    for bad in ("act@label/mapper/act/9999", "act@label/mapper/nope/0", "act@label/mapper/act/x"):
        assert client.get(f"/api/topomap/{bad}").status_code == 404, bad


def test_mapper(client, atlas):
    got = client.get("/api/mapper/act").json()
    r = load_mapper(atlas, "act")
    assert len(got["nodes"]) == r.graph.n_nodes > 0
    for node, (_, row) in zip(got["nodes"], r.nodes.iterrows()):
        assert node["id"] == row["node"] and node["size"] == row["size"] and node["dominant"] == row["dominant"]
        assert node["purity"] == pytest.approx(row["purity"]) and node["classes"] == row["classes"]
        assert {"accuracy", "mean_lens"} <= set(node)
    assert [(e["source"], e["target"], e["shared"]) for e in got["edges"]] == \
        [tuple(map(int, (*e, s))) for e, s in zip(r.graph.edges, r.graph.shared)]
    assert got["summary"]["n_nodes"] == r.summary()["n_nodes"]
    members = pa.ipc.open_stream(client.get("/api/mapper/act/members").content).read_all().to_pandas()
    pd.testing.assert_frame_equal(members, r.members(), check_dtype=False)
    as_json = client.get("/api/mapper/act/members?format=json").json()
    assert as_json["input_id"] == r.members()["input_id"].tolist()
    f = client.get("/api/mapper/conv/flow/act").json()
    want = flow(load_mapper(atlas, "conv"), r)
    assert f["source_layer"] == "conv" and f["target_layer"] == "act"
    assert [(l["source"], l["target"], l["value"]) for l in f["links"]] == \
        list(zip(want["node_a"], want["node_b"], want["shared"]))
    assert {n["id"] for n in f["sources"]} == set(want["node_a"])
    for bad in ("nope", "..", "act/flow/nope", "act/members?format=csv"):
        assert client.get(f"/api/mapper/{bad}").status_code in (400, 404), bad


def test_concepts(client, atlas):
    got = client.get("/api/concepts/step2").json()
    r = load_concepts(atlas, "step2")
    assert got["layers"] == r.layers == ["conv", "act", "head"]
    assert len(got["neurons"]) == len(r.neurons)
    n0 = got["neurons"][0]
    assert set(n0) == {"id", "layer", "unit", "cluster", "silent", "x", "y"}
    assert [n["cluster"] for n in got["neurons"]] == r.neurons["cluster"].tolist()
    assert [c["members"] for c in got["clusters"]] == [m.tolist() for m in r.clusters["members"]]
    assert [c["describe"] for c in got["clusters"]] == r.clusters["describe"].tolist()
    assert len(got["coherence"]) == len(r.coherence)
    assert set(got["graphs"]) == set(r.graphs) and got["graphs"]
    name = next(iter(r.graphs))
    assert len(got["graphs"][name]["nodes"]) == len(r.graphs[name].nodes)
    assert len(got["graphs"][name]["edges"]) == len(r.graphs[name].edges)
    live = int(np.flatnonzero(~r.neurons["silent"].to_numpy())[0])
    near = client.get(f"/api/concepts/step2/nearest/{live}?k=3").json()
    assert [n["neuron"] for n in near] == r.nearest(live, 3)["neuron"].tolist()
    assert client.get("/api/concepts/step1").json()["snapshot"] == "step1"
    for bad in ("nope", "step2/nearest/9999", "step2/nearest/x"):
        assert client.get(f"/api/concepts/{bad}").status_code == 404, bad


def test_findings_are_served_and_a_failing_rule_is_an_error_not_an_empty_list(atlas, static, tmp_path,
                                                                              monkeypatch):
    from neurocarta import findings as rules

    want = rules.findings(atlas)
    assert want  # the tiny atlas has Mapper graphs with class regions: separation findings
    assert TestClient(create_app(atlas.root)).get("/api/findings").json() == json.loads(json.dumps(want))

    def broken(a, snapshot=None):
        raise RuntimeError("a rule failed\non two lines")

    monkeypatch.setattr(rules, "mislabel_findings", broken)
    r = TestClient(create_app(atlas.root)).get("/api/findings")
    # the shape of every error of the server: {"error": one line}, here with the cause
    assert r.status_code == 500 and list(r.json()) == ["error"]
    assert "RuntimeError: a rule failed on two lines" in r.json()["error"] and "\n" not in r.json()["error"]
    # the export leaves the payload out and carries the same message for the offline viewer
    data = _static_of(export_html(atlas, tmp_path / "view.html", static_dir=static).read_text())
    assert "/api/findings" not in data
    assert data["/api/manifest"]["export"]["errors"] == {"/api/findings": r.json()["error"]}


def test_the_api_paths_are_those_of_routes_json(atlas):
    """One place for the paths: the app serves exactly the routes of routes.json (which the
    front end and the export read), and the export's keys are built from the same file."""
    from neurocarta.viewer.routes import ROUTES_FILE, path, routes

    served = {r.path for r in create_app(atlas.root).routes if r.path.startswith("/api")}
    assert served == set(routes().values())
    assert set(json.loads(ROUTES_FILE.read_text())) - set(routes()) == {"_comment"}
    assert path("patches", snapshot="step2", layer="features.block4", neuron=7) == \
        "/api/patches/step2/features.block4/7.png"
    with pytest.raises(KeyError, match="takes"):
        path("mapper", layr="act")


TRAVERSALS = ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
              "/api/thumbnail/..%2F..%2Fmanifest.json", "/api/thumbnail/..%2F..%2F..%2Fetc%2Fpasswd",
              "/api/mapper/..", "/api/mapper/..%2F..%2Fmanifest.json", "/api/mapper/%2e%2e/members",
              "/api/topomap/..%2F..%2Fmanifest.json", "/api/concepts/..%2F..%2Fmanifest.json",
              "/api/patches/step2/..%2F..%2Fmanifest.json/0.png", "/assets/..%2F..%2F..%2Fetc%2Fpasswd",
              "/assets/%2e%2e/%2e%2e/secret.txt", "/link.txt", "/..%2fmanifest.json", "/%2fetc%2fpasswd",
              "/etc/passwd", "/api/../../etc/passwd", "/assets/..%5c..%5cmanifest.json"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_a_404(client, static, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert r.headers["content-type"] == "application/json" and set(r.json()) == {"error"}
    assert b"root:" not in r.content and b"SECRET" not in r.content and b"schema_version" not in r.content


def test_only_get_and_head(client):
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("/api/manifest", "/api/thumbnail/1.png", "/", "/api/nope", "/assets/app.js"):
            r = client.request(method, path)
            assert r.status_code == 405, (method, path)
            assert "GET and HEAD" in r.json()["error"] and r.headers["allow"] == "GET, HEAD"
    head = client.head("/api/manifest")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 100
    assert client.head("/api/thumbnail/1.png").status_code == 200


def test_front_end_files(client, atlas, tmp_path):
    r = client.get("/")
    assert r.status_code == 200 and r.text == INDEX and r.headers["content-type"].startswith("text/html")
    js = client.get("/assets/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "immutable" in js.headers["cache-control"]
    assert client.get("/assets/missing.js").status_code == 404
    assert client.get("/api/nope").json() == {"error": "no API endpoint /api/nope"}
    # without built assets the page says how to build them, and the API still answers
    bare = TestClient(create_app(atlas.root, static_dir=tmp_path))
    page = bare.get("/")
    assert page.status_code == 200 and "make web" in page.text
    assert bare.get("/api/manifest").status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_defaults_and_a_port_in_use(atlas):
    from neurocarta.cli import build_parser

    a = build_parser().parse_args(["serve", "x"])
    assert (a.host, a.port, a.open) == ("127.0.0.1", 8765, False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = nc_cli("serve", atlas.root, "--port", port)
        assert _one_line_error(r) == f"neurocarta: error: port {port} is in use; pick another with --port"
    r = nc_cli("serve", atlas.root.parent / "missing", "--port", _free_port())
    assert "missing" in _one_line_error(r)


def test_serve_answers_on_127_0_0_1(atlas):
    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "neurocarta", "serve", str(atlas.root), "--port", str(port)],
                            env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line
        deadline = time.time() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/manifest", timeout=5)
                break
            except httpx.TransportError:
                assert time.time() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["n_inputs"] == 300
        assert httpx.post(f"http://127.0.0.1:{port}/api/manifest").status_code == 405
        assert httpx.head(f"http://127.0.0.1:{port}/api/manifest").content == b""
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _static_of(html: str) -> dict:
    m = re.search(r"<script>window\.__NC_STATIC__=(.*?);</script>", html, flags=re.S)
    assert m, "no __NC_STATIC__"
    return json.loads(m.group(1))  # "<\/" is a valid JSON escape of "</"


def test_export_writes_one_self_contained_file(atlas, static, tmp_path, client):
    out = export_html(atlas, tmp_path / "view.html", static_dir=static)
    html = out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["view.html"]
    assert "/assets/" not in html.split("window.__NC_STATIC__")[0] + html.split(";</script>", 1)[1].replace(
        "url(data:", "")
    assert "document.title = 'viewer '" in html and "<\\/script>'" in html  # the script, inlined and safe
    assert "url(data:image/svg+xml;base64," in html  # the stylesheet with its asset
    data = _static_of(html)
    manifest = client.get("/api/manifest").json()
    assert {k: v for k, v in data["/api/manifest"].items() if k != "export"} == manifest
    assert data["/api/manifest"]["export"]["sample"] is None
    for path in ("/api/findings", "/api/topomap", "/api/topomap/act@label", "/api/mapper/act",
                 "/api/mapper/conv/flow/act", "/api/concepts/step2", "/api/concepts/step2/nearest/3?k=10",
                 "/api/topomap/act@label/input/5", "/api/mapper/act/members?format=json",
                 "/api/inputs?offset=0&limit=1000&format=json"):
        assert data[path] == client.get(path).json(), path
    assert data["/api/thumbnail/299.png"].startswith("data:image/jpeg;base64,")
    assert data["/api/patches/step2/conv/5.png"].startswith("data:image/png;base64,")
    thumbs = [k for k in data if k.startswith("/api/thumbnail/")]
    assert len(thumbs) == 300

    small = _static_of(export_html(atlas, tmp_path / "small.html", static_dir=static, sample=40, seed=1).read_text())
    assert small["/api/manifest"]["export"]["sample"] == 40
    rows = small["/api/inputs?offset=0&limit=1000&format=json"]
    assert len(rows) == 40 and len([k for k in small if k.startswith("/api/thumbnail/")]) == 40
    assert [r["input_id"] for r in rows] == small["/api/manifest"]["export"]["inputs"]


def test_export_refuses_above_the_cap_and_without_assets(atlas, static, tmp_path):
    with pytest.raises(UserError, match=r"above the 0\.01 MB cap \(--max-mb\).*--sample N"):
        export_html(atlas, tmp_path / "big.html", static_dir=static, max_mb=0.01)
    assert not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(UserError, match="make web"):
        export_html(atlas, tmp_path / "x.html", static_dir=tmp_path / "empty")
    r = nc_cli("export", atlas.root, "--html", tmp_path / "c.html", "--max-mb", "0.01", "--quiet")
    line = _one_line_error(r)
    assert ("0.01 MB cap" in line and "--sample" in line) or "make web" in line
