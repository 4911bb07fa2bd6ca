"""The browser viewer: a read-only FastAPI app over an atlas (``app.py``), the payloads it
serves (``data.py``), and the offline single-file export (``export.py``). The front end is
built from ``web/`` into ``viewer/static/``."""

from .app import bind_socket, create_app, serve
from .data import ViewerData
from .export import export_html

__all__ = ["ViewerData", "bind_socket", "create_app", "export_html", "serve"]
