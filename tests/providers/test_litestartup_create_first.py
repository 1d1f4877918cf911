"""LiteStartup at its plan's rate limit: a contact the sync never wrote costs one create call, not a look-up and a
create; the provider's conflict answer still protects an existing (or unsubscribed) contact."""

import pytest

from espcore.providers.base import MemberInput, MemberState
from tests.providers.test_interface import PEOPLE, Harness, build

NEW, OTHER = PEOPLE[0], PEOPLE[1]


def calls(h: Harness) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in h.sandbox.request_log]


@pytest.mark.parametrize("name", ["litestartup", "litestartup-current"])
def test_a_new_contact_is_one_create_call(name: str) -> None:
    with build(name) as h:
        book = h.adapter.ensure_book("Fast")
        h.sandbox.request_log.clear()
        (result,) = h.adapter.upsert_members(book.id, [MemberInput(NEW.email, h.fields(NEW), exists=False)])
        assert result.ok
        assert [m for m, _ in calls(h)] == ["POST"]
        assert {m.email for m in h.adapter.list_members(book.id)} == {NEW.email}


@pytest.mark.parametrize("name", ["litestartup", "litestartup-current"])
def test_a_conflict_falls_back_and_never_reactivates(name: str) -> None:
    with build(name) as h:
        first = h.adapter.ensure_book("First")
        assert all(r.ok for r in h.adapter.upsert_members(first.id, [h.row(NEW), h.row(OTHER)]))
        h.adapter.remove_members(first.id, [NEW.email], unsubscribe=True)
        second = h.adapter.ensure_book("Second")
        rows = [MemberInput(p.email, h.fields(p, first_name="Changed"), exists=False) for p in (NEW, OTHER)]
        unsubscribed, existing = h.adapter.upsert_members(second.id, rows)
        assert (unsubscribed.ok, unsubscribed.suppressed) == (False, True)  # the 409, then the search, said so
        assert existing.ok  # exists in another book: updated, and now in this one too
        states = {m.email: m for m in h.adapter.list_members(second.id)}
        assert set(states) == {OTHER.email}
        assert states[OTHER.email].fields[h.mapping["first_name"]] == "Changed"
        assert {m.email: m.state for m in h.adapter.list_members(first.id)}[NEW.email] in (
            MemberState.UNSUBSCRIBED,
            MemberState.BLACKLISTED,
        )
