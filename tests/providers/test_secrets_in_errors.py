"""No error a client raises carries a credential, anywhere in its object graph.

httpx's exceptions hold the request they failed on, and with it the API key, the ``Authorization: Bearer``
header or (SendPulse's token call) the OAuth ``client_secret`` in the body. Each transport fault is raised through
each client, for a read, for a write and (SendPulse) for the token call, and the whole graph of the error is
walked: ``__cause__``, ``__context__``, ``args``, attributes, ``request``/``response`` objects (headers, URL,
body), ``str``/``repr``, ``traceback.format_exception`` and the pickled error. None of the secrets may appear, and
no httpx exception may be reachable at all. The same holds for the excerpt of an unexpected answer that echoes
the request back.
"""

import pickle
import socket
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import pytest

from espcore.errors import (
    EspError,
    OutcomeUnknownError,
    TransportError,
    UnexpectedOutcomeError,
    UnexpectedResponseError,
)
from espcore.http import HttpPolicy, Redactor
from espcore.providers.base import MemberInput
from espcore.providers.litestartup import LiteStartupClient, LiteStartupProvider
from espcore.providers.pakat import PakatClient
from espcore.providers.sendpulse import SendPulseClient
from espcore.sandbox.litestartup import DEMO_API_KEY as LS_DEMO_KEY
from espcore.sandbox.litestartup import LiteStartupSandbox
from espcore.sandbox.pakat import DEMO_API_KEY as PAKAT_DEMO_KEY
from espcore.sandbox.pakat import PakatSandbox, api_base_url
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SendPulseSandbox
from espcore.sandbox.transport import InProcessTransport

POLICY = HttpPolicy(requests_per_second=0, max_attempts=2)
SP_ID = "sp-id-LEAKCANARY-a1"
SP_SECRET = "sp-secret-LEAKCANARY-b2"
SP_TOKEN = "sp-token-LEAKCANARY-c3"
PAKAT_KEY = "pakat-key-LEAKCANARY-d4"
LS_KEY = "sk_live_LEAKCANARY-e5"
SECRETS = (SP_ID, SP_SECRET, SP_TOKEN, PAKAT_KEY, LS_KEY, "LEAKCANARY")

Raise = Callable[[httpx.Request], httpx.Response]


def no_sleep(seconds: float) -> None:
    """The clients back off through this: nothing sleeps."""


def echoing(kind: type[httpx.RequestError]) -> Raise:
    """A transport fault whose message quotes the request's headers and body, as a chatty proxy might."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise kind(
            f"{kind.__name__} for {request.url} headers={dict(request.headers)} body={request.content!r}",
            request=request,
        )

    return fail


FAULTS: dict[str, type[httpx.RequestError]] = {
    "connect_error": httpx.ConnectError,
    "connect_timeout": httpx.ConnectTimeout,
    "pool_timeout": httpx.PoolTimeout,
    "read_timeout": httpx.ReadTimeout,
    "write_timeout": httpx.WriteTimeout,
    "read_error": httpx.ReadError,
    "write_error": httpx.WriteError,
    "remote_protocol_error": httpx.RemoteProtocolError,
    "local_protocol_error": httpx.LocalProtocolError,
    "proxy_error": httpx.ProxyError,
    "unsupported_protocol": httpx.UnsupportedProtocol,
    "decoding_error": httpx.DecodingError,
}


#: faults raised before anything reached the provider
NOT_SENT = {
    "connect_error",
    "connect_timeout",
    "pool_timeout",
    "proxy_error",
    "local_protocol_error",
    "unsupported_protocol",
}


@contextmanager
def client(provider: str, fault: Raise, *, token_fails: bool = False) -> Iterator[Any]:
    """A client whose calls fail with ``fault`` (SendPulse's token call succeeds unless ``token_fails``)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/access_token") and not token_fails:
            return httpx.Response(200, json={"access_token": SP_TOKEN, "token_type": "Bearer", "expires_in": 3600})
        return fault(request)

    transport = httpx.MockTransport(handler)
    c: Any
    if provider == "sendpulse":
        c = SendPulseClient(SP_ID, SP_SECRET, "http://127.0.0.1", policy=POLICY, transport=transport, sleep=no_sleep)
    elif provider == "pakat":
        c = PakatClient(PAKAT_KEY, "http://127.0.0.1/api", policy=POLICY, transport=transport, sleep=no_sleep)
    else:
        c = LiteStartupClient(LS_KEY, "http://127.0.0.1/client/v2", policy=POLICY, transport=transport, sleep=no_sleep)
    with c:
        yield c


#: provider -> (a read, a non-idempotent write)
CALLS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "sendpulse": (
        lambda c: list(c.list_books()),
        lambda c: c.create_campaign(
            sender_name="N", sender_email="n@example.org", subject="S", book_id=1, body_html="<p>x</p>"
        ),
    ),
    "pakat": (
        lambda c: list(c.lists()),
        lambda c: c.create_campaign(
            name="C", list_uid="l", from_name="N", from_email="n@example.org", subject="S", reply_to="n@example.org"
        ),
    ),
    "litestartup": (
        lambda c: c.list_contacts_page(),
        lambda c: c.send_email("a@example.org", "n@example.org", "S", html="<p>x</p>"),
    ),
}


# -- walking an error's object graph ------------------------------------------------------------------------------


def texts(obj: Any, seen: set[int] | None = None, depth: int = 0) -> Iterator[str]:
    """Every piece of text reachable from ``obj``: exceptions (chain, args, attributes, notes, str, repr),
    httpx requests and responses (URL, headers, body), containers and plain objects' attributes."""
    seen = set() if seen is None else seen
    if obj is None or isinstance(obj, bool | int | float) or id(obj) in seen or depth > 12:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        yield obj
        return
    if isinstance(obj, bytes | bytearray):
        yield bytes(obj).decode("utf-8", "replace")
        return
    yield repr(obj)
    if isinstance(obj, BaseException):
        yield str(obj)
        for linked in (obj.__cause__, obj.__context__, obj.args, getattr(obj, "__notes__", None)):
            yield from texts(linked, seen, depth + 1)
        for name in ("request", "response"):
            with suppress(RuntimeError):  # httpx: ".request is not set"
                yield from texts(getattr(obj, name, None), seen, depth + 1)
    if isinstance(obj, httpx.Request):
        yield str(obj.url)
        yield from (f"{k}: {v}" for k, v in obj.headers.multi_items())
        with suppress(httpx.RequestNotRead):
            yield obj.content.decode("utf-8", "replace")
        return
    if isinstance(obj, httpx.Response):
        yield from (f"{k}: {v}" for k, v in obj.headers.multi_items())
        with suppress(httpx.ResponseNotRead):
            yield obj.text
        yield from texts(obj._request, seen, depth + 1)
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from texts(k, seen, depth + 1)
            yield from texts(v, seen, depth + 1)
        return
    if isinstance(obj, list | tuple | set | frozenset):
        for item in obj:
            yield from texts(item, seen, depth + 1)
        return
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        yield from texts(attrs, seen, depth + 1)


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def assert_clean(exc: BaseException, secrets: tuple[str, ...] = SECRETS) -> None:
    """No secret anywhere in ``exc``'s graph, its traceback text or its pickle; no httpx exception in its chain."""
    assert not [e for e in chain(exc) if isinstance(e, httpx.HTTPError)], "an httpx exception is still reachable"
    everything = list(texts(exc))
    everything.append("".join(traceback.format_exception(exc)))
    everything.append(pickle.dumps(exc).decode("latin-1"))
    for text in everything:
        for secret in secrets:
            assert secret not in text, f"{secret!r} found in: {text[:300]!r}"


# -- transport faults --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(CALLS))
@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("call", ["read", "write"])
def test_transport_fault_errors_carry_no_secret(provider: str, fault: str, call: str) -> None:
    run = CALLS[provider][0 if call == "read" else 1]
    with client(provider, echoing(FAULTS[fault])) as c, pytest.raises(EspError) as info:
        run(c)
    err = info.value
    if fault == "decoding_error":  # the answer came but cannot be decoded
        assert isinstance(err, UnexpectedOutcomeError if call == "write" else UnexpectedResponseError)
    elif call == "write" and fault not in NOT_SENT:
        assert isinstance(err, OutcomeUnknownError)  # it may have left: never resent
    else:
        assert isinstance(err, TransportError)
    assert_clean(err)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_sendpulse_token_call_fault_carries_no_client_secret(fault: str) -> None:
    """The token request's body holds ``client_secret``: a fault on it must not keep that request around."""
    with client("sendpulse", echoing(FAULTS[fault]), token_fails=True) as c, pytest.raises(EspError) as info:
        c.balance()
    assert info.value.path == "/oauth/access_token"
    assert_clean(info.value)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("provider", sorted(CALLS))
def test_connection_refused_on_a_closed_port(provider: str) -> None:
    """A real refused connection (nothing listens on the port), through httpx's own transport."""
    base = f"http://127.0.0.1:{closed_port()}"
    c: Any
    if provider == "sendpulse":
        c = SendPulseClient(SP_ID, SP_SECRET, base, policy=POLICY, sleep=no_sleep)
    elif provider == "pakat":
        c = PakatClient(PAKAT_KEY, f"{base}/api", policy=POLICY, sleep=no_sleep)
    else:
        c = LiteStartupClient(LS_KEY, f"{base}/client/v2", policy=POLICY, sleep=no_sleep)
    with c:
        for run in CALLS[provider]:
            with pytest.raises(TransportError) as info:
                run(c)
            assert info.value.sent is False
            assert_clean(info.value)


@pytest.mark.parametrize("provider", ["sendpulse", "pakat", "litestartup"])
@pytest.mark.parametrize("kind", ["timeout", "reset"])
def test_sandbox_timeouts_and_resets_carry_no_secret(provider: str, kind: str) -> None:
    """The sandboxes' injected faults arrive in-process as httpx exceptions holding the real request."""
    if provider == "sendpulse":
        sb: Any = SendPulseSandbox(seed=1, rate_limit=False)
        sb.reset(demo=True)
        c: Any = SendPulseClient(
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            "http://127.0.0.1",
            policy=POLICY,
            transport=InProcessTransport(sb.app),
            sleep=no_sleep,
        )
        secrets: tuple[str, ...] = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        path = r"^/addressbooks"
    elif provider == "pakat":
        sb = PakatSandbox(seed=1)
        sb.reset(demo=True)
        transport = InProcessTransport(sb.app)
        c = PakatClient(
            PAKAT_DEMO_KEY, api_base_url("http://127.0.0.1"), policy=POLICY, transport=transport, sleep=no_sleep
        )
        secrets, path = (PAKAT_DEMO_KEY,), r"/lists$"
    else:
        sb = LiteStartupSandbox(seed=1, rate_limit=False)
        sb.reset(demo=True)
        transport = InProcessTransport(sb.app)
        c = LiteStartupClient(
            LS_DEMO_KEY, "http://127.0.0.1/client/v2", policy=POLICY, transport=transport, sleep=no_sleep
        )
        secrets, path = (LS_DEMO_KEY,), r"/contacts$"
    sb.faults.add(kind, path=path)
    read: Callable[[], Any] = {
        "sendpulse": lambda: list(c.list_books()),
        "pakat": lambda: list(c.lists()),
        "litestartup": lambda: c.list_contacts_page(),
    }[provider]
    with c:
        if provider == "sendpulse":
            c.balance()  # a token first: the failing call then carries the Bearer header
            assert c._token
            secrets += (c._token,)
        with pytest.raises(TransportError) as info:
            read()
    assert_clean(info.value, secrets)


def test_adapter_errors_and_row_results_carry_no_secret() -> None:
    """Through an adapter too: LiteStartup's turns a per-row transient fault into a row result's error text."""
    with client("litestartup", echoing(httpx.ReadTimeout)) as c:
        adapter = LiteStartupProvider(c)
        with pytest.raises(TransportError) as info:
            list(adapter.list_members("vip"))
        assert_clean(info.value)
        [row] = adapter.upsert_members("vip", [MemberInput("a@example.org", {"city": "Kyiv"})])
    assert row.transient
    assert row.error
    for secret in SECRETS:
        assert secret not in row.error


# -- unexpected answers that echo the request ---------------------------------------------------------------------


def echo_page(request: httpx.Request) -> httpx.Response:
    """A 200 debug page quoting the request: headers (the key, the Bearer token) and body (the OAuth secret)."""
    headers = "\n".join(f"{k}: {v}" for k, v in request.headers.multi_items())
    body = request.content.decode("utf-8", "replace")
    return httpx.Response(200, html=f"<html><body><h1>Debug</h1><pre>{headers}\n\n{body}</pre></body></html>")


@pytest.mark.parametrize("provider", sorted(CALLS))
@pytest.mark.parametrize("call", ["read", "write"])
def test_unexpected_answer_excerpt_carries_no_echoed_secret(provider: str, call: str) -> None:
    with client(provider, echo_page) as c, pytest.raises(UnexpectedResponseError) as info:
        CALLS[provider][0 if call == "read" else 1](c)
    assert info.value.body
    assert "***" in info.value.body
    assert_clean(info.value)


def test_sendpulse_token_answer_echoing_the_secret_is_redacted() -> None:
    """A token answer that is not the documented shape: the excerpt hides the echoed client_secret and the
    token it did carry."""

    def odd_token(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"access_token": SP_TOKEN, "expires_in": "one hour", "echo": request.content.decode()}
        )

    with client("sendpulse", odd_token, token_fails=True) as c, pytest.raises(UnexpectedResponseError) as info:
        c.balance()
    assert info.value.path == "/oauth/access_token"
    assert_clean(info.value)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ('{"access_token":"tok-123456","token_type":"Bearer"}', "tok-123456"),
        ('{"client_secret": "cs-\\"quoted\\"-999"}', "cs-\\"),
        ('{"webhook": {"secret": "whsec_abcdef"}}', "whsec_abcdef"),
        ("grant_type=client_credentials&client_id=x&client_secret=cs-777", "cs-777"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
        ("X-API-KEY: k-0987654321", "k-0987654321"),
        ('{"api_key": "k-111"}', "k-111"),
    ],
)
def test_redactor_masks_secret_looking_fields_it_never_saw(text: str, hidden: str) -> None:
    masked = Redactor().body(text)
    assert hidden not in masked
    assert "***" in masked
