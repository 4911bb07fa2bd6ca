import functools
import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write the demo-cnn cache into the user's home from tests."""
    cache = tmp_path_factory.getbasetemp() / "nc-cache"
    monkeypatch.setenv("NEUROCARTA_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def run_env() -> dict:
    """Environment for CLI subprocesses: the tests folder importable for py: specs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.fixture(scope="session")
def demo_atlas(tmp_path_factory):
    """The demo's own model and data: demo-cnn trained as `neurocarta demo` trains it (shapes,
    10,000 images, 4 epochs, about 1.5 minutes on 2 cores, with the demo's planted shortcut and
    label noise), every demo layer captured with the final weights. Built once per test session,
    in a private cache."""
    import neurocarta as nc
    from neurocarta.data import load_data
    from neurocarta.demo import demo_data
    from neurocarta.models.demo_cnn import DEFAULT_LAYERS, load_demo_cnn

    source = load_data(demo_data())  # the demo's data: 10,000 images, seed 0, its planted flaws
    bundle = load_demo_cnn(source, epochs=4, cache_dir=tmp_path_factory.mktemp("demo-cache"), progress=False)
    return nc.extract(bundle, source, tmp_path_factory.mktemp("demo") / "atlas", layers=list(DEFAULT_LAYERS),
                      progress=False)


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs `pytest -n 2 --dist loadfile`: each test file on one worker, so a module's
    fixtures (a trained demo-cnn, a text atlas) are built once. xdist runs one session per worker,
    so the session's `demo_atlas` would be trained once per worker that needs it: the files that use
    it form one unit instead, and the demo's 10,000-image model is trained once in all.
    (Not with xdist_group marks: xdist 3.8 writes the group into a node id field pytest 9 no longer reads.)"""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath

    @functools.cache
    def unit_of(file: str) -> str:
        return "demo_atlas" if "demo_atlas" in (root / file).read_text() else file

    class DemoAtlasOnce(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid.split("::")[0])

    return DemoAtlasOnce(config, log)
