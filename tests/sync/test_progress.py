"""Progress of a long apply in the run log: rows sent of the plan, the rate, and the time left at that rate."""

import pyarrow as pa

from espcore.sync.engine import SyncEngine, progress_line
from espcore.sync.spec import SyncSpec
from espcore.warehouse import Warehouse
from tests.providers.test_interface import build


def test_progress_says_rows_rate_and_time_left() -> None:
    line = progress_line("people", 12_000, 100_000, 120, origin=(0.0, 2_000), now=12.5)
    assert line == "people: 12,000/100,000 rows sent (12%) in 120 calls, 800 rows/s, about 1m50s left"


def test_no_rate_yet_no_guess() -> None:
    assert progress_line("people", 100, 1_000, 1, origin=(5.0, 100), now=5.0) == (
        "people: 100/1,000 rows sent (10%) in 1 call"
    )


def test_long_runs_in_hours() -> None:
    line = progress_line("big", 10_000, 1_000_000, 100, origin=(0.0, 0), now=100.0)
    assert line.endswith("100 rows/s, about 2h45m left")


def test_a_real_apply_reports_its_progress(tmp_path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.load_temp("src", pa.table({"email": [f"p{i:04d}@example.com" for i in range(450)]}))
        con.execute("CREATE TABLE people AS SELECT * FROM src")
    lines: list[str] = []
    with build("sendpulse") as h:
        spec = SyncSpec(name="people", provider="sendpulse", book="Progress", source_sql="SELECT * FROM people")
        SyncEngine(spec, h.adapter, wh, run_id="r1", progress=lines.append, progress_every_s=0).run()
    assert lines, "no progress line"
    assert all(line.startswith("people: ") and "/450 rows sent" in line for line in lines)
    assert any("rows/s, about" in line for line in lines)
