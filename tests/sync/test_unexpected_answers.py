"""A 200 that did no work never counts as synced: the rows stay pending and the next run sends them all.

Twenty rows are synced through the real engine into each provider's sandbox while the add-members endpoint
(SendPulse ``POST /addressbooks/{id}/emails``, Pakat ``POST /lists/{L}/subscribers/bulk``, LiteStartup
``POST /contacts``) answers 200 with an HTML page, or 200 with the provider's own error envelope. The run fails
with :class:`UnexpectedResponseError`, no row is ``synced`` in ``sync_state``, the book holds none of them, and a
dry run plans all twenty again. Once the fault clears, the next run sends the twenty rows and the book holds them.
A third case has the provider do the work before the odd answer: the rows stay pending all the same, and the
resend (adds are upserts) leaves exactly twenty members.

Campaign launches get the same answers to their create or send call: the outcome is recorded ``unknown`` (the
error is an :class:`OutcomeUnknownError`), never ``sent``, and the next launch resolves it by looking the campaign
up, never by posting again.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from espcore.campaigns.launch import LaunchOutcomeUnknown, launch
from espcore.errors import UnexpectedOutcomeError, UnexpectedResponseError
from espcore.providers.base import CampaignState, MemberState
from espcore.sync.engine import run_sync
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.warehouse import BaseWarehouse, Warehouse
from tests.campaigns.conftest import make_env
from tests.providers.test_interface import PROVIDERS, Harness, build

ROWS = 20
PEOPLE = [(f"person{i:02d}@example.com", f"First{i}", f"Last{i}", "DE" if i % 2 else "FR") for i in range(ROWS)]

#: provider -> the add-members endpoint (a regex on the sandbox's path)
ADD_MEMBERS = {
    "sendpulse": r"^/addressbooks/\d+/emails$",
    "pakat": r"/lists/[a-z0-9]+/subscribers/bulk$",
    "litestartup": r"/contacts$",
}
#: provider -> its error envelope's message and code, sent with 200
ENVELOPE: dict[str, dict[str, Any]] = {
    "sendpulse": {"message": "Book not found", "code": 213},
    "pakat": {"message": "Unable to save the subscriber!"},
    "litestartup": {"message": "Invalid API key", "code": "INVALID_API_KEY"},
}
FAULTS = {
    "html": lambda provider: {"html": True},
    "error_envelope": lambda provider: ENVELOPE[provider],
    "html_after_the_work": lambda provider: {"html": True, "after_handler": True},
}


@pytest.fixture(params=PROVIDERS)
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with build(request.param) as harness:
        yield harness


def warehouse(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR, last_name VARCHAR, country VARCHAR)")
        for row in PEOPLE:
            con.execute("INSERT INTO people VALUES (?, ?, ?, ?)", list(row))
    return wh


def spec(h: Harness) -> SyncSpec:
    return SyncSpec(
        name=f"{h.name}_unexpected",
        provider=h.name,
        book="Unexpected answers",
        source_sql="SELECT * FROM people",
        fields={h.mapping[c]: c for c in ("first_name", "last_name", "country")},
        mode="upsert",
    )


def state_counts(wh: BaseWarehouse, provider: str) -> dict[str, int]:
    """``sync_state`` rows per status (the engine's tables may live in the warehouse's own schema)."""
    with wh.connect() as con:
        own = getattr(con, "own", None)
        table = own("sync_state") if callable(own) else "sync_state"
        rows = con.fetchall(f"SELECT status, count(*) FROM {table} WHERE provider = ? GROUP BY status", [provider])
    return {str(status): int(n) for status, n in rows}


def members(h: Harness, book_id: str) -> dict[str, MemberState]:
    return {m.email.lower(): m.state for m in h.adapter.list_members(book_id)}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_200_that_did_no_work_leaves_the_rows_pending(h: Harness, tmp_path, fault: str) -> None:
    wh, s = warehouse(tmp_path), spec(h)
    rule = h.sandbox.faults.add("status", status=200, method="POST", path=ADD_MEMBERS[h.name], **FAULTS[fault](h.name))

    with pytest.raises(UnexpectedResponseError) as info:
        run_sync(s, h.adapter, wh, run_id="r1")
    err = info.value
    assert isinstance(err, UnexpectedOutcomeError)  # an add may have taken effect: resent, never trusted
    assert (err.provider, err.status, err.method) == (h.name, 200, "POST")
    assert rule.fired >= 1

    states = state_counts(wh, h.name)
    assert states.get("synced", 0) == 0
    assert set(states) <= {"pending"}
    assert states.get("pending", 0) >= 1  # the batch that got the answer was written ahead, never acknowledged
    book = h.adapter.ensure_book(s.book)
    if fault != "html_after_the_work":
        assert members(h, book.id) == {}  # the provider holds none of them
    plan = run_sync(s, h.adapter, wh, run_id="dry", options=SyncOptions(dry_run=True))
    assert plan.synced_rows == 0
    assert plan.metadata()["planned_add"] == ROWS

    h.sandbox.faults.clear()
    second = run_sync(s, h.adapter, wh, run_id="r2")
    m = second.metadata()
    assert (m["planned_add"], m["successful_add"], m["failed_add"]) == (ROWS, ROWS, 0)
    assert second.synced_rows == ROWS
    assert state_counts(wh, h.name) == {"synced": ROWS}
    held = members(h, second.book_id)
    assert held == {p[0]: MemberState.ACTIVE for p in PEOPLE}

    third = run_sync(s, h.adapter, wh, run_id="r3").metadata()
    assert third["write_calls"] == 0  # nothing left to send


# -- campaign launches: an unexpected answer to a create or a send is an unknown outcome ---------------------------

#: provider -> the call that creates the campaign, and (two-call launches) the one that sends the draft
CREATE = {
    "sendpulse": ("POST", r"^/campaigns$"),
    "pakat": ("POST", r"/campaigns$"),
    "litestartup": ("POST", r"/campaigns$"),
}
SEND = {"pakat": ("PUT", r"/campaigns/[a-z0-9]+$"), "litestartup": ("POST", r"/campaigns/[^/]+/send$")}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("took_effect", [False, True], ids=["did_nothing", "took_effect"])
def test_an_unexpected_answer_to_a_campaign_create_is_never_resent_nor_recorded_sent(
    tmp_path, provider: str, took_effect: bool
) -> None:
    """200 + HTML to the create: the ledger says ``unknown``; the next launch looks the key up, adopts what it
    finds, and posts nothing again when it finds nothing."""
    with make_env(provider, tmp_path) as env:
        spec = env.spec()
        method, path = CREATE[provider]
        env.h.sandbox.faults.add(
            "status", status=200, html=True, method=method, path=path, times=1, after_handler=took_effect
        )
        with pytest.raises(LaunchOutcomeUnknown) as info:
            launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
        assert isinstance(info.value.__cause__, UnexpectedOutcomeError)
        row = env.ledger.get(spec.key)
        assert row is not None
        assert (row.status, row.provider_campaign_id) == ("unknown", None)
        if took_effect:
            again = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
            assert again.action == "adopted"
            assert [c.id for c in env.at_provider(spec.key)] == [again.campaign.id]
        else:
            assert env.at_provider(spec.key) == []
            with pytest.raises(LaunchOutcomeUnknown):  # not found: stays unknown, nothing posted
                launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
            assert env.at_provider(spec.key) == []


@pytest.mark.parametrize("provider", sorted(SEND))
def test_an_unexpected_answer_to_the_send_of_a_draft_is_unknown_then_the_draft_is_finished(
    tmp_path, provider: str
) -> None:
    """Pakat and LiteStartup create a draft, then send it: a 200 + error envelope to the send leaves the launch
    ``unknown``; the next launch finds the draft by its key and sends that one, never a second campaign."""
    with make_env(provider, tmp_path) as env:
        spec = env.spec()
        method, path = SEND[provider]
        env.h.sandbox.faults.add("status", status=200, method=method, path=path, times=1, **ENVELOPE[provider])
        with pytest.raises(LaunchOutcomeUnknown):
            launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
        row = env.ledger.get(spec.key)
        assert row is not None
        assert row.status == "unknown"
        (draft,) = env.at_provider(spec.key)
        assert draft.state is CampaignState.DRAFT
        again = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
        assert (again.action, again.campaign.id) == ("adopted", draft.id)
        assert again.campaign.state in (CampaignState.PENDING, CampaignState.SENT)
        assert [c.id for c in env.at_provider(spec.key)] == [draft.id]
