"""The browser viewer: a read-only FastAPI app over an atlas (``app.py``), the payloads it
serves (``data.py``), and the offline single-file export (``export.py``). The front end is
built from ``web/`` into ``viewer/static/``."""

from .app import BackgroundServer, bind_socket, create_app, serve, serve_in_background
from .data import ViewerData
from .export import export_html

__all__ = ["BackgroundServer", "ViewerData", "bind_socket", "create_app", "export_html", "serve", "serve_in_background"]
