import os
import tempfile
from collections.abc import Callable, Iterator

import pytest
from dagster.components.testing import DefsFolderSandbox, create_defs_folder_sandbox

from espcore.warehouse import PostgresWarehouse
from tests.pg import PgServer, PostgresUnavailable, in_ci, postgres_server

# Dagster in tests: no telemetry, an ephemeral instance per test unless a test sets one up.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# The tests configure the sandboxes explicitly, as a deployment would (the production definitions refuse to load
# a provider without credentials otherwise); never with real credentials from the environment.
# A deployment's own declarations file or warehouse never leaks into the tests either.
for _name in (
    *("SENDPULSE_CLIENT_ID", "SENDPULSE_CLIENT_SECRET", "PAKAT_API_KEY", "LITESTARTUP_API_KEY"),
    *("ESP_DECLARATIONS", "ESP_WAREHOUSE_URL", "ESP_WAREHOUSE_SCHEMA"),
):
    os.environ.pop(_name, None)
os.environ.setdefault("ESP_SANDBOX_DIR", tempfile.mkdtemp(prefix="esp-test-sandbox-"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: runs against the session's throwaway PostgreSQL server")


@pytest.fixture(autouse=True)
def _stop_embedded_sandboxes():
    yield
    from espcore.sandbox.embedded import stop_all

    stop_all()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for this test process (each xdist worker starts its own), see ``tests/pg.py``.

    Skipped when the server binaries are missing, unless ``CI`` is set: then that is a failure."""
    missing: str | None = None
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as exc:
        missing = str(exc)
    if missing is not None:  # outside the except block: a plain message, no chained traceback
        if in_ci():
            pytest.fail(f"{missing} (CI is set, so PostgreSQL tests must run)", pytrace=False)
        pytest.skip(f"{missing}; install PostgreSQL server binaries (or set PG_BIN) to run the PostgreSQL tests")


@pytest.fixture
def pg_warehouses(pg_server: PgServer) -> Iterator[Callable[[], PostgresWarehouse]]:
    """A factory of PostgreSQL warehouses, each in a fresh schema of the session server."""
    with pg_server.schemas() as make:
        yield make


@pytest.fixture
def defs_folder() -> Iterator[DefsFolderSandbox]:
    """An empty Dagster defs folder in a temporary project, to load components from as Dagster does."""
    with create_defs_folder_sandbox() as box:
        yield box
