"""The stage rules hold: import-linter's contracts (pyproject.toml) pass, a deferred import
cannot dodge them, and nothing outside the store reaches into the atlas's private parts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import neurocarta

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(package_parent: Path | None = None) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts, over the installed package or over the
    copy of it under ``package_parent``."""
    env = dict(os.environ)
    if package_parent is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package_parent), env.get("PYTHONPATH", "")])
    return subprocess.run([str(LINT), "--no-cache", "--no-logo"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_stage_rules_hold():
    run = lint()
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"Contracts: \d+ kept, 0 broken", run.stdout), run.stdout


def test_a_function_level_import_cannot_dodge_a_rule(tmp_path):
    """The same check over a copy of the package with two rules broken inside function bodies:
    a method importing the pipeline, and the store importing torch."""
    src = Path(neurocarta.__file__).parent
    copy = tmp_path / "neurocarta"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("static", "__pycache__"))
    with open(copy / "methods" / "mapper" / "cover.py", "a") as f:
        f.write("\n\ndef _sneaky():\n    from ...pipeline import build_mappers\n\n    return build_mappers\n")
    with open(copy / "store" / "layout.py", "a") as f:
        f.write("\n\ndef _sneaky():\n    import torch\n\n    return torch\n")
    run = lint(tmp_path)
    assert run.returncode != 0
    out = " ".join(run.stdout.split())  # the report wraps long lines
    assert "methods never import pipeline, viewer, capture or the store writer BROKEN" in out
    assert "reading an atlas never imports torch BROKEN" in out
    assert "neurocarta.methods.mapper.cover -> neurocarta.pipeline" in out
    assert "neurocarta.store.layout -> torch" in out


def test_nothing_outside_the_store_reads_private_atlas_parts():
    """Findings, methods, the viewer and the pipeline use Atlas's public interface only."""
    src = Path(neurocarta.__file__).parent
    private = re.compile(r"\batlas\._[a-z]")
    hits = [f"{p.relative_to(src)}:{i}: {line.strip()}"
            for p in sorted(src.rglob("*.py")) if p.relative_to(src).parts[0] != "store"
            for i, line in enumerate(p.read_text().splitlines(), 1) if private.search(line)]
    assert not hits, "\n".join(hits)
