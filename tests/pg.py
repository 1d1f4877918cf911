"""A throwaway PostgreSQL server for a test session: ``initdb`` + ``pg_ctl`` in a temporary directory.

One server per pytest process (so one per xdist worker), started on first use. It listens on 127.0.0.1 on a
free port with its unix socket in its own directory, runs with durability off (``fsync=off``,
``synchronous_commit=off``, ``full_page_writes=off``) and is stopped and deleted at the end of the session.
PostgreSQL refuses to run as root, so under uid 0 every server command runs as the ``postgres`` system user
(``runuser``) and the directory is handed to that user; it is created under the system temp dir because
pytest's own base temp (``/tmp/pytest-of-root``) is private to root.

The binaries come from ``$PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin``, else ``pg_ctl`` on ``PATH``.
"""

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

from espcore.warehouse import PostgresWarehouse

SERVER_USER = "postgres"  # the system account the server runs as when the tests run as root
DB_USER = "espcore_test"
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "60",
    "shared_buffers": "32MB",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


class PostgresUnavailable(RuntimeError):
    """The server binaries are not installed."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_pg_bin() -> Path | None:
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bin_dir: Path
    root: Path
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    run_as: str | None = None
    startup_s: float = 0.0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            self._cmd(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            DB_USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",  # the socket lives in a 0700 directory
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",  # code point order, Unicode lower()
            "--no-sync",
        )
        pwfile.unlink()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/pg.py\n")
            conf.write(f"unix_socket_directories = '{self.root}'\n")
            for key, value in SETTINGS.items():
                conf.write(f"{key} = {value}\n")

    def start(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self.port = _free_port()
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    f"-p {self.port}",
                    "-w",
                    "-t",
                    "30",
                    "start",
                )
                return
            except RuntimeError:
                if attempt == attempts - 1:  # another process may have taken the port in between: retry
                    raise

    def stop(self) -> None:
        if self.data_dir.joinpath("postmaster.pid").exists():
            cmd = self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
            subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url(), autocommit=True, connect_timeout=10)

    @contextmanager
    def schemas(self) -> Iterator[Callable[[], PostgresWarehouse]]:
        """A factory of warehouses, each in a fresh schema with its own schema for the product's tables (so tests
        never share state); closed and dropped afterwards."""
        made: list[tuple[PostgresWarehouse, str]] = []

        def make() -> PostgresWarehouse:
            schema = f"t_{uuid.uuid4().hex[:16]}"
            with self.admin() as con:
                con.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
            wh = PostgresWarehouse(self.url(), schema=schema, own_schema=f"{schema}_esp")
            made.append((wh, schema))
            return wh

        try:
            yield make
        finally:
            for wh, _ in made:
                wh.close()
            if made:
                with self.admin() as con:
                    for wh, schema in made:
                        for name in (schema, wh.own_schema):
                            con.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(name)))


@contextmanager
def postgres_server() -> Iterator[PgServer]:
    """Start a server, yield it, stop and delete it. Raises :class:`PostgresUnavailable` without binaries."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in $PG_BIN, /usr/lib/postgresql/*/bin or PATH"
        )
    run_as = SERVER_USER if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="espcore-pg-"))
    server = PgServer(bin_dir, root, run_as=run_as)
    started = time.monotonic()
    try:
        server.init()
        server.start()
        server.startup_s = time.monotonic() - started
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
