"""Pakat: rows the sync never wrote go straight to the bulk call; one the list already holds comes back as
"exists" and is then decided by its status, exactly as if it had been looked up first. (An unsubscribed address
never gets here as "never written": the run's suppression refresh holds it; MailWizz's bulk add would
resubscribe it, which is why a row the engine cannot vouch for, exists=None, is looked up first.)"""

from espcore.providers.base import MemberInput, MemberState
from tests.providers.test_interface import PEOPLE, build

ANN, BOB, CY = PEOPLE


def test_created_first_and_the_lists_own_status_still_wins() -> None:
    with build("pakat") as h:
        book = h.adapter.ensure_book("Created first")
        assert all(r.ok for r in h.adapter.upsert_members(book.id, [h.row(BOB)]))  # added by another tool
        h.blacklist(book.id, ANN.email)  # the account blacklist
        h.sandbox.request_log.clear()
        rows = [MemberInput(p.email, h.fields(p, first_name="New"), exists=False) for p in (ANN, BOB, CY)]
        ann, bob, cy = h.adapter.upsert_members(book.id, rows)
        assert (ann.ok, ann.suppressed) == (False, True)  # blacklisted: refused by the bulk call itself
        assert bob.ok
        assert cy.ok
        gets = [p for m, p, _ in h.sandbox.request_log if m == "GET" and p.endswith(f"/lists/{book.id}/subscribers")]
        assert gets == []  # no crawl of the list
        members = {m.email: m for m in h.adapter.list_members(book.id)}
        assert ANN.email not in members or members[ANN.email].state is not MemberState.ACTIVE
        assert members[BOB.email].fields[h.mapping["first_name"]] == "New"  # updated like a looked-up row
        assert members[CY.email].state is MemberState.ACTIVE
