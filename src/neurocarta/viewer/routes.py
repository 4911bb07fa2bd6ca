"""The viewer's API paths, read from ``routes.json`` (the one place they are written).

The server (``app.py``) registers its endpoints from these templates, the offline export
(``export.py``) keys its payloads by the same paths, and the front end
(``web/src/lib/data.ts``) builds its requests from the same file, so a path changes in one
place. ``{name}`` in a template is a path parameter; queries are not part of a route.
"""

from __future__ import annotations

import json
import string
from functools import cache
from pathlib import Path

ROUTES_FILE = Path(__file__).resolve().parent / "routes.json"


@cache
def routes() -> dict[str, str]:
    """Route name -> path template (keys starting with ``_`` are comments and left out)."""
    table = json.loads(ROUTES_FILE.read_text(encoding="utf-8"))
    return {name: path for name, path in table.items() if not name.startswith("_")}


def template(route: str) -> str:
    """The path template of ``route``, as FastAPI registers it (``/api/mapper/{layer}``)."""
    return routes()[route]


def path(route: str, /, **params: object) -> str:
    """The path of ``route`` with its parameters filled in, unencoded (the export's keys and
    the URLs a payload links to): ``path("mapper", layer="head.relu")``. (``route`` is
    positional-only: routes have a parameter called ``name``.)

    Every parameter of the template must be given, and nothing else: a typo in a name fails
    here instead of producing a path no endpoint answers.
    """
    text = template(route)
    wanted = {field for _, field, _, _ in string.Formatter().parse(text) if field}
    if wanted != set(params):
        raise KeyError(f"route {route!r} takes {sorted(wanted)}, got {sorted(params)}")
    return text.format(**params)
