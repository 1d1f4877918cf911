"""A provider (sandbox, frozen clock), a warehouse and a ledger per test, for each of the three providers."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import pytest

from espcore.campaigns.ledger import Ledger
from espcore.campaigns.spec import LaunchSpec, key_suffix
from espcore.providers.base import Campaign
from espcore.warehouse import Warehouse
from tests.providers.test_interface import AUDIENCE, Harness, build


class Killed(BaseException):
    """A simulated kill -9: not an Exception, so nothing in the code under test can swallow it."""


@dataclass
class Env:
    h: Harness
    wh: Warehouse
    ledger: Ledger
    book_id: str

    def spec(self, occurrence: str = "2026-03-02", **changes: object) -> LaunchSpec:
        base = LaunchSpec(
            name="spring_sale",
            provider=self.h.name,
            book="Readers",
            subject="Spring is here",
            sender_name="Demo Shop",
            sender_email=self.h.sender_email,
            occurrence=occurrence,
            html="<html><body><p>Hello</p><a href='https://example.com/spring'>Shop</a></body></html>",
            body_ref="spring.html.j2",
        )
        return replace(base, **changes)  # type: ignore[arg-type]

    def at_provider(self, key: str) -> list[Campaign]:
        """Every campaign at the provider that carries this launch key."""
        return [c for c in self.h.adapter.list_campaigns() if c.name.endswith(key_suffix(key))]


@contextmanager
def make_env(name: str, tmp_path) -> Iterator[Env]:
    with build(name) as h:
        book = h.adapter.ensure_book("Readers")
        assert all(r.ok for r in h.adapter.upsert_members(book.id, [h.row(p) for p in AUDIENCE]))
        h.advance(1)
        wh = Warehouse(tmp_path / "wh.duckdb")
        yield Env(h, wh, Ledger(wh, now=lambda: h.now), book.id)


@pytest.fixture(params=["sendpulse", "pakat", "litestartup"])
def env(request: pytest.FixtureRequest, tmp_path) -> Iterator[Env]:
    with make_env(str(request.param), tmp_path) as e:
        yield e


@pytest.fixture
def sp_env(tmp_path) -> Iterator[Env]:
    with make_env("sendpulse", tmp_path) as e:
        yield e
