"""The sandboxes' control surface (``/__sandbox/...``): it answers only the admin token, and its state dump
never carries a credential. Checked for all three sandboxes through the shared base."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from espcore.sandbox.base import (
    ADMIN_HEADER,
    ADMIN_STATE_KEY,
    FileStore,
    ProviderSandbox,
    admin_headers,
    read_admin_token,
    redact_secrets,
)
from espcore.sandbox.litestartup import DEMO_API_KEY as LS_KEY
from espcore.sandbox.litestartup import LiteStartupSandbox
from espcore.sandbox.pakat import DEMO_API_KEY as PAKAT_KEY
from espcore.sandbox.pakat import PakatSandbox
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SendPulseSandbox
from espcore.sandbox.server import serve
from espcore.sandbox.transport import InProcessTransport

SANDBOXES: dict[str, type[ProviderSandbox]] = {
    "sendpulse": SendPulseSandbox,
    "pakat": PakatSandbox,
    "litestartup": LiteStartupSandbox,
}
#: each sandbox's demo credential, which the dump must not show
DEMO_SECRETS = {"sendpulse": DEMO_CLIENT_SECRET, "pakat": PAKAT_KEY, "litestartup": LS_KEY}
ADMIN_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/__sandbox/state", {}),
    ("POST", "/__sandbox/reset", {"demo": False}),
    ("POST", "/__sandbox/clock", {"advance": 3600}),
    ("POST", "/__sandbox/faults", {"rules": [{"kind": "status", "status": 500}]}),
    ("POST", "/__sandbox/hooks/nothing", {}),
]


def make(name: str) -> ProviderSandbox:
    kwargs: dict[str, Any] = {"seed": 5} if name == "pakat" else {"seed": 5, "rate_limit": False}
    sb = SANDBOXES[name](**kwargs)
    sb.reset(demo=True)
    return sb


@pytest.fixture(params=sorted(SANDBOXES))
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[str, ProviderSandbox, httpx.Client]]:
    sb = make(request.param)
    with httpx.Client(transport=InProcessTransport(sb.app), base_url="http://127.0.0.1") as http:
        yield request.param, sb, http


def call(http: httpx.Client, method: str, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return http.request(method, path, json=body if method != "GET" else None, **kw)


def same_shape(a: httpx.Response, b: httpx.Response) -> None:
    """Two answers a provider gives to paths it does not know: same status, type and envelope keys."""
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers.get("content-type") == b.headers.get("content-type")
    if b.headers.get("content-type", "").startswith("application/json"):
        assert set(a.json()) == set(b.json())


# -- the token --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_without_the_token_the_admin_paths_are_unknown_provider_paths(
    setup: tuple[str, ProviderSandbox, httpx.Client], method: str, path: str, body: dict[str, Any], token: str | None
) -> None:
    _, sb, http = setup
    before = sb.snapshot()
    headers = admin_headers(token) if token else {}
    answer = call(http, method, path, body, headers=headers)
    unknown = call(http, method, path.replace("/__sandbox", "/__no_such_surface"), body, headers=headers)
    same_shape(answer, unknown)  # the provider's own answer to a path it does not have
    assert "__initialised__" not in answer.text
    assert sb.faults.rules == []  # nothing was done
    assert sb.snapshot() == before


def test_with_the_token_every_admin_call_works(setup: tuple[str, ProviderSandbox, httpx.Client]) -> None:
    _, sb, http = setup
    headers = sb.admin_headers()
    assert set(headers) == {ADMIN_HEADER}
    state = http.get("/__sandbox/state", headers=headers)
    assert state.status_code == 200
    assert state.json()["__initialised__"] is True
    now = http.post("/__sandbox/clock", json={"freeze": True, "at": "2026-02-01T00:00:00+00:00"}, headers=headers)
    assert now.json() == {"now": "2026-02-01T00:00:00+00:00"}
    rule = {"kind": "status", "status": 503, "path": "^/nowhere$"}
    assert http.post("/__sandbox/faults", json={"rules": [rule]}, headers=headers).json() == {"rules": 1}
    assert http.post("/__sandbox/faults", json={"clear": True}, headers=headers).json() == {"rules": 0}
    assert http.post("/__sandbox/hooks/nothing", json={}, headers=headers).status_code == 404
    assert http.post("/__sandbox/reset", json={"demo": True}, headers=headers).json() == {"ok": True}
    bad = http.post("/__sandbox/clock", json={"advance": "soon"}, headers=headers)
    assert bad.status_code == 400  # a bad admin call is an admin answer, not a crash
    assert "bad admin call" in bad.json()["error"]


def test_the_token_is_made_with_the_state_and_kept_by_resets(tmp_path: Any) -> None:
    path = tmp_path / "sp.json"
    first = SendPulseSandbox(FileStore(path), rate_limit=False)
    token = first.admin_token
    assert len(token) >= 32
    assert read_admin_token(path) == token  # what the CLI prints
    second = SendPulseSandbox(FileStore(path), rate_limit=False)  # another process on the same account
    assert second.admin_token == token
    first.reset(demo=False)
    assert second.admin_token == token
    assert SendPulseSandbox(rate_limit=False).admin_token != token  # each account its own
    assert json.loads(path.read_text())[ADMIN_STATE_KEY] == {"token": token}


def test_the_token_over_real_loopback_http() -> None:
    sb = SendPulseSandbox(rate_limit=False)
    with serve(sb.app) as server:
        url = f"{server.url}/__sandbox/hooks/sender_code"
        refused = httpx.post(url, json={"email": "x@x.io"})
        assert (refused.status_code, refused.json()) == (401, {"message": "Unauthorized!", "error_code": 401})
        allowed = httpx.post(url, json={"email": "x@x.io"}, headers=sb.admin_headers())
        assert allowed.json() == {"result": None}  # no such sender: the hook's own answer


# -- the state dump --------------------------------------------------------------------------------------------


def issue_credentials(name: str, sb: ProviderSandbox, http: httpx.Client) -> list[str]:
    """Put live credentials into the state the way the API does; return them."""
    if name == "sendpulse":
        tokens = []
        for _ in range(2):
            r = http.post(
                "/oauth/access_token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": DEMO_CLIENT_ID,
                    "client_secret": DEMO_CLIENT_SECRET,
                },
            )
            tokens.append(r.json()["access_token"])
        sb.hook("create_client", client_id="second-client", client_secret="second-secret-0123456789")
        auth = {"Authorization": f"Bearer {tokens[0]}"}
        http.post("/senders", json={"email": "promo@example.com", "name": "Promo"}, headers=auth)
        code = sb.hook("sender_code", email="promo@example.com")
        assert isinstance(code, str)
        return [*tokens, "second-secret-0123456789", code]
    return []


def test_the_state_dump_masks_every_credential(setup: tuple[str, ProviderSandbox, httpx.Client]) -> None:
    name, sb, http = setup
    live = issue_credentials(name, sb, http)
    raw = json.dumps(sb.snapshot())
    secrets = [DEMO_SECRETS[name], sb.admin_token, *live]
    assert all(s in raw for s in secrets)  # the state holds them (in-process snapshot() is the raw state)
    dump = http.get("/__sandbox/state", headers=sb.admin_headers())
    assert dump.status_code == 200
    for secret in secrets:
        assert secret not in dump.text, secret
    assert ADMIN_STATE_KEY not in dump.json()
    assert "<redacted:" in dump.text
    assert dump.json() == sb.dump()


def test_sendpulse_dump_keeps_what_is_not_secret() -> None:
    sb = SendPulseSandbox(rate_limit=False)
    with httpx.Client(transport=InProcessTransport(sb.app), base_url="http://127.0.0.1") as http:
        issue_credentials("sendpulse", sb, http)
    dump = sb.dump()
    assert len(dump["tokens"]) == 2  # how many live tokens, and for whom, without the tokens
    assert {t["client_id"] for t in dump["tokens"].values()} == {DEMO_CLIENT_ID}
    assert set(dump["clients"]) == {DEMO_CLIENT_ID, "second-client"}
    assert all(c["secret"].startswith("<redacted:") for c in dump["clients"].values())
    assert dump["senders"]["promo@example.com"]["status"] == "Requested activation"
    assert dump["senders"]["promo@example.com"]["code"].startswith("<redacted:")
    assert dump["account"] == sb.snapshot()["account"]


def test_redact_secrets_on_every_shape_the_sandboxes_use() -> None:
    state = {
        "keys": {"sk_live_abcdefgh": {"account": "acct_1", "uuid": "u1"}},
        "tokens": {"eyJ0eXAiOi.token-1": {"client_id": "c1", "expires": 10}},
        "accounts": {"acct_1": {"webhooks": {"w1": {"url": "https://x.io", "secret": "whsec_0123456789"}}}},
        "clients": {"c1": {"secret": "short"}},
        "log": ["Bearer eyJ0eXAiOi.token-1 used", "whsec_0123456789", {"note": "short"}],
        "counts": [1, 2.5, None, True],
    }
    out = redact_secrets(state)
    text = json.dumps(out)
    for secret in ("sk_live_abcdefgh", "eyJ0eXAiOi.token-1", "whsec_0123456789", '"short"'):
        assert secret not in text
    assert out["keys"] == {"<redacted:1>": {"account": "acct_1", "uuid": "u1"}}
    assert out["log"][0] == "Bearer <redacted> used"  # inside text
    assert out["log"][1] == out["accounts"]["acct_1"]["webhooks"]["w1"]["secret"]  # the same mask both places
    assert out["counts"] == [1, 2.5, None, True]
    assert state["keys"] == {"sk_live_abcdefgh": {"account": "acct_1", "uuid": "u1"}}  # the input is untouched
    assert redact_secrets({"a": 1}) == {"a": 1}
