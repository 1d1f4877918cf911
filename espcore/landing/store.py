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
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def is_remote(root: str | os.PathLike[str]) -> bool:
    """True for an object-store URI; plain paths and ``file://`` URIs are local."""
    text = os.fspath(root)
    return "://" in text and not text.startswith("file://")


def local_root(root: str | os.PathLike[str]) -> Path:
    text = os.fspath(root)
    return Path(text.removeprefix("file://")) if text.startswith("file://") else Path(text)


class RemoteLake:
    """An object-store lake root: the filesystem, the base path inside it, and user-facing locations."""

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


def read_table(lake_root: str | os.PathLike[str], location: str) -> pa.Table:
    """Read a landed file back by the location a landing reported (a local path or ``s3://…``)."""
    if is_remote(lake_root):
        lake = RemoteLake(os.fspath(lake_root))
        return pq.read_table(location.split("://", 1)[1], filesystem=lake.fs)
    return pq.read_table(location)
