"""Fixtures shared by the sync tests."""

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from espcore.warehouse import BaseWarehouse, Warehouse
from tests.sync import fakes


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_wh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], BaseWarehouse]:
    """A factory of empty warehouses of one engine: DuckDB files, or schemas of the session's PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_warehouses")
    n = itertools.count()
    return lambda: Warehouse(tmp_path / f"wh{next(n)}.duckdb")


@pytest.fixture(params=["plain", "prepared"])
def writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with :class:`~tests.sync.fakes.FakeProvider` as it is (the engine builds a ``MemberInput`` per
    row and calls ``upsert_members``), and again as a ``PreparedWriter`` (the engine has each call built ahead on
    its bookkeeper thread and sends it with ``send_prepared``), as SendPulse's adapter is."""
    if request.param == "prepared":
        monkeypatch.setattr(fakes.FakeProvider, "prepare_upsert", fakes.prepare_upsert, raising=False)
        monkeypatch.setattr(fakes.FakeProvider, "send_prepared", fakes.send_prepared, raising=False)
    return str(request.param)
