"""Pakat at scale (issue #16): new subscribers go out in ⌈n/10,000⌉ bulk calls, the engine reads its plan in
pages of at least one bulk call, and what the apply reads from the provider does not grow with the list.

Counted on the Pakat sandbox's own request log (in process: no HTTP stack in the way)."""

from collections import Counter
from typing import Any

import pyarrow as pa
import pytest

from espcore.http import HttpPolicy
from espcore.providers.pakat import PakatClient, PakatProvider
from espcore.sandbox.pakat import DEMO_API_KEY, DEMO_SENDING_DOMAIN, PakatSandbox
from espcore.sandbox.transport import InProcessTransport
from espcore.sync import engine as engine_module
from espcore.sync.engine import run_sync
from espcore.sync.spec import SyncSpec
from espcore.warehouse import Warehouse

BULK = 10_000


def setup(tmp_path, n: int, batch_size: int | None = None) -> tuple[PakatSandbox, PakatProvider, Warehouse]:
    sandbox = PakatSandbox(seed=5, rate_limit=False)
    sandbox.reset(demo=True)
    client = PakatClient(
        DEMO_API_KEY,
        "http://127.0.0.1/api",
        transport=InProcessTransport(sandbox.app),
        policy=HttpPolicy(requests_per_second=None),
        sleep=lambda s: None,
    )
    provider = PakatProvider(client, from_email=f"news@{DEMO_SENDING_DOMAIN}")
    if batch_size is not None:
        provider.batch_size = batch_size  # the same adapter with smaller bulk calls: a cheap stand-in for 10,000
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        emails = [f"s{i:06d}@example.com" for i in range(n)]
        con.load_temp("src", pa.table({"email": emails, "first_name": [f"N{i}" for i in range(n)]}))
        con.execute("CREATE TABLE people AS SELECT * FROM src")
        con.drop_temp("src")
    return sandbox, provider, wh


SPEC = SyncSpec(
    name="pakat_scale",
    provider="pakat",
    book="Scale",
    source_sql="SELECT * FROM people",
    fields={"FNAME": "first_name"},
)


def requests_during_apply(sandbox: PakatSandbox, before: int) -> Counter[tuple[str, str]]:
    """The calls made after the first ``before`` ones (the log keeps the last 10,000), by method and kind."""
    out: Counter[tuple[str, str]] = Counter()
    for method, path, _ in list(sandbox.request_log)[before:]:
        if path.endswith("/subscribers/bulk"):
            kind = "bulk"
        elif "/subscribers" in path:
            kind = "subscribers"
        elif path.endswith("/fields") or "/fields/" in path:
            kind = "fields"
        else:
            kind = "other"
        out[(method, kind)] += 1
    return out


@pytest.mark.slow
def test_new_subscribers_go_out_in_ceil_n_over_10000_bulk_calls_from_pages_of_whole_bulk_calls(
    tmp_path, monkeypatch
) -> None:
    n = BULK + 500
    sandbox, provider, wh = setup(tmp_path, n)
    assert provider.batch_size == BULK
    pages: list[int] = []
    original = engine_module.SyncEngine._prepare

    def prepare(self, *args: Any, **kwargs: Any) -> Any:
        page = original(self, *args, **kwargs)
        if page is not None:
            pages.append(len(page.pks))
        return page

    monkeypatch.setattr(engine_module.SyncEngine, "_prepare", prepare)
    r = run_sync(SPEC, provider, wh, run_id="r1")
    assert r.synced_rows == n
    assert r.counts["write_calls"] == -(-n // BULK) == 2
    bulk = [p for m, p, _ in sandbox.request_log if m == "POST" and p.endswith("/subscribers/bulk")]
    assert len(bulk) == 2
    assert pages == [BULK, 500]  # the first page is one whole bulk call (not the 2,000 rows of other providers)
    provider.close()


def test_what_the_apply_reads_from_pakat_does_not_grow_with_the_list(tmp_path, monkeypatch) -> None:
    """Four calls of 100 (the adapter's bulk call, made small) of new rows into a new list: the apply may read the
    list's fields, but it reads no subscriber (the run's suppression fetch, before it, is not counted)."""
    sandbox, provider, wh = setup(tmp_path, 400, batch_size=100)
    mark: list[int] = []
    original = engine_module.SyncEngine._fetch_suppressions

    def fetch(self, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        mark.append(len(sandbox.request_log))
        return out

    monkeypatch.setattr(engine_module.SyncEngine, "_fetch_suppressions", fetch)
    r = run_sync(SPEC, provider, wh, run_id="r1")
    assert r.synced_rows == 400
    calls = requests_during_apply(sandbox, mark[0])
    assert calls[("POST", "bulk")] == 4
    assert calls[("GET", "subscribers")] == 0  # no count, no crawl of the list, no per-address search
    provider.close()
