"""Serve a sandbox over real HTTP on 127.0.0.1 (uvicorn in a background thread, or a blocking CLI)."""

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class SandboxServer:
    """A running loopback server for one sandbox app. Use as a context manager or call ``stop()``."""

    def __init__(self, app: Any, port: int | None = None, *, log_level: str = "warning") -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host=LOOPBACK, port=self.port, log_level=log_level, access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"sandbox-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> "SandboxServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> "SandboxServer":
        return self if self._thread.is_alive() else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(app: Any, port: int | None = None, *, log_level: str = "warning") -> SandboxServer:
    """Start ``app`` on 127.0.0.1 (a free port unless given) and return the running server."""
    return SandboxServer(app, port, log_level=log_level).start()


def quiet_uvicorn_errors() -> None:
    """Simulated connection resets are logged by uvicorn as errors; keep test output readable."""
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
