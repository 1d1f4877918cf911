"""Where the lake lives: a local folder (the default) or an object store, through ``pyarrow.fs``.

A root with a scheme — ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``abfs://…``, ``hdfs://…`` — goes through
``pyarrow.fs.FileSystem.from_uri`` (already a dependency: no fsspec needed). Options of the filesystem ride in
the URI's query (``s3://lake/esp?region=eu-central-1``, ``endpoint_override=…&scheme=http`` for an S3-compatible
store); credentials come from the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, instance
roles, ``GOOGLE_APPLICATION_CREDENTIALS``…) and are refused inside the URI, so they never reach a log, a path in
metadata or an error message.

Writes are atomic either way: a local file is written beside its target, fsynced and renamed onto it; an object
is uploaded under a temp key and moved onto its target (a server-side copy), so a failed or killed write leaves
the previous object (or none), never half of one. Locations handed to users (metadata, summaries) are
``<scheme>://<bucket>/<key>``, without the query.
"""

import contextlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


class Lake(ABC):
    """A lake root, local folder or object store: the one object the writer, the landing state and the views
    use to write atomically, read, list and locate files. Paths are ``/``-joined strings inside the root's
    filesystem (:meth:`path`); :meth:`location` is what users see and readers open. Open one with
    :func:`open_lake`."""

    #: True for an object store
    remote: bool = False

    @abstractmethod
    def path(self, *parts: str) -> str:
        """A path inside the lake's filesystem."""

    @abstractmethod
    def location(self, path: str) -> str:
        """What users see and readers open: a local path, or ``s3://bucket/prefix/…``."""

    @abstractmethod
    def write(self, path: str, write: Callable[[BinaryIO], object]) -> None:
        """Create or replace one file atomically: it appears complete or not at all (a failed or killed write
        leaves the previous file, or none)."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is none."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def files(self, prefix: str, suffix: str = ".parquet") -> list[str]:
        """Every file under ``prefix`` ending in ``suffix``, sorted."""

    @abstractmethod
    def read_table(self, location: str) -> pa.Table:
        """A Parquet file back by the location a landing reported."""

    def local_path(self, path: str) -> Path | None:
        """The file on this machine's disk, or None in an object store."""
        return None


class LocalLake(Lake):
    """A folder: files are written beside their target, fsynced, renamed onto it, and the folder fsynced."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        self.root = Path(text.removeprefix("file://")) if text.startswith("file://") else Path(text)

    def path(self, *parts: str) -> str:
        return str(self.root.joinpath(*parts))

    def location(self, path: str) -> str:
        return path

    def local_path(self, path: str) -> Path:
        return Path(path)

    def write(self, path: str, write: Callable[[BinaryIO], object]) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:12]}")  # outside every *.parquet glob
        try:
            with open(tmp, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, path: str) -> bool:
        return Path(path).exists()

    def files(self, prefix: str, suffix: str = ".parquet") -> list[str]:
        base = Path(prefix)
        return sorted(str(f) for f in base.rglob(f"*{suffix}") if f.is_file()) if base.is_dir() else []

    def read_table(self, location: str) -> pa.Table:
        return pq.read_table(location)


def open_lake(root: "str | os.PathLike[str] | Lake") -> Lake:
    """The lake a root names: an object-store URI (``s3://…``, ``gs://…``; not ``file://``) or a local folder."""
    if isinstance(root, Lake):
        return root
    text = os.fspath(root)
    if "://" in text and not text.startswith("file://"):
        return RemoteLake(text)
    return LocalLake(text)


class RemoteLake(Lake):
    """An object-store lake root: the filesystem, the base path inside it, and user-facing locations."""

    remote = True

    def __init__(self, root: str) -> None:
        parts = urlsplit(root)
        if "@" in parts.netloc:
            raise ValueError(
                f"lake root {parts.scheme}://…@{parts.netloc.rsplit('@', 1)[1]}: credentials do not belong in the "
                "URI; set them in the environment (e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
            )
        try:
            self.fs, base = pafs.FileSystem.from_uri(root)
        except (ValueError, OSError) as exc:
            raise ValueError(f"lake root {parts.scheme}://{parts.netloc}{parts.path}: {exc}") from None
        self.scheme = parts.scheme
        self.base = base.rstrip("/")

    def path(self, *parts: str) -> str:
        """A path inside the filesystem (``bucket/prefix/…``)."""
        return "/".join([self.base, *parts])

    def location(self, path: str) -> str:
        """What users see and readers open: ``s3://bucket/prefix/…``."""
        return f"{self.scheme}://{path}"

    def write(self, path: str, write: Callable[[BinaryIO], object]) -> None:
        """Create or replace one object atomically: upload to a temp key beside it, then move it into place
        (a server-side copy on S3/GCS: the target appears complete or not at all). A failed or killed upload
        leaves the previous object; the temp key (``*.tmp-…``, outside every ``*.parquet`` glob) is deleted."""
        if self.fs.type_name not in ("s3", "gcs"):  # object stores have no folders (and get no marker objects)
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with self.fs.open_output_stream(tmp) as out:
                write(out)  # type: ignore[arg-type]  (a pyarrow NativeFile is a binary file object)
            self.fs.move(tmp, path)
        finally:
            if self.exists(tmp):
                with contextlib.suppress(OSError):  # best effort: an orphan temp key is never read
                    self.fs.delete_file(tmp)

    def read_bytes(self, path: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        try:
            with self.fs.open_input_stream(path) as src:
                return src.read()
        except FileNotFoundError:
            return None

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def files(self, prefix: str, suffix: str = ".parquet") -> list[str]:
        """Every file under ``prefix`` ending in ``suffix``."""
        infos = self.fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix))

    def read_table(self, location: str) -> pa.Table:
        return pq.read_table(location.split("://", 1)[1], filesystem=self.fs)


def read_table(lake_root: "str | os.PathLike[str] | Lake", location: str) -> pa.Table:
    """Read a landed file back by the location a landing reported (a local path or ``s3://…``)."""
    return open_lake(lake_root).read_table(location)
