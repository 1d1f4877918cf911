import os

import pytest

# Dagster in tests: no telemetry, an ephemeral instance per test unless a test sets one up.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def _stop_embedded_sandboxes():
    yield
    from espcore.sandbox.embedded import stop_all

    stop_all()
