"""Where an atlas lives: a local folder (the default) or any fsspec URL (``memory://``,
``s3://``, ``gs://``...).

The store reads and writes through :class:`Location` only, so one code path serves both.
Local folders keep their crash safety: files are written beside their place, fsynced and
renamed in. Object stores have no renames, but a single object's PUT is atomic, so files
there are written in one piece and the commit order (data first, ``progress.json`` then
``manifest.json`` last) is what keeps a half-written atlas from ever looking complete.

Credentials for remote stores come from the filesystem library's usual sources (for s3fs:
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_PROFILE``; for gcsfs:
``GOOGLE_APPLICATION_CREDENTIALS`` or the gcloud login), never from the URL; :meth:`Location.safe`
is what messages print, with any ``user:password@`` part removed.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import pandas as pd

from ..errors import UserError

_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def is_url(target: Any) -> bool:
    """Whether ``target`` names a remote fsspec location (``file://`` counts as local)."""
    s = str(target)
    return "://" in s and not s.startswith("file://")


def as_location(target: "Location | str | Path") -> "Location":
    """``target`` itself when it is a Location, else the Location it names."""
    return target if isinstance(target, Location) else Location(target)


class Location:
    """A folder that holds an atlas, local or remote; paths below it are ``/``-joined strings."""

    def __init__(self, target: str | Path):
        s = str(target)
        self.remote = is_url(s)
        if self.remote:
            import fsspec

            protocol = s.split("://", 1)[0]
            try:
                self.fs, path = fsspec.core.url_to_fs(s)
            except ImportError as e:
                extra = _EXTRAS.get(protocol)
                hint = f"pip install 'neurocarta[{extra}]'" if extra else f"install the fsspec backend for {protocol}://"
                raise UserError(f"cannot open {protocol}:// stores: {e.__class__.__name__}: {str(e).splitlines()[0]}; {hint}") from e
            except ValueError as e:
                raise UserError(f"unknown store URL {self._strip(s)!r} ({e}); use a local path or an fsspec URL "
                                "such as memory://, s3:// or gs://") from e
            self.path = path.rstrip("/")
            self.url = s.rstrip("/")
            self.local: Path | None = None
        else:
            self.local = Path(s.removeprefix("file://"))
            self.url = str(self.local)
            self.fs = None
            self.path = str(self.local)

    # ------------------------------------------------------------ naming
    @staticmethod
    def _strip(url: str) -> str:
        return re.sub(r"://[^/@]*@", "://", url)

    @property
    def safe(self) -> str:
        """The location for messages and logs: no credentials, ever."""
        return self._strip(self.url)

    def __str__(self) -> str:
        return self.safe

    def __repr__(self) -> str:
        return f"Location({self.safe!r})"

    def url_of(self, rel: str = "") -> str:
        """The URL (or local path) of ``rel`` below this location, as Zarr and pandas take it."""
        if not rel:
            return self.url
        return str(self.local / rel) if self.local is not None else f"{self.url}/{rel}"

    def _p(self, rel: str) -> str:
        return f"{self.path}/{rel}" if rel else self.path

    # ------------------------------------------------------------ queries
    def exists(self, rel: str = "") -> bool:
        if self.local is not None:
            return (self.local / rel).exists()
        return self.fs.exists(self._p(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) of the entries of folder ``rel``; empty when it does not exist."""
        if self.local is not None:
            d = self.local / rel
            return sorted(p.name for p in d.iterdir()) if d.is_dir() else []
        if not self.fs.isdir(self._p(rel)):
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in self.fs.ls(self._p(rel), detail=False))

    def size(self) -> int:
        """Bytes stored below this location."""
        if self.local is not None:
            return sum(p.stat().st_size for p in self.local.rglob("*") if p.is_file())
        return int(self.fs.du(self.path, total=True))

    # ------------------------------------------------------------ reading
    def read_bytes(self, rel: str) -> bytes:
        if self.local is not None:
            return (self.local / rel).read_bytes()
        return self.fs.cat_file(self._p(rel))

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode()

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> pd.DataFrame:
        if self.local is not None:
            return pd.read_parquet(self.local / rel, columns=columns)
        return pd.read_parquet(io.BytesIO(self.read_bytes(rel)), columns=columns)

    # ------------------------------------------------------------ writing
    def mkdir(self, rel: str = "") -> None:
        if self.local is not None:
            (self.local / rel).mkdir(parents=True, exist_ok=True)
        else:
            self.fs.makedirs(self._p(rel), exist_ok=True)

    def open(self, rel: str):
        """A file below this location, opened for binary reading."""
        if self.local is not None:
            return open(self.local / rel, "rb")
        return self.fs.open(self._p(rel), "rb")

    @contextmanager
    def writing(self, rel: str) -> Iterator[BinaryIO]:
        """A binary file to write ``rel`` whole, so that readers see the old one or the new
        one, never half. Local: a temporary file beside it, fsynced, renamed over it when the
        block ends (removed on an error). Remote: one object, written when the block ends."""
        if self.local is None:
            f = self.fs.open(self._p(rel), "wb")
            try:
                yield f
            except BaseException:
                getattr(f, "discard", lambda: None)()  # an unclosed upload is never stored
                raise
            f.close()
            return
        final = self.local / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.writing(rel) as f:
            f.write(data)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode())

    def write_parquet(self, rel: str, df: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
        self.write_bytes(rel, buf.getvalue())

    def remove(self, rel: str = "") -> None:
        """Delete a file or a folder tree below this location (nothing if it is absent)."""
        if self.local is not None:
            p = self.local / rel
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()
        elif self.fs.exists(self._p(rel)):
            self.fs.rm(self._p(rel), recursive=True)

    # ------------------------------------------------------------ zarr
    def zarr_group(self, mode: str = "r", rel: str = ""):
        import zarr

        return zarr.open_group(self.url_of(rel), mode=mode, zarr_format=3)
