"""Address rules: the local check (RFC lengths included), the SQL pre-filter, each provider's own rules.

One corpus of good and bad addresses is run through :func:`email_problem`, the SQL pre-filter of each dialect,
and every provider sandbox through its adapter. The contract: an address we accept (with the adapter's declared
:class:`AddressRules`) is one the provider stores exactly as sent; one we refuse is one the provider refuses too
(a silent cut counts as a refusal) or one the RFCs forbid.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from espcore.errors import EspError, ValidationError
from espcore.providers.base import AddressRules, MemberInput
from espcore.providers.pakat import PakatProvider
from espcore.providers.sendpulse import EmailToAdd
from espcore.sandbox.pakat import SUBSCRIBER_EMAIL_COLUMN
from espcore.sync.engine import run_sync
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.sync.validate import address_rules, email_problem, plainly_valid
from espcore.warehouse import Warehouse
from tests.providers.test_interface import (
    PROVIDERS,
    Harness,
    LiteStartupHarness,
    PakatHarness,
    SendPulseHarness,
    build,
)
from tests.sync.fakes import FakeProvider


def domain(length: int) -> str:
    """A valid domain of exactly ``length`` characters: 63-character labels, then a shorter one, then ``.com``."""
    full, rest = divmod(length - 4, 64)
    assert 1 <= rest <= 63, length
    return ("d" * 63 + ".") * full + "d" * rest + ".com"


def address(length: int, local: int = 64) -> str:
    return "a" * local + "@" + domain(length - local - 1)


@dataclass(frozen=True)
class Case:
    id: str
    email: str
    #: email_problem's verdict with the RFC rules alone
    accepted: bool
    #: the RFCs (5321/5322/6531, lengths included) allow it: refusing it needs the provider to refuse it too
    rfc_allows: bool


CORPUS = (
    Case("plain", "ann@example.com", True, True),
    Case("mixed case and plus", "Ann.Lee+news@Example.COM", True, True),
    Case("every atext character", "a!#$%&'*+/=?^_`{|}~-@example.com", True, True),
    Case("local part of 64", "a" * 64 + "@example.com", True, True),
    Case("local part of 65", "a" * 65 + "@example.com", False, False),
    Case("local part of 64 octets (32 x e-acute)", "é" * 32 + "@example.com", True, True),
    Case("local part of 66 octets in 33 characters", "é" * 33 + "@example.com", False, False),
    Case("label of 63", "a@" + "b" * 63 + ".com", True, True),
    Case("label of 64", "a@" + "b" * 64 + ".com", False, False),
    Case("100 characters", address(100), True, True),
    Case("101 characters", address(101), True, True),
    Case("254 characters", address(254), True, True),
    Case("255 characters", address(255), False, False),
    Case("1,000 characters", "a" * 1000 + "@example.com", False, False),
    Case("100,000 characters, no @", "x" * 100_000, False, False),
    Case("empty", "", False, False),
    Case("missing @", "ann.example.com", False, False),
    Case("two @", "ann@lee@example.com", False, False),
    Case("nothing before @", "@example.com", False, False),
    Case("nothing after @", "ann@", False, False),
    Case("space inside", "ann lee@example.com", False, False),
    Case("leading space", " ann@example.com", False, False),
    Case("trailing space", "ann@example.com ", False, False),
    Case("trailing newline", "ann@example.com\n", False, False),
    Case("tab inside", "ann\tlee@example.com", False, False),
    Case("NUL inside", "ann\x00lee@example.com", False, False),
    Case("control character", "ann\x01@example.com", False, False),
    Case("trailing dot", "ann@example.com.", False, False),
    Case("dot before @", "ann.@example.com", False, False),
    Case("leading dot", ".ann@example.com", False, False),
    Case("consecutive dots in local part", "ann..lee@example.com", False, False),
    Case("consecutive dots in domain", "ann@example..com", False, False),
    Case("hyphen-led label", "ann@-example.com", False, False),
    Case("underscore in domain", "ann@ex_ample.com", False, False),
    Case("no dot in domain", "ann@localhost", False, False),
    Case("quoted local part", '"ann"@example.com', False, True),
    Case("quoted local part with space", '"ann lee"@example.com', False, True),
    Case("IPv4 literal", "ann@[192.0.2.1]", False, True),
    Case("IPv6 literal", "ann@[IPv6:2001:db8::1]", False, True),
    Case("unicode local part", "jürgen@example.com", True, True),
    Case("unicode domain", "ann@bücher.de", True, True),
    Case("IDNA ASCII domain", "ann@xn--bcher-kva.de", True, True),
)


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_email_problem_verdict(case: Case) -> None:
    problem = email_problem(case.email)
    assert (problem is None) == case.accepted, problem
    if problem is not None:
        assert problem.startswith("invalid email: ")


def _generated_addresses(n: int) -> Iterator[str]:
    """Addresses near the fast path's edges: odd characters, dots and hyphens at part ends, numeric and
    special-use top-level domains, parts at and over their length limits."""
    rng = random.Random(7)
    local_chars = "abcxyz0189_+-." * 8 + "!#$%&'*/=?^`{|}~A"
    domain_chars = "abcxyz0189" * 4 + "-."
    tlds = ["com", "de", "c0m", "123", "x", "test", "local", "onion", "arpa", "invalid", "localhost", "a" * 64]
    for _ in range(n):
        local = "".join(rng.choice(local_chars) for _ in range(rng.choice((1, 2, 5, 12, 64, 65))))
        labels = ["".join(rng.choice(domain_chars) for _ in range(rng.choice((1, 3, 8, 63, 64)))) for _ in range(2)]
        yield f"{local}@{'.'.join([*labels[: rng.choice((0, 1, 2))], rng.choice(tlds)])}"


def test_the_fast_path_accepts_only_what_email_validator_accepts() -> None:
    from email_validator import EmailNotValidError, validate_email

    fast = 0
    for address in _generated_addresses(20_000):
        if plainly_valid(address):
            fast += 1
            try:
                validate_email(address, check_deliverability=False, test_environment=False, strict=True)
            except EmailNotValidError as exc:
                raise AssertionError(f"fast path accepted {address!r}: {exc}") from None
    assert fast > 500  # the generator reaches the fast path often enough to mean something
    assert plainly_valid("ann.lee+news@mail.example.com")
    assert not plainly_valid("ann@example.test")  # special-use: email-validator decides (and refuses)


def test_local_part_length_is_counted_in_octets_and_named_in_the_reason() -> None:
    too_long = email_problem("a" * 65 + "@example.com")
    assert too_long is not None
    assert "too long before the @-sign" in too_long
    wide = email_problem("é" * 33 + "@example.com")  # 33 characters, 66 octets
    assert wide is not None
    assert "66 bytes" in wide
    assert "limit 64" in wide


# -- provider-declared rules ------------------------------------------------------------------------------------


def test_pakat_declares_its_100_character_column_and_ascii_local_parts() -> None:
    rules = PakatProvider.address_rules
    assert rules.max_length == SUBSCRIBER_EMAIL_COLUMN == 100
    assert email_problem(address(100), rules) is None
    reason = email_problem(address(101), rules)
    assert reason is not None
    assert "101 characters" in reason
    assert "at most 100" in reason
    assert "ASCII" in (email_problem("jürgen@example.com", rules) or "")
    assert email_problem("ann@bücher.de", rules) is None  # MailWizz converts IDN domains itself


def test_rules_default_to_rfc_only() -> None:
    assert address_rules(FakeProvider()) == AddressRules()
    strict = AddressRules(unicode_domain=False, source="test")
    assert "Unicode" in (email_problem("ann@bücher.de", strict) or "")
    assert email_problem("ann@xn--bcher-kva.de", strict) is None


# -- every provider sandbox, through its adapter ----------------------------------------------------------------


def stored_exactly(h: Harness, book_id: str, email: str) -> bool:
    """Upsert one address; True when the provider took it and now lists exactly that address."""
    try:
        [result] = h.adapter.upsert_members(book_id, [MemberInput(email, {})])
    except EspError:
        return False
    if not result.ok:
        return False
    return any(m.email.lower() == email.lower() for m in h.adapter.list_members(book_id))


@pytest.mark.parametrize("name", PROVIDERS)
def test_provider_verdicts_agree_with_the_local_check(name: str) -> None:
    with build(name) as h:
        rules = address_rules(h.adapter)
        book = h.adapter.ensure_book("Address rules").id
        wrong: list[str] = []
        for case in CORPUS:
            problem = email_problem(case.email, rules)
            if problem is None:
                if not stored_exactly(h, book, case.email):
                    wrong.append(f"{case.id}: accepted locally, refused or altered by {name}")
            elif case.rfc_allows and stored_exactly(h, book, case.email):
                wrong.append(f"{case.id}: refused locally ({problem}) though RFC-valid and taken by {name}")
        assert wrong == []


# -- each sandbox's own rule and error envelope -----------------------------------------------------------------


def test_sendpulse_sandbox_refuses_rfc_lengths_with_its_422() -> None:
    with build("sendpulse") as h:
        assert isinstance(h, SendPulseHarness)
        book = int(h.adapter.ensure_book("Lengths").id)
        for bad in ("a" * 65 + "@example.com", "a@" + "b" * 64 + ".com"):
            with pytest.raises(ValidationError) as err:
                h.client.add_emails(book, [EmailToAdd(bad, {})])
            assert (err.value.status, err.value.message) == (422, "Argument email is invalid")
        h.client.add_emails(book, [EmailToAdd("a" * 64 + "@" + "b" * 63 + ".com", {})])


def test_litestartup_sandbox_refuses_rfc_lengths_with_invalid_email() -> None:
    with build("litestartup") as h:
        assert isinstance(h, LiteStartupHarness)
        for bad in ("a" * 65 + "@example.com", "é" * 33 + "@example.com", "a@" + "b" * 64 + ".com"):
            with pytest.raises(ValidationError) as err:
                h.client.create_contact(bad)
            assert (err.value.status, err.value.code) == (400, "INVALID_EMAIL")
        assert h.client.create_contact("a" * 64 + "@" + "b" * 63 + ".com").id


@pytest.fixture
def pakat() -> Iterator[PakatHarness]:
    with build("pakat") as h:
        assert isinstance(h, PakatHarness)
        yield h


def test_pakat_sandbox_follows_mailwizz_validator(pakat: PakatHarness) -> None:
    client, book = pakat.client, pakat.adapter.ensure_book("MailWizz rules").id
    # no limit before the @ beyond the 254-byte total: MailWizz takes a 65-character local part
    assert client.create_subscriber(book, "a" * 65 + "@example.com").email == "a" * 65 + "@example.com"
    # an IDN domain is converted before the pattern; a label over 63 octets fails that conversion
    assert client.create_subscriber(book, "ann@bücher.de").subscriber_uid
    for bad in ("a@" + "b" * 64 + ".com", "jürgen@example.com", " ann@example.com", '"ann"@example.com'):
        with pytest.raises(ValidationError) as err:
            client.create_subscriber(book, bad)
        assert (err.value.status, err.value.message) == (422, "Please provide a valid email address.")
    [item] = client.bulk_add_subscribers(book, [{"EMAIL": "a@" + "b" * 64 + ".com"}])
    assert item.errors == {"EMAIL": "Please provide a valid email address."}


def test_pakat_sandbox_cuts_addresses_to_its_100_character_column(pakat: PakatHarness) -> None:
    client, book = pakat.client, pakat.adapter.ensure_book("Column").id
    long = address(120)
    assert email_problem(long) is None  # RFC-valid: only the provider's column is too short
    client.create_subscriber(book, long)  # MySQL with SQL_MODE="" cuts it without an error
    assert [s.email for s in client.list_subscribers(book)] == [long[:100]]
    assert client.search_subscriber(book, long) is None  # the full address is not found again
    assert email_problem(long, address_rules(pakat.adapter)) is not None


# -- the SQL pre-filter and the Python check --------------------------------------------------------------------


def test_sql_prefilter_never_refuses_what_the_python_check_accepts(new_wh) -> None:
    wh = new_wh()
    cases = [c for c in CORPUS if "\x00" not in c.email]  # neither engine stores NUL in text
    with wh.connect() as con:
        expr = con.dialect.email_syntax_ok("e")
        for case in cases:
            row = con.fetchone(
                f"SELECT coalesce({expr}, false) FROM (SELECT CAST(? AS VARCHAR) AS e) AS t", [case.email]
            )
            sql_ok = bool(row and row[0])
            if email_problem(case.email) is None:
                assert sql_ok, case.id


# -- end to end: the engine on DuckDB ---------------------------------------------------------------------------


def test_engine_rejects_an_overlong_local_part_with_a_reason_and_sends_the_rest(tmp_path) -> None:
    local65 = "b" * 65 + "@example.com"
    total255 = address(255)
    rows = [
        ("ann@example.com", "Ann"),
        ("a" * 64 + "@example.com", "Max"),
        ("jürgen@example.com", "Jürgen"),
        ("cid@example.com", "Cid"),
        (local65, "Long"),
        (total255, "Longer"),
    ]
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR)")
        for r in rows:
            con.execute("INSERT INTO people VALUES (?, ?)", list(r))
    p = FakeProvider()
    spec = SyncSpec(
        name="rules", provider="fake", book="People", source_sql="SELECT * FROM people", fields={"name": "first_name"}
    )
    r = run_sync(spec, p, wh, run_id="r1", options=SyncOptions())
    reasons = {x["raw_email"]: x["reason"] for x in r.rejects}
    assert set(reasons) == {local65, total255}
    assert reasons[local65].startswith("invalid email: ")
    assert "before the @-sign" in reasons[local65]
    assert reasons[total255].startswith("invalid email: ")
    assert "too long" in reasons[total255]
    sent = {e for kind, emails in p.write_calls if kind == "upsert" for e in emails}
    assert local65 not in sent
    assert total255 not in sent
    assert set(p.members["100"]) == {
        "ann@example.com",
        "a" * 64 + "@example.com",
        "jürgen@example.com",
        "cid@example.com",
    }
    assert r.metadata()["invalid"] == 2
