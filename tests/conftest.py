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
