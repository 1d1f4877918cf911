"""Fixtures shared by the sync tests."""

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from espcore.warehouse import BaseWarehouse, Warehouse


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_wh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], BaseWarehouse]:
    """A factory of empty warehouses of one engine: DuckDB files, or schemas of the session's PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_warehouses")
    n = itertools.count()
    return lambda: Warehouse(tmp_path / f"wh{next(n)}.duckdb")
