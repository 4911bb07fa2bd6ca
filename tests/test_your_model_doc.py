"""docs/your-model.md, run as written, so the worked example cannot rot (issue 15).

The doc marks what the test uses with the fenced blocks' info strings:

- ```python file=NAME   the file is written into an empty folder, as the reader saves it;
- ```bash doc-test      each command runs there in order, through bash, with this venv's
                        `python` and `neurocarta` first on PATH, and must exit 0;
- ```text doc-output    an excerpt of what the commands of the block before it printed:
                        each line must appear, in order, among those output lines (whole
                        numbers exactly, decimals and percentages within a small tolerance,
                        since training on another CPU may round differently; `...` marks a cut).

A plain ```bash block is shown, not run: only `neurocarta serve`, which blocks; its command
line is parsed by the CLI and the app it serves is asked for its pages instead.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "your-model.md"
README = ROOT / "README.md"
#: a README's "first screen": what a reader sees before scrolling
FIRST_SCREEN_LINES = 30

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"\d+(?:\.\d+)?%?")


@dataclass
class Block:
    """One fenced block of the doc: its info string's words and its text."""

    info: list[str]
    text: str

    @property
    def file(self) -> str | None:
        return next((w.split("=", 1)[1] for w in self.info if w.startswith("file=")), None)


@dataclass
class Step:
    """One command the doc runs and what it printed (stdout, then stderr)."""

    command: str
    returncode: int
    output: str


@dataclass
class Shown:
    """An output excerpt of the doc and what the commands of its block printed."""

    commands: list[str]
    output: str
    excerpt: str


@dataclass
class Walkthrough:
    folder: Path
    steps: list[Step] = field(default_factory=list)
    shown: list[Shown] = field(default_factory=list)

    def step(self, prefix: str) -> Step:
        return next(s for s in self.steps if s.command.startswith(prefix))


def doc_blocks(markdown: str) -> list[Block]:
    return [Block(m.group(1).split(), m.group(2)) for m in FENCE.finditer(markdown)]


def shell_commands(text: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _close(expected: str, actual: str) -> bool:
    """Whole numbers (counts, shapes, ids) must be equal; decimals and percentages may move a
    little, since the trained weights differ in the last bits from one CPU to another."""
    if "." not in expected and "%" not in expected:
        return expected == actual
    scale = 100.0 if expected.endswith("%") else 1.0
    e, a = float(expected.rstrip("%")) / scale, float(actual.rstrip("%")) / scale
    return abs(e - a) <= max(0.05, 0.15 * abs(e))


def same_line(expected: str, actual: str) -> bool:
    """``actual`` reads as ``expected``: the same words, and numbers as :func:`_close` says."""
    expected, actual = expected.rstrip(), actual.rstrip()
    if NUMBER.split(expected) != NUMBER.split(actual):
        return False
    return all(_close(e, a) for e, a in zip(NUMBER.findall(expected), NUMBER.findall(actual)))


def missing_lines(excerpt: str, output: str) -> list[str]:
    """The excerpt's lines not found, in order, among the output's lines (progress bars
    redraw with carriage returns, so those split lines too)."""
    lines = re.split(r"[\r\n]+", output)
    missing, at = [], 0
    for want in excerpt.splitlines():
        if not want.strip() or want.strip() == "...":
            continue
        hit = next((i for i in range(at, len(lines)) if same_line(want, lines[i])), None)
        if hit is None:
            missing.append(want)
        else:
            at = hit + 1
    return missing


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory) -> Walkthrough:
    """Every file and command of the doc, in an empty folder, as a reader would run them
    (about a minute: training a tiny CNN, extraction, and `map`, whose UMAP compiles)."""
    folder = tmp_path_factory.mktemp("your-model")
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               MPLBACKEND="Agg", HF_HUB_OFFLINE="1", NEUROCARTA_CACHE=str(folder / ".nc-cache"))
    run = Walkthrough(folder)
    blocks = doc_blocks(DOC.read_text())
    for i, block in enumerate(blocks):
        if block.file:
            (folder / block.file).write_text(block.text)
        if "doc-test" not in block.info:
            continue
        commands = shell_commands(block.text)
        for command in commands:
            done = subprocess.run(command, shell=True, executable="/bin/bash", cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=600)
            output = done.stdout + done.stderr
            if done.returncode != 0:
                pytest.fail(f"docs/your-model.md: `{command}` exited {done.returncode}:\n{output[-3000:]}")
            run.steps.append(Step(command, done.returncode, output))
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        if following is not None and "doc-output" in following.info:
            printed = "\n".join(s.output for s in run.steps[-len(commands):])
            run.shown.append(Shown(commands, printed, following.text))
    return run


def test_the_doc_runs_the_whole_path(walkthrough):
    """From the user's own model file to the exported viewer, every step is run (and exited 0)."""
    commands = [s.command for s in walkthrough.steps]
    for wanted in ("python train.py", "neurocarta extract --model py:mynet:build --checkpoint ckpt.pt --data npz:",
                   "neurocarta info atlas", "neurocarta map atlas", "neurocarta findings atlas",
                   "neurocarta export atlas --html"):
        assert any(c.startswith(wanted) for c in commands), (wanted, commands)
    assert all(s.returncode == 0 for s in walkthrough.steps)
    for name in ("mynet.py", "make_data.py", "train.py", "data.npz", "ckpt.pt"):
        assert (walkthrough.folder / name).is_file(), name


def test_the_outputs_shown_are_the_outputs_printed(walkthrough):
    assert len(walkthrough.shown) == 7  # layers, extract, info, columns, map, findings, export
    for shown in walkthrough.shown:
        missing = missing_lines(shown.excerpt, shown.output)
        assert not missing, f"`{'; '.join(shown.commands)}` did not print, as the doc shows:\n" + \
            "\n".join(missing) + f"\n--- it printed:\n{shown.output[-3000:]}"


def test_the_atlas_is_complete_with_the_checkpoints_accuracy(walkthrough):
    from neurocarta.store import open_atlas
    from neurocarta.store.info import atlas_info

    info = atlas_info(open_atlas(walkthrough.folder / "atlas"))
    assert info["complete"] and info["n_inputs"] == 600
    assert info["checkpoint"] == "ckpt.pt"
    assert [layer["name"] for layer in info["layers"]] == ["conv_relu", "fc_relu"]
    (accuracy,) = info["accuracy"]
    # trained: far above the 37% of always answering the commonest class, and not at chance
    assert accuracy["accuracy"] > 0.8 and not accuracy["at_chance"]
    assert re.search(r"^accuracy +final \d+\.\d%; 600 labelled inputs$", walkthrough.step("neurocarta info").output,
                     re.MULTILINE)
    # the npz's attributes survived into the input table, with their roles
    assert "colour      attribute" in walkthrough.step("neurocarta columns").output
    assert "split       bookkeeping" in walkthrough.step("neurocarta columns").output


def test_the_findings_name_the_planted_shortcut(walkthrough):
    findings = json.loads((walkthrough.folder / "findings.json").read_text())
    assert isinstance(findings, list) and all({"kind", "text", "view", "evidence"} <= set(f) for f in findings)
    shortcuts = [f for f in findings if f["kind"] == "shortcut"]
    # the planted colours, each toward its own class (strongest first), one finding per cause,
    # and nothing from the unplanted site noise
    assert [(s["selection"]["group_by"], s["selection"]["group"], s["selection"]["class"]) for s in shortcuts] == [
        ("colour", "blue", "box"), ("colour", "green", "vertical")]
    assert shortcuts[0]["evidence"]["explains"] == ["red"]
    assert not any("site" in (f["selection"].get("group_by"), f["evidence"].get("attribute")) for f in findings)


def test_the_export_is_one_html_file(walkthrough):
    html = walkthrough.folder / "atlas.html"
    assert html.stat().st_size > 500_000  # thumbnails, maps and the app, inlined
    assert html.read_text(encoding="utf-8")[:200].lower().lstrip().startswith("<!doctype html")


def test_the_figures_the_doc_names_exist(walkthrough):
    named = set(re.findall(r"atlas/figures/[\w@./-]+\.png", DOC.read_text()))
    assert len(named) >= 4
    for path in sorted(named):
        assert (walkthrough.folder / path).is_file(), path


def test_serve_is_documented_and_serves_this_atlas(walkthrough):
    """`serve` blocks, so it is not run: its documented line must parse, and the app it would
    serve answers for this atlas."""
    from fastapi.testclient import TestClient

    from neurocarta.cli import build_parser
    from neurocarta.viewer.app import create_app

    shown = [c for b in doc_blocks(DOC.read_text()) if "doc-test" not in b.info and b.info[:1] == ["bash"]
             for c in shell_commands(b.text)]
    assert shown == ["neurocarta serve atlas"]
    args = build_parser().parse_args(shlex.split(shown[0])[1:])
    assert (args.command, args.atlas, args.host, args.port) == ("serve", "atlas", "127.0.0.1", 8765)
    client = TestClient(create_app(walkthrough.folder / args.atlas))
    assert client.get("/api/manifest").status_code == 200
    assert any(f["kind"] == "shortcut" for f in client.get("/api/findings").json())


def test_the_readme_links_the_walkthrough_on_its_first_screen():
    first_screen = README.read_text().splitlines()[:FIRST_SCREEN_LINES]
    assert any("(docs/your-model.md)" in line for line in first_screen)


def test_the_doc_marks_the_blocks_it_means():
    """A typo in an info string would silently skip a step; pin what the doc runs."""
    blocks = doc_blocks(DOC.read_text())
    assert [b.file for b in blocks if b.file] == ["mynet.py", "make_data.py", "train.py"]
    outputs = [i for i, b in enumerate(blocks) if "doc-output" in b.info]
    assert outputs and all("doc-test" in blocks[i - 1].info for i in outputs)
    assert {w for b in blocks for w in b.info} <= {"python", "bash", "text", "doc-test", "doc-output",
                                                   "file=mynet.py", "file=make_data.py", "file=train.py"}


@pytest.mark.parametrize("expected, actual, same", [
    ("accuracy  final 89.0%; 600 labelled inputs", "accuracy  final 87.5%; 600 labelled inputs", True),
    ("accuracy  final 89.0%; 600 labelled inputs", "accuracy  final 37.2%; 600 labelled inputs", False),
    ("accuracy  final 89.0%; 600 labelled inputs", "accuracy  final 89.0%; 599 labelled inputs", False),
    ("conv_relu  ReLU       tensor (16, 16, 16)", "conv_relu  ReLU       tensor (16, 16, 8)", False),
    ("wrote atlas.html (3.7 MB)", "wrote atlas.html (3.9 MB)", True),
    ("colour      attribute", "colour      bookkeeping", False),
])
def test_output_lines_compare_words_exactly_and_decimals_closely(expected, actual, same):
    assert same_line(expected, actual) is same
