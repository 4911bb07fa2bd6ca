"""Where the map stages stand: ``maps/_status.json`` in the atlas.

The map stages (``pipeline.MAP_STAGES``) write it as they go, so that a viewer started
before the maps are done can say what is being built ("Mapper graphs: building 2 of 5
layers") and fetch each map once its stage is done. Every write replaces the whole file
atomically (``Location.write_text``): a reader sees one state or the next, never half of one.

A stage left "running" by a process that is gone (killed, crashed) would make the viewer
wait forever; the reader reports it as "interrupted" instead (local atlases: the writer's
process id is checked).

Writes outside the map stages (feature visualizations, attributions) mark themselves in it too
(:func:`note_stored`), so that a running viewer serves what they stored.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .layout import MAP_STATUS

if TYPE_CHECKING:
    from .location import Location

PENDING, RUNNING, DONE, FAILED, INTERRUPTED = "pending", "running", "done", "failed", "interrupted"
#: states after which a stage changes no more
FINISHED = (DONE, FAILED, INTERRUPTED)


@dataclass
class StageState:
    """One stage's line in the status file."""

    name: str
    title: str
    state: str = PENDING
    done: int = 0
    total: int = 0
    unit: str = "layers"
    seconds: float | None = None
    error: str | None = None


@dataclass
class MapStatus:
    """The status of a run of map stages over one atlas, written on every change."""

    location: Location
    stages: list[StageState]
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    _started: dict[str, float] = field(default_factory=dict)

    def _stage(self, name: str) -> StageState:
        return next(s for s in self.stages if s.name == name)

    def start(self, name: str) -> None:
        self._started[name] = time.perf_counter()
        self.update(name, state=RUNNING, done=0, total=0)

    def progress(self, name: str, done: int, total: int) -> None:
        self.update(name, done=done, total=total)

    def finish(self, name: str, error: str | None = None) -> None:
        seconds = round(time.perf_counter() - self._started.get(name, time.perf_counter()), 1)
        self.update(name, state=FAILED if error else DONE, seconds=seconds, error=error)

    def update(self, name: str, **changes) -> None:
        stage = self._stage(name)
        for key, value in changes.items():
            setattr(stage, key, value)
        self.write()

    def write(self) -> None:
        payload = {"pid": self.pid, "host": self.host, "updated": time.time(),
                   "stages": [vars(s) for s in self.stages]}
        self.location.write_text(MAP_STATUS, json.dumps(payload, indent=1))


def note_stored(location: Location, what: str) -> None:
    """Record that ``what`` (feature visualizations, attributions) was stored outside the map
    stages (``neurocarta visualize`` / ``attribute``): the status file is rewritten with its
    stages, writer and pid as they stand, so its identity (:func:`status_version`) changes and a
    running viewer, whose caches are keyed by it, reads its payloads afresh."""
    payload: dict = {"stages": []}
    if location.exists(MAP_STATUS):
        try:
            payload = json.loads(location.read_text(MAP_STATUS))
        except (OSError, ValueError):
            pass  # replaced while we read it: its writer's newer state stands, ours only marks a change
    payload.update(updated=time.time(), stored=what)
    location.write_text(MAP_STATUS, json.dumps(payload, indent=1))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def read_map_status(location: Location) -> dict:
    """``{"stages": [...], "running": bool}`` from ``maps/_status.json``; no stages when the
    atlas has none (its maps were built before status files, or not at all). A stage that
    its writer left unfinished when it died reads as "interrupted"."""
    if not location.exists(MAP_STATUS):
        return {"stages": [], "running": False}
    try:
        payload = json.loads(location.read_text(MAP_STATUS))
    except (OSError, ValueError):
        return {"stages": [], "running": False}  # replaced between our exists() and read: next poll
    stages = list(payload.get("stages") or [])
    writer_gone = (location.local is not None and payload.get("host") == socket.gethostname()
                   and isinstance(payload.get("pid"), int) and not _process_alive(payload["pid"]))
    if writer_gone:
        stages = [{**s, "state": INTERRUPTED} if s.get("state") not in FINISHED else s for s in stages]
    return {"stages": stages, "running": any(s.get("state") not in FINISHED for s in stages)}


def status_version(location: Location) -> tuple | None:
    """The status file's identity (inode, mtime, size): every write replaces the file, so it
    changes with each stage's progress. ``None`` when there is none, or for a remote atlas
    (its maps are not built while it is served)."""
    if location.local is None:
        return None
    try:
        st = (location.local / MAP_STATUS).stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
