"""Sandboxes embedded in a process, sharing one account per state file.

The demo and the Dagster UI run without any real provider: each process that needs a provider starts its own
loopback server (real HTTP on 127.0.0.1) over a :class:`FileStore`, so every process — CLI runs, Dagster run
workers, the webserver — sees the same sandbox account, and state persists across runs.
"""

import os
import threading
from pathlib import Path

from espcore.providers.registry import names, plugin
from espcore.sandbox.base import FileStore, MemoryStore, ProviderSandbox, StateStore
from espcore.sandbox.server import SandboxServer

#: the providers with a sandbox: every registered one
SANDBOXES: tuple[str, ...] = names()

_lock = threading.Lock()
_running: dict[tuple[str, str], tuple[ProviderSandbox, SandboxServer]] = {}


def sandbox_class(provider: str) -> type[ProviderSandbox]:
    return plugin(provider).sandbox_class()


def build_sandbox(provider: str, state_path: str | os.PathLike[str] | None = None, **kwargs: object) -> ProviderSandbox:
    """A sandbox for ``provider`` on a file store (shared) or in memory; a new account gets the demo seed."""
    store: StateStore = FileStore(state_path) if state_path else MemoryStore()
    fresh = not (state_path and Path(state_path).exists())
    sandbox = sandbox_class(provider)(store, **kwargs)  # type: ignore[arg-type]
    if fresh:
        sandbox.reset(demo=True)
        from espcore.demo import seed_demo_suppressions

        seed_demo_suppressions(sandbox)
    return sandbox


def embedded_sandbox_url(provider: str, state_path: str | os.PathLike[str]) -> str:
    """Start (once per process) a loopback server for ``provider`` over ``state_path``; return its URL."""
    key = (provider, str(Path(state_path).resolve()))
    with _lock:
        if key not in _running:
            sandbox = build_sandbox(provider, state_path)
            _running[key] = (sandbox, SandboxServer(sandbox.app).start())
        return _running[key][1].url


def stop_all() -> None:
    """Stop every embedded server of this process (tests)."""
    with _lock:
        for _, server in _running.values():
            server.stop()
        _running.clear()
