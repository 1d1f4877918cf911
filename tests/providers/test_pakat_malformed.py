"""The malformed-answer corpus over the Pakat client methods added with the full operation set: every
malformed 2xx answer is an UnexpectedResponseError (an OutcomeUnknownError for writes), never a success."""

from datetime import date

import pytest

from espcore.errors import EspError, UnexpectedResponseError
from espcore.providers.pakat import PakatClient
from tests.providers.test_malformed_answers import (
    NO_HTTP,
    PAKAT,
    PAKAT_ACTION,
    Method,
    check_unexpected,
    client,
    corpus,
    drain,
    m,
    public_methods,
)

PAKAT_MORE: dict[str, Method] = {
    "country_zones": m(lambda c: c.country_zones(103)),
    "countries": m(lambda c: c.countries()),
    "create_campaign_bounce": m(lambda c: c.create_campaign_bounce("cmp", "sub", "hard", "550")),
    "create_customer": m(
        lambda c: c.create_customer(
            first_name="A",
            last_name="B",
            email="a@example.org",
            password="secret-pass",
            timezone="UTC",
            birth_date=date(1990, 1, 2),
        )
    ),
    "delete_list_field": m(lambda c: c.delete_list_field("lst", 4), *PAKAT_ACTION),
    "delete_segment": m(lambda c: c.delete_segment("lst", "seg"), *PAKAT_ACTION),
    "delivery_servers": m(lambda c: c.delivery_servers()),
    "get_delivery_server": m(lambda c: c.get_delivery_server(1)),
    "get_list_field": m(lambda c: c.get_list_field("lst", 4)),
    "get_segment": m(lambda c: c.get_segment("lst", "seg")),
    "get_sending_domain": m(lambda c: c.get_sending_domain("example.org")),
    "list_field_types": m(lambda c: c.list_field_types()),
    "search_subscribers_by_custom_fields": m(lambda c: c.search_subscribers_by_custom_fields("lst", {"CITY": "X"})),
    "segment_condition_operators": m(lambda c: c.segment_condition_operators()),
    "track_opening": m(lambda c: c.track_opening("cmp", "sub"), *PAKAT_ACTION),
    "track_unsubscribe": m(lambda c: c.track_unsubscribe("cmp", "sub", reason="r"), *PAKAT_ACTION),
    "track_url": m(lambda c: c.track_url("cmp", "sub", "abc")),
    "update_list_field": m(lambda c: c.update_list_field("lst", 4, label="Town")),
    "update_segment": m(lambda c: c.update_segment("lst", "seg", name="S2"), *PAKAT_ACTION),
}

CASES = [
    pytest.param(name, body_name, id=f"{name}-{body_name}")
    for name in sorted(PAKAT_MORE)
    for body_name in corpus("pakat")
]


@pytest.mark.parametrize(("name", "body_name"), CASES)
def test_malformed_answer_raises_typed_error(name: str, body_name: str) -> None:
    method = PAKAT_MORE[name]
    with client("pakat", corpus("pakat")[body_name]) as c:
        try:
            result = drain(method.call(c))
        except UnexpectedResponseError as exc:
            check_unexpected("pakat", exc)
            return
        except EspError as exc:
            if body_name not in method.success:
                pytest.fail(f"{name} answered {body_name}: {type(exc).__name__}, not UnexpectedResponseError: {exc}")
            return
        assert c.seen, f"{name} sent no request"
        if body_name not in method.success:
            pytest.fail(f"{name} took a malformed answer ({body_name}) as success: {result!r}")


def test_with_the_shared_table_every_public_method_is_covered() -> None:
    assert set(PAKAT) | set(PAKAT_MORE) | NO_HTTP["pakat"] == public_methods(PakatClient)
