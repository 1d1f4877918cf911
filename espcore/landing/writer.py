"""Atomic, idempotent Parquet landing in a Hive layout.

Layout: ``<lake_root>/dataset=<d>/provider=<p>/date=<YYYY-MM-DD>/data.parquet`` — one file per (dataset,
provider, date). A file is written to ``data.parquet.tmp-<run_id>`` in the same folder, fsynced, then renamed
onto the target, so readers never see a partial file and re-landing a date replaces it (never duplicates it).
Partition values live in the path only; every file carries ``landed_at`` and ``run_id`` columns and the
dataset's ``schema_version`` in its key-value metadata. An object-store root (``s3://…``, see
:mod:`espcore.landing.store`) gets the same layout; there an object appears only once its upload completes.
"""

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from espcore.landing.schemas import DATASETS, DatasetSchema
from espcore.landing.store import Lake, open_lake

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Landed:
    dataset: str
    provider: str
    day: str
    path: Path | None  # the local file; None in an object store
    rows: int
    schema: pa.Schema
    location: str = ""  # what users and readers open: the local path, or s3://bucket/key

    @property
    def file(self) -> Path:
        """The local file (an object-store landing has none: use ``location``)."""
        if self.path is None:
            raise ValueError(f"{self.location} is in an object store, not a local file")
        return self.path


def partition_parts(dataset: str, provider: str, day: date | str) -> tuple[str, str, str]:
    day_s = day.isoformat() if isinstance(day, date) else str(day)
    for part in (dataset, provider, day_s):
        if not _SAFE.match(part):
            raise ValueError(f"unsafe partition value {part!r}")
    return f"dataset={dataset}", f"provider={provider}", f"date={day_s}"


def partition_dir(lake_root: "str | os.PathLike[str] | Lake", dataset: str, provider: str, day: date | str) -> Path:
    """The local folder of one partition (a local lake only)."""
    lake = open_lake(lake_root)
    folder = lake.local_path(lake.path(*partition_parts(dataset, provider, day)))
    if folder is None:
        raise ValueError("an object-store lake has no local partition folders")
    return folder


def to_table(spec: DatasetSchema, rows: list[dict[str, Any]], *, run_id: str, landed_at: datetime) -> pa.Table:
    """Rows (dicts) cast to the dataset's fixed schema; unknown keys are refused, missing ones are null."""
    names = spec.schema.names
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for row in rows:
        unknown = set(row) - set(names)
        if unknown:
            raise ValueError(f"{spec.name}: columns not in the schema: {sorted(unknown)}")
        for n in names:
            if n == "landed_at":
                columns[n].append(landed_at)
            elif n == "run_id":
                columns[n].append(run_id)
            else:
                columns[n].append(row.get(n))
    arrays = [pa.array(columns[f.name], type=f.type) for f in spec.schema]
    return pa.Table.from_arrays(arrays, schema=spec.schema_with_metadata())


def land(
    lake_root: "str | os.PathLike[str] | Lake",
    dataset: str,
    provider: str,
    day: date | str,
    rows: list[dict[str, Any]],
    *,
    run_id: str,
    landed_at: datetime | None = None,
    file_stem: str = "data",
) -> Landed:
    """Write one partition atomically, replacing any previous file for the same (dataset, provider, day).

    ``file_stem`` lets several writers share a partition (e.g. one rejects file per sync)."""
    if not _SAFE.match(file_stem):
        raise ValueError(f"unsafe file name {file_stem!r}")
    spec = DATASETS[dataset]
    table = to_table(spec, rows, run_id=run_id, landed_at=landed_at or datetime.now(UTC))
    lake = open_lake(lake_root)
    parts = partition_parts(dataset, provider, day)
    key = lake.path(*parts, f"{file_stem}.parquet")
    lake.write(key, lambda out: pq.write_table(table, out, compression="zstd"))
    day_s = parts[2].removeprefix("date=")
    return Landed(dataset, provider, day_s, lake.local_path(key), table.num_rows, table.schema, lake.location(key))
