"""An in-memory provider for engine tests: records every write call, can reject or fail on demand."""

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from espcore.errors import ServerError
from espcore.providers.base import (
    Accepted,
    Balance,
    Book,
    Campaign,
    CampaignDraft,
    CampaignStats,
    Member,
    MemberBatch,
    MemberInput,
    MemberState,
    PreparedUpsert,
    RowResult,
    Suppression,
)


@dataclass
class FakeProvider:
    name: str = "fake"
    account: str = "fake"
    batch_size: int = 3
    books: dict[str, str] = field(default_factory=dict)  # name -> id
    members: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # book id -> email -> fields
    statuses: dict[tuple[str, str], MemberState] = field(default_factory=dict)
    blacklist: set[str] = field(default_factory=set)
    reject: set[str] = field(default_factory=set)
    transient: set[str] = field(default_factory=set)  # rows answered "not decided, retry later"
    reject_removal: set[str] = field(default_factory=set)  # removals refused for good
    fail_next_writes: int = 0
    write_calls: list[tuple[str, list[str]]] = field(default_factory=list)

    def list_books(self) -> Iterator[Book]:
        for name, bid in self.books.items():
            yield Book(bid, name, len(self.members.get(bid, {})))

    def find_book(self, name: str) -> Book | None:
        return next((b for b in self.list_books() if b.name == name), None)

    def ensure_book(self, name: str) -> Book:
        if name not in self.books:
            self.books[name] = str(100 + len(self.books))
            self.members[self.books[name]] = {}
        return Book(self.books[name], name)

    def _write(self, kind: str, emails: list[str]) -> None:
        self.write_calls.append((kind, emails))
        if self.fail_next_writes > 0:
            self.fail_next_writes -= 1
            raise ServerError("injected 503", provider=self.name, status=503)

    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> list[RowResult]:
        self._write("upsert", [r.email for r in rows])
        out = []
        for r in rows:
            if r.email in self.transient:
                out.append(RowResult(r.email, ok=False, error="not processed, retry later", transient=True))
            elif r.email in self.reject:
                out.append(RowResult(r.email, ok=False, error="rejected by provider"))
            elif r.email in self.blacklist:
                out.append(RowResult(r.email, ok=False, error="blacklisted", suppressed=True))
            else:
                self.members[book_id][r.email] = dict(r.fields)
                out.append(RowResult(r.email, ok=True))
        return out

    def remove_members(self, book_id: str, emails: Sequence[str], *, unsubscribe: bool) -> list[RowResult]:
        self._write("unsubscribe" if unsubscribe else "remove", list(emails))
        out = []
        for e in emails:
            if e in self.reject_removal:
                out.append(RowResult(e, ok=False, error="removal refused by provider"))
                continue
            if unsubscribe:
                self.statuses[(book_id, e)] = MemberState.UNSUBSCRIBED
            else:
                self.members[book_id].pop(e, None)
            out.append(RowResult(e, ok=True))
        return out

    def list_members(self, book_id: str) -> Iterator[Member]:
        for email, fields in self.members.get(book_id, {}).items():
            state = self.statuses.get((book_id, email), MemberState.ACTIVE)
            yield Member(email, state, str(state), None, fields)

    def suppressions(self, book_id: str | None = None) -> Iterator[Suppression]:
        for e in sorted(self.blacklist):
            yield Suppression(e, "blacklisted")
        for (bid, email), state in self.statuses.items():
            if state.suppressed and (book_id is None or bid == book_id):
                yield Suppression(email, str(state), bid)

    def create_campaign(self, draft: CampaignDraft) -> Campaign:
        raise NotImplementedError

    def find_campaign(self, name_suffix: str) -> Campaign | None:
        return None

    def get_campaign(self, campaign_id: str) -> Campaign:
        raise NotImplementedError

    def list_campaigns(self) -> Iterator[Campaign]:
        return iter(())

    def campaign_stats(self, campaign_id: str) -> CampaignStats:
        raise NotImplementedError

    def balance(self) -> Balance:
        return Balance(not_exposed_reason="fake")

    def close(self) -> None:
        pass


def prepare_upsert(self: FakeProvider, book_id: str, batch: MemberBatch) -> PreparedUpsert:
    """:class:`~espcore.providers.base.PreparedWriter` for :class:`FakeProvider` (the ``writer`` fixture puts it
    on the class): the request is the batch's addresses, noted in ``prepared``."""
    prepared: list[list[str]] = self.__dict__.setdefault("prepared", [])
    prepared.append(list(batch.emails))
    return PreparedUpsert(book_id, batch, list(batch.emails))


def send_prepared(self: FakeProvider, prepared: PreparedUpsert) -> Sequence[RowResult]:
    """Sends through ``upsert_members`` (so a test that wraps it sees every call); an all-ok answer as
    :class:`~espcore.providers.base.Accepted`, as SendPulse's adapter answers."""
    assert prepared.request == list(prepared.batch.emails), "a prepared call sends the batch it was built from"
    results = self.upsert_members(prepared.book_id, prepared.batch.members())
    if all(r.ok and not r.transient for r in results) and [r.email for r in results] == prepared.request:
        return Accepted(prepared.request)
    return results


@dataclass
class RacyBookProvider(FakeProvider):
    """A fake whose ``ensure_book`` looks the book up, waits ``lookup_delay_s``, then creates it: two runs doing
    it at once both find nothing and both create one (as the real APIs allow two books of one name), unless
    something serialises them. ``created`` lists every book created, by name."""

    lookup_delay_s: float = 0.3
    created: list[str] = field(default_factory=list)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def ensure_book(self, name: str) -> Book:
        found = self.books.get(name)
        if found is not None:
            return Book(found, name)
        time.sleep(self.lookup_delay_s)
        with self._guard:  # the fake's own bookkeeping only: the look-up above is what races
            book_id = str(100 + len(self.created))
            self.created.append(name)
            self.members[book_id] = {}
            self.books[name] = book_id  # a later look-up finds the last one created
        return Book(book_id, name)


class HoldAfterFirstBatch:
    """An ``after_batch`` hook that holds the run after its first batch (the lock taken, one batch acknowledged)
    until :meth:`release`; ``holding`` is set once the run waits there."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.holding = threading.Event()
        self._release = threading.Event()
        self._timeout = timeout_s

    def __call__(self, op: str, size: int) -> None:
        if not self.holding.is_set():
            self.holding.set()
            assert self._release.wait(self._timeout)

    def release(self) -> None:
        self._release.set()
