"""Installing an extra keeps the CPU torch (issue 14, bug 6).

Each test asks this venv's pip what it *would* install (``--dry-run --report -``), so nothing is
installed: PyPI's torchvision installs but does not import beside the CPU torch, and a real install
could replace torch for the rest of the suite. The dry runs read the package registries.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import neurocarta

# the source checkout of the imported package (src/neurocarta/__init__.py -> the repository root)
ROOT = Path(neurocarta.__file__).resolve().parents[2]
CONSTRAINTS = "constraints.txt"  # the file `make extras` passes to pip with -c
TORCH_EXTRAS = ["torchvision", "timm", "text", "imagenet"]


def _extras() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return sorted(tomllib.load(f)["project"]["optional-dependencies"])


def _dry_run(extras: str, constrained: bool) -> list[tuple[str, str]]:
    """(name, version) of every distribution pip would install or replace for ``-e .[extras]``."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-"]
    if constrained:
        cmd += ["-c", CONSTRAINTS]  # exactly what `make extras EXTRAS=...` runs, from the same folder
    r = subprocess.run([*cmd, "-e", f".[{extras}]"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"pip failed for [{extras}]: " + r.stderr.strip()[-2000:]
    return [(i["metadata"]["name"].lower(), i["metadata"]["version"]) for i in json.loads(r.stdout)["install"]]


def _gpu_or_torch(installs: list[tuple[str, str]]) -> list[str]:
    """The packages that would replace the CPU torch or bring a GPU stack with them."""
    return [f"{n}=={v}" for n, v in installs
            if n == "torch" or n.startswith("nvidia-") or "cuda" in n or n == "triton"]


@pytest.fixture(scope="module")
def constrained_runs() -> dict[str, list[tuple[str, str]]]:
    """One constrained dry run per extra, all at once: each is mostly waiting on the registry
    (four at a time took two rounds of that wait, 109 s of the suite on the slow machine)."""
    extras = _extras()
    with ThreadPoolExecutor(max_workers=len(extras)) as pool:
        return dict(zip(extras, pool.map(lambda e: _dry_run(e, constrained=True), extras)))


def test_the_venv_holds_the_pinned_cpu_torch():
    pins = [line.strip() for line in (ROOT / CONSTRAINTS).read_text().splitlines() if line.startswith("torch==")]
    assert pins == ["torch==2.13.0"]
    # 2.13.0+cpu satisfies ==2.13.0, so pip keeps it rather than fetching PyPI's CUDA build
    assert importlib.metadata.version("torch").split("+")[0] == "2.13.0"


@pytest.mark.slow
def test_every_extra_with_the_make_constraint_keeps_the_cpu_torch(constrained_runs):
    assert set(constrained_runs) >= {"torchvision", "timm", "text", "imagenet", "s3", "gcs", "dev"}
    offending = {e: _gpu_or_torch(runs) for e, runs in constrained_runs.items() if _gpu_or_torch(runs)}
    assert offending == {}
    versions = dict(constrained_runs["timm"])
    assert versions.get("torchvision") == "0.28.0", versions  # the release built for torch 2.13.0


@pytest.mark.slow
def test_the_pins_alone_keep_the_cpu_torch():
    """`pip install -e '.[torchvision]'` without the constraint, as the error hints say: before the
    pins it pulled torch 2.14.1+cu130 and 18 nvidia packages."""
    assert _gpu_or_torch(_dry_run(",".join(TORCH_EXTRAS), constrained=False)) == []
