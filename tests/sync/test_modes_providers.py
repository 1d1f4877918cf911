"""Every sync mode on every provider, through the provider sandboxes over real loopback HTTP."""

from collections.abc import Iterator

import pytest

from espcore.providers.base import MemberState
from espcore.sync.engine import run_sync
from espcore.sync.spec import SyncSpec
from espcore.warehouse import Warehouse
from tests.providers.test_interface import PROVIDERS, Harness, build

pytestmark = pytest.mark.network

PEOPLE = [
    ("ann@example.com", "Ann", "Novak", "DE"),
    ("bob@example.com", "Bob", "Rossi", "FR"),
    ("cid@example.com", "Cid", "Berg", "NL"),
]


@pytest.fixture(params=PROVIDERS)
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with build(request.param, loopback=True) as harness:
        yield harness


def warehouse(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR, last_name VARCHAR, country VARCHAR)")
        for row in PEOPLE:
            con.execute("INSERT INTO people VALUES (?, ?, ?, ?)", list(row))
    return wh


def spec(h: Harness, mode: str, **kw) -> SyncSpec:
    fields = {h.mapping[c]: c for c in ("first_name", "last_name", "country")}
    return SyncSpec(
        name=f"{h.name}_{mode}",
        provider=h.name,
        book=f"Modes {mode}",
        source_sql="SELECT * FROM people",
        fields=fields,
        mode=mode,  # type: ignore[arg-type]
        max_remove_pct=100,
        **kw,
    )


def sql(wh: Warehouse, statement: str) -> None:
    with wh.connect() as con:
        con.execute(statement)


def members(h: Harness, book_id: str) -> dict[str, MemberState]:
    return {m.email: m.state for m in h.adapter.list_members(book_id)}


@pytest.mark.parametrize("mode", ["insert", "update", "upsert", "mirror"])
def test_mode_on_provider(h: Harness, tmp_path, mode: str) -> None:
    wh = warehouse(tmp_path)
    s = spec(h, mode)
    first = run_sync(s, h.adapter, wh, run_id="r1")
    m = first.metadata()
    if mode == "update":
        # update never adds: nothing is at the provider yet
        assert (m["planned_add"], m["skipped"], m["write_calls"]) == (0, 3, 0)
        return
    assert m["successful_add"] == 3
    book = first.book_id
    assert {e for e, st in members(h, book).items() if st == MemberState.ACTIVE} == {p[0] for p in PEOPLE}

    # an unchanged re-sync writes nothing
    assert run_sync(s, h.adapter, wh, run_id="r2").metadata()["write_calls"] == 0

    # one changed value, one row gone
    sql(wh, "UPDATE people SET country = 'IT' WHERE email = 'bob@example.com'")
    sql(wh, "DELETE FROM people WHERE email = 'cid@example.com'")
    m3 = run_sync(s, h.adapter, wh, run_id="r3").metadata()
    if mode == "insert":
        assert (m3["planned_change"], m3["skipped"], m3["planned_remove"]) == (0, 1, 0)
    else:
        assert (m3["planned_change"], m3["successful_change"]) == (1, 1)
        bob = next(x for x in h.adapter.list_members(book) if x.email == "bob@example.com")
        assert bob.fields[h.mapping["country"]] == "IT"
    now = members(h, book)
    if mode == "mirror":
        assert m3["successful_remove"] == 1
        assert now.get("cid@example.com") in (None, MemberState.REMOVED)
    else:
        assert m3["planned_remove"] == 0
        assert now.get("cid@example.com") == MemberState.ACTIVE


def test_update_mode_changes_existing_members(h: Harness, tmp_path) -> None:
    wh = warehouse(tmp_path)
    run_sync(spec(h, "upsert"), h.adapter, wh, run_id="seed")
    sql(wh, "UPDATE people SET first_name = 'Anna' WHERE email = 'ann@example.com'")
    sql(wh, "INSERT INTO people VALUES ('new@example.com', 'New', 'Person', 'DE')")
    s = spec(h, "update")
    s = SyncSpec(**{**s.__dict__, "book": "Modes upsert", "name": f"{h.name}_update_existing"})
    # the update sync targets the book the upsert filled: state is per (provider, book), so it sees it
    m = run_sync(s, h.adapter, wh, run_id="upd").metadata()
    assert (m["planned_change"], m["successful_change"], m["skipped"]) == (1, 1, 1)
    assert "new@example.com" not in members(h, run_sync(s, h.adapter, wh, run_id="upd2").book_id)


def test_suppressed_at_provider_is_never_resubscribed(h: Harness, tmp_path) -> None:
    wh = warehouse(tmp_path)
    s = spec(h, "upsert")
    book = run_sync(s, h.adapter, wh, run_id="r1").book_id
    h.blacklist(book, "ann@example.com")
    sql(wh, "UPDATE people SET first_name = 'Anna' WHERE email = 'ann@example.com'")
    m = run_sync(s, h.adapter, wh, run_id="r2").metadata()
    assert m["suppressed"] == 1
    assert m["planned_change"] == 0
    assert members(h, book).get("ann@example.com") != MemberState.ACTIVE
