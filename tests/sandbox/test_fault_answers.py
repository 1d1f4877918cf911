"""Fault injection of answers that say 200 but did no work: an HTML page, the provider's error envelope, any body.

Each sandbox makes a named endpoint answer 200 with what a real service sends when a proxy or a bug gets in the
way, for a number of times, then answers normally again; the admin endpoint takes the same rules.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from espcore.sandbox.base import ProviderSandbox
from espcore.sandbox.litestartup import DEMO_API_KEY as LS_KEY
from espcore.sandbox.litestartup import LiteStartupSandbox
from espcore.sandbox.pakat import DEMO_API_KEY as PAKAT_KEY
from espcore.sandbox.pakat import PakatSandbox
from espcore.sandbox.sendpulse import SendPulseSandbox
from espcore.sandbox.transport import InProcessTransport

#: provider -> (sandbox class, a read endpoint's path, a regex naming it)
SETUPS: dict[str, tuple[type[ProviderSandbox], str, str]] = {
    "sendpulse": (SendPulseSandbox, "/addressbooks", r"^/addressbooks$"),
    "pakat": (PakatSandbox, "/api/lists", r"^/api/lists$"),
    "litestartup": (LiteStartupSandbox, "/client/v2/contacts", r"/contacts$"),
}


@pytest.fixture(params=sorted(SETUPS))
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[str, ProviderSandbox, httpx.Client, str, str]]:
    name = request.param
    cls, path, pattern = SETUPS[name]
    kwargs: dict[str, Any] = {"seed": 3} if name == "pakat" else {"seed": 3, "rate_limit": False}
    sb = cls(**kwargs)
    sb.reset(demo=True)
    with httpx.Client(transport=InProcessTransport(sb.app), base_url="http://127.0.0.1") as http:
        http.headers.update(auth_headers(name, http))
        yield name, sb, http, path, pattern


def auth_headers(name: str, http: httpx.Client) -> dict[str, str]:
    if name == "pakat":
        return {"X-API-KEY": PAKAT_KEY}
    if name == "litestartup":
        return {"Authorization": f"Bearer {LS_KEY}"}
    from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    token = http.post(
        "/oauth/access_token",
        json={"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_a_200_html_page_then_the_real_answer(setup: tuple[str, ProviderSandbox, httpx.Client, str, str]) -> None:
    _, sb, http, path, pattern = setup
    sb.faults.add("status", status=200, html=True, path=pattern, method="GET", times=2)
    for _ in range(2):
        page = http.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<html>" in page.text
    assert http.get(path).status_code == 200
    http.get(path).json()  # the real answer again


EXPECTED_ENVELOPE: dict[str, Any] = {
    "sendpulse": {"message": "Book not found", "error_code": 213},
    "pakat": {"status": "error", "error": "Book not found"},
    "litestartup": {"success": False, "error": "Book not found", "code": 213},
}


def test_the_providers_error_envelope_sent_with_200(
    setup: tuple[str, ProviderSandbox, httpx.Client, str, str],
) -> None:
    name, sb, http, path, pattern = setup
    sb.faults.add("status", status=200, message="Book not found", code=213, path=pattern, times=1)
    answer = http.get(path)
    assert answer.status_code == 200
    assert answer.json() == EXPECTED_ENVELOPE[name]


def test_any_body_verbatim(setup: tuple[str, ProviderSandbox, httpx.Client, str, str]) -> None:
    _, sb, http, path, pattern = setup
    sb.faults.add("status", status=200, body='{"result": false}', path=pattern, times=1)
    sb.faults.add("status", status=200, body='[{"id": 1, "na', content_type="text/plain", path=pattern, times=1)
    assert http.get(path).json() == {"result": False}
    truncated = http.get(path)
    assert (truncated.status_code, truncated.text) == (200, '[{"id": 1, "na')
    assert truncated.headers["content-type"].startswith("text/plain")


def test_rules_through_the_admin_endpoint(setup: tuple[str, ProviderSandbox, httpx.Client, str, str]) -> None:
    _, sb, http, path, pattern = setup
    rule = {"kind": "status", "status": 200, "message": "nope", "code": 999, "path": pattern, "times": 1}
    assert http.post("/__sandbox/faults", json={"rules": [rule]}, headers=sb.admin_headers()).json() == {"rules": 1}
    odd = http.get(path).json()
    assert "nope" in str(odd)
    assert http.get(path).json() != odd
