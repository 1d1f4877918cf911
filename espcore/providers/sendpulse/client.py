"""The SendPulse client: every documented operation, typed, over the shared HTTP policy."""

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from espcore.errors import (
    AuthError,
    ConfigurationError,
    ValidationError,
)
from espcore.http import Expect, HttpPolicy, ProviderClient, ProviderHttp, Shape
from espcore.providers.coerce import opt_int
from espcore.providers.sendpulse.constants import DATE_FMT, EMAILS_PER_CALL, PAGE_MAX, SENDPULSE_BASE_URL, R, T
from espcore.providers.sendpulse.errors import _seg, error_envelope, parse_error
from espcore.providers.sendpulse.models import (
    _BALANCE,
    _BALANCE_DETAIL,
    _BLACKLIST,
    _BOOK_CAMPAIGNS,
    _BOOK_DETAILS,
    _BOOKS,
    _CAMPAIGN,
    _CAMPAIGN_CREATED,
    _CAMPAIGNS,
    _CONTACT,
    _CONTACTS,
    _COST,
    _COUNTRIES,
    _CREATED,
    _EMAIL_CAMPAIGNS,
    _EMAILS_CAMPAIGNS,
    _EMAILS_INFO,
    _HOOKS,
    _MEMBERSHIPS,
    _OK,
    _ONE_BOOK,
    _ONE_HOOK,
    _RECIPIENT,
    _REFERRALS,
    _SENDERS,
    _TEMPLATE,
    _TEMPLATE_CREATED,
    _TEMPLATES,
    _TOKEN,
    _TOTAL,
    _V2_OK,
    _VARIABLES,
    AddressBook,
    BalanceDetail,
    BookCampaign,
    BookContact,
    BookCost,
    BookVariable,
    CampaignCreated,
    CampaignInfo,
    CampaignRecipientStatus,
    CurrencyBalance,
    EmailBookDetail,
    EmailCampaignSummary,
    EmailMembership,
    EmailToAdd,
    Sender,
    Template,
    Webhook,
    _dec,
    _dt,
    _Hook,
    _Token,
    _vars,
)


class _TokenFirstHttp(ProviderHttp):
    """:class:`ProviderHttp` that makes sure of the access token before an authenticated call's retry loop.

    The token call has its own retries; fetched from inside a call's attempt, a failing token endpoint would be
    tried ``max_attempts`` squared times. Fetched first, the policy's attempt bound holds.
    """

    def __init__(self, *args: Any, ensure_token: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ensure_token = ensure_token

    def request(self, method: str, path: str, *, authenticated: bool = True, **kwargs: Any) -> httpx.Response:
        if authenticated:
            self._ensure_token()
        return super().request(method, path, authenticated=authenticated, **kwargs)


class SendPulseClient(ProviderClient):
    """SendPulse email-service API over the shared HTTP policy, with a cached, thread-safe OAuth token."""

    REFRESH_MARGIN_S = 60.0

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        base_url: str = SENDPULSE_BASE_URL,
        *,
        policy: HttpPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        account_timezone: str = "UTC",
    ) -> None:
        if not client_id or not client_secret:
            raise AuthError("SendPulse client id and secret are required", provider="sendpulse")
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._refresh_margin = self.REFRESH_MARGIN_S
        self._token_lock = threading.Lock()
        self._sent_with = threading.local()  # the token this thread's last request carried
        try:
            self.account_tz = ZoneInfo(account_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"unknown account time zone {account_timezone!r}", provider="sendpulse") from None
        self.http: ProviderHttp = _TokenFirstHttp(
            "sendpulse",
            base_url,
            policy=policy or HttpPolicy(requests_per_second=10.0),
            error_parser=parse_error,
            error_envelope=error_envelope,
            auth_headers=self._auth_header,
            on_auth_failure=self._refresh_after_401,
            secrets=[client_id, client_secret],
            transport=transport,
            sleep=sleep,
            ensure_token=self._ensure_token,
        )

    def __repr__(self) -> str:
        return f"SendPulseClient(base_url={self.http.base_url!r})"

    # -- OAuth ----------------------------------------------------------------------------------------

    def _fetch_token(self) -> None:
        issued = self._clock()  # the lifetime runs from the server's issue, not from when the answer arrived
        data = self.http.call(
            "POST",
            "/oauth/access_token",
            self._token_answer,
            json={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            authenticated=False,
            idempotent=True,  # asking for a token twice has no side effect
        )
        token = data["access_token"]
        ttl = float(data.get("expires_in") or 3600)
        self._token = token
        self._token_expires = issued + ttl
        # Renew 60 s early; a short-lived token (a test account) is renewed at half its life instead, so that
        # it is not fetched anew before every call.
        self._refresh_margin = min(self.REFRESH_MARGIN_S, ttl / 2)

    def _token_answer(self, payload: Any) -> _Token:
        """The token answer; its token is registered as a secret first, so no error can quote it."""
        if isinstance(payload, dict) and isinstance(payload.get("access_token"), str):
            self.http.redact.add(payload["access_token"])
        return _TOKEN(payload)

    def _token_due(self) -> bool:
        return self._token is None or self._clock() >= self._token_expires - self._refresh_margin

    def _ensure_token(self) -> None:
        """Before a call's retry loop: fetch or renew the token (under the token call's own retries)."""
        with self._token_lock:
            if self._token_due():
                self._fetch_token()

    def _auth_header(self) -> dict[str, str]:
        with self._token_lock:
            if self._token_due():  # only when the token ran out during a call's retries
                self._fetch_token()
            self._sent_with.token = self._token
            return {"Authorization": f"Bearer {self._token}"}

    def _refresh_after_401(self) -> bool:
        with self._token_lock:
            failed = getattr(self._sent_with, "token", None)
            if self._token is None or self._token == failed:  # else another thread has renewed it already
                self._token = None
                self._fetch_token()
        return True

    def access_token_expires_in(self) -> float:
        """Seconds until the cached token expires (0 when none is cached)."""
        return max(0.0, self._token_expires - self._clock()) if self._token else 0.0

    # -- plumbing -----------------------------------------------------------------------------------

    def _get(self, path: str, shape: Expect[T], **params: Any) -> T:
        return self.http.call("GET", path, shape, params=params or None)

    def _write(self, method: str, path: str, shape: Expect[T] = _OK, **kwargs: Any) -> T:
        """A call that changes something, its answer checked (``{"result": true}`` unless said otherwise)."""
        return self.http.call(method, path, shape, **kwargs)

    def _pages(
        self, path: str, shape: Shape[list[R]], params: Mapping[str, Any] | None = None, limit: int = PAGE_MAX
    ) -> Iterator[R]:
        offset = 0
        while True:
            page = self._get(path, shape, **(params or {}), limit=limit, offset=offset)
            yield from page
            if len(page) < limit:
                return
            offset += limit

    def _format_send_date(self, when: datetime) -> str:
        if when.tzinfo is None:
            raise ValidationError("send_date must be timezone-aware", provider="sendpulse", fields={})
        return when.astimezone(self.account_tz).strftime(DATE_FMT)

    # -- address books ----------------------------------------------------------------------------------

    def list_books(self) -> Iterator[AddressBook]:
        """All address books, paging through limit/offset."""
        for d in self._pages("/addressbooks", _BOOKS):
            yield AddressBook.from_api(d)

    def get_book(self, book_id: int) -> AddressBook:
        """One address book (the API answers a one-element array)."""
        data = self._get(f"/addressbooks/{book_id}", _ONE_BOOK)
        return AddressBook.from_api(data[0] if isinstance(data, list) else data)

    def create_book(self, name: str) -> int:
        """Create an address book; returns its id (203 ConflictError if the name is taken).

        Names are unique, so a resend cannot make a second book: a transient failure is retried, and a retry
        after a lost answer meets 203 (the book exists; look it up by name).
        """
        return self._write("POST", "/addressbooks", _CREATED, json={"bookName": name}, idempotent=True)["id"]

    def rename_book(self, book_id: int, name: str) -> None:
        """Rename an address book."""
        self._write("PUT", f"/addressbooks/{book_id}", json={"name": name})

    def delete_book(self, book_id: int) -> None:
        """Delete an address book."""
        self._write("DELETE", f"/addressbooks/{book_id}")

    def book_variables(self, book_id: int) -> list[BookVariable]:
        """Variables defined on a book."""
        return [
            BookVariable(v["name"], v.get("type") or "string")
            for v in self._get(f"/addressbooks/{book_id}/variables", _VARIABLES)
        ]

    def find_by_variable(self, book_id: int, name: str, value: str) -> list[BookContact]:
        """Contacts of a book whose variable ``name`` equals ``value``."""
        data = self._get(f"/addressbooks/{book_id}/variables/{_seg(name)}/{_seg(value)}", _CONTACTS)
        return [BookContact.from_api(d, book_id) for d in data]

    def book_emails(self, book_id: int) -> Iterator[BookContact]:
        """Every contact of a book, paging through limit/offset."""
        for d in self._pages(f"/addressbooks/{book_id}/emails", _CONTACTS):
            yield BookContact.from_api(d, book_id)

    def book_email_total(self, book_id: int) -> int:
        """Number of contacts in a book."""
        return self._get(f"/addressbooks/{book_id}/emails/total", _TOTAL)["total"]

    def book_email(self, book_id: int, email: str) -> BookContact:
        """One contact of a book with its status and variables."""
        return BookContact.from_api(self._get(f"/addressbooks/{book_id}/emails/{_seg(email)}", _CONTACT), book_id)

    def add_emails(
        self,
        book_id: int,
        emails: Sequence[EmailToAdd],
        *,
        double_opt_in: bool = False,
        sender_email: str | None = None,
        template_id: str | None = None,
        message_lang: str | None = None,
        dont_update: bool | None = None,
        disable_webhook: bool | None = None,
        tags: Sequence[str] | None = None,
    ) -> None:
        """Add (upsert) contacts, in calls of at most 100; double opt-in sends a confirmation letter."""
        if double_opt_in and not sender_email:
            raise ValidationError(
                "double opt-in needs a confirmed sender_email",
                provider="sendpulse",
                fields={"sender_email": "required"},
            )
        for start in range(0, len(emails), EMAILS_PER_CALL):
            chunk = emails[start : start + EMAILS_PER_CALL]
            payload: dict[str, Any] = {
                "emails": [{"email": e.email, "variables": dict(e.variables)} for e in chunk],
            }
            if double_opt_in:
                payload["confirmation"] = "force"
                payload["sender_email"] = sender_email
                if template_id:
                    payload["template_id"] = template_id
                if message_lang:
                    payload["message_lang"] = message_lang
            if dont_update is not None:
                payload["dont_update"] = int(dont_update)
            if disable_webhook is not None:
                payload["disable_webhook"] = int(disable_webhook)
            if tags:
                payload["tags"] = list(tags)
            # An add is an upsert keyed by email: resending it cannot double anything. Only {"result": true} says
            # the book took the chunk; any other answer raises, and nothing of the chunk counts as added.
            self._write("POST", f"/addressbooks/{book_id}/emails", json=payload, idempotent=True)

    @staticmethod
    def add_emails_body(emails: Sequence[str], variables: Sequence[Mapping[str, Any]]) -> bytes:
        """The JSON body of a plain add call (no opt-in, no options) for at most 100 addresses and their book
        variables, encoded as :meth:`add_emails` sends it: built ahead, then sent by :meth:`post_add_emails`."""
        if len(emails) > EMAILS_PER_CALL:
            raise ValueError(f"an add call takes at most {EMAILS_PER_CALL} addresses, not {len(emails)}")
        rows = [{"email": e, "variables": v} for e, v in zip(emails, variables, strict=True)]
        return json.dumps({"emails": rows}, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()

    def post_add_emails(self, book_id: int, body: bytes) -> None:
        """The add call of :meth:`add_emails` with a body built by :meth:`add_emails_body`: the same request, the
        same answer checked."""
        self._write(
            "POST",
            f"/addressbooks/{book_id}/emails",
            content=body,
            headers={"Content-Type": "application/json"},
            idempotent=True,
        )

    def delete_emails(self, book_id: int, emails: Sequence[str]) -> None:
        """Remove contacts from one book (100 per call)."""
        for start in range(0, len(emails), EMAILS_PER_CALL):
            self._write(
                "DELETE",
                f"/addressbooks/{book_id}/emails",
                json={"emails": list(emails[start : start + EMAILS_PER_CALL])},
            )

    def unsubscribe_emails(self, book_id: int, emails: Sequence[str]) -> None:
        """Unsubscribe contacts in one book (status 4), 100 per call.

        A call whose addresses are all unsubscribed already (or absent) is answered 422 ``Active emails not
        found``: that is the desired end state, so it is not an error. This keeps the call idempotent (a retry
        after a lost answer) and lets the later calls of a long list go out.
        """
        for start in range(0, len(emails), EMAILS_PER_CALL):
            try:
                self._write(
                    "POST",
                    f"/addressbooks/{book_id}/emails/unsubscribe",
                    json={"emails": list(emails[start : start + EMAILS_PER_CALL])},
                    idempotent=True,
                )
            except ValidationError as exc:
                if "active emails not found" not in exc.message.lower():
                    raise

    def set_email_variables(self, book_id: int, email: str, variables: Mapping[str, Any]) -> None:
        """Change variables of one contact in a book."""
        self._write(
            "POST",
            f"/addressbooks/{book_id}/emails/variable",
            json={"email": email, "variables": [{"name": k, "value": v} for k, v in variables.items()]},
            idempotent=True,
        )

    def book_cost(self, book_id: int) -> BookCost:
        """What a campaign to this book would cost, and whether the balance covers it."""
        d = self._get(f"/addressbooks/{book_id}/cost", _COST)
        return BookCost(
            currency=d.get("cur"),
            sent_emails_qty=opt_int(d.get("sent_emails_qty")),
            overdraft_all_emails_price=_dec(d.get("overdraftAllEmailsPrice")),
            addresses_delta_from_balance=opt_int(d.get("addressesDeltaFromBalance")),
            addresses_delta_from_tariff=opt_int(d.get("addressesDeltaFromTariff")),
            max_emails_per_task=opt_int(d.get("max_emails_per_task")),
            enough=d["result"],
        )

    def book_campaigns(self, book_id: int) -> Iterator[BookCampaign]:
        """Campaigns sent to a book."""
        for d in self._pages(f"/addressbooks/{book_id}/campaigns", _BOOK_CAMPAIGNS):
            yield BookCampaign(d["task_id"], d.get("task_name") or "", opt_int(d.get("task_status")) or 0)

    # -- campaigns -------------------------------------------------------------------------------------

    def create_campaign(
        self,
        *,
        sender_name: str,
        sender_email: str,
        subject: str,
        book_id: int | None = None,
        book_ids: Sequence[int] | None = None,
        segment_id: int | None = None,
        body_html: str | None = None,
        body_amp: str | None = None,
        template_id: str | int | None = None,
        name: str | None = None,
        send_date: datetime | None = None,
        draft: bool = False,
        attachments: Mapping[str, str] | None = None,
        attachments_binary: Mapping[str, bytes] | None = None,
        send_test_only: Sequence[str] | None = None,
    ) -> CampaignCreated:
        """Create (and, unless a draft or scheduled, send) a campaign. Never retried: on an unknown outcome
        the caller finds the campaign by name (:meth:`find_campaign_by_name`)."""
        if (body_html is None) == (template_id is None):
            raise ValidationError("give exactly one of body_html or template_id", provider="sendpulse")
        payload: dict[str, Any] = {
            "sender_name": sender_name,
            "sender_email": sender_email,
            "subject": subject,
        }
        if book_ids:
            payload["list_id"] = list(book_ids)
        elif book_id is not None:
            payload["list_id"] = book_id
        if segment_id is not None:
            payload["segment_id"] = segment_id
        if body_html is not None:
            payload["body"] = base64.b64encode(body_html.encode("utf-8")).decode("ascii")
        if body_amp is not None:
            payload["body_amp"] = base64.b64encode(body_amp.encode("utf-8")).decode("ascii")
        if template_id is not None:
            payload["template_id"] = template_id
        if name:
            payload["name"] = name
        if send_date is not None:
            payload["send_date"] = self._format_send_date(send_date)
        if draft:
            payload["type"] = "draft"
        if attachments:
            payload["attachments"] = dict(attachments)
        if attachments_binary:
            payload["attachments_binary"] = {
                k: base64.b64encode(v).decode("ascii") for k, v in attachments_binary.items()
            }
        if send_test_only:
            payload["send_test_only"] = list(send_test_only)
        # Not a resend-safe call: an answer that is not the documented one raises UnexpectedOutcomeError (an
        # OutcomeUnknownError), so a launch looks the campaign up by name instead of posting it again.
        d = self._write("POST", "/campaigns", _CAMPAIGN_CREATED, json=payload, idempotent=False)
        return CampaignCreated(
            id=d["id"],
            status=opt_int(d.get("status")) or 0,
            count=opt_int(d.get("count")),
            tariff_email_qty=opt_int(d.get("tariff_email_qty")),
            paid_email_qty=opt_int(d.get("paid_email_qty")),
            overdraft_price=_dec(d.get("overdraft_price")),
            overdraft_currency=d.get("ovedraft_currency") or d.get("overdraft_currency"),
        )

    def edit_campaign(
        self,
        campaign_id: int,
        *,
        name: str | None = None,
        sender_name: str | None = None,
        sender_email: str | None = None,
        subject: str | None = None,
        body_html: str | None = None,
        template_id: str | int | None = None,
        send_date: datetime | None = None,
        send_test_only: Sequence[str] | None = None,
    ) -> None:
        """Change an unsent campaign, or send test copies (``send_test_only``, ≤ 3 addresses)."""
        payload: dict[str, Any] = {}
        for key, value in (
            ("name", name),
            ("sender_name", sender_name),
            ("sender_email", sender_email),
            ("subject", subject),
            ("template_id", template_id),
        ):
            if value is not None:
                payload[key] = value
        if body_html is not None:
            payload["body"] = base64.b64encode(body_html.encode("utf-8")).decode("ascii")
        if send_date is not None:
            payload["send_date"] = self._format_send_date(send_date)
        if send_test_only:
            payload["send_test_only"] = list(send_test_only)
        self._write("PATCH", f"/campaigns/{campaign_id}", json=payload, idempotent=not send_test_only)

    def get_campaign(self, campaign_id: int) -> CampaignInfo:
        """One campaign with its statistics."""
        return CampaignInfo.from_api(self._get(f"/campaigns/{campaign_id}", _CAMPAIGN))

    def list_campaigns(self) -> Iterator[CampaignInfo]:
        """All campaigns (list items carry no statistics)."""
        for d in self._pages("/campaigns", _CAMPAIGNS):
            yield CampaignInfo.from_api(d)

    def find_campaign_by_name(self, suffix: str) -> CampaignInfo | None:
        """The newest campaign whose name ends with ``suffix`` (used to resolve unknown outcomes)."""
        found = [c for c in self.list_campaigns() if c.name.endswith(suffix)]
        return max(found, key=lambda c: c.id) if found else None

    def campaign_countries(self, campaign_id: int) -> dict[str, int]:
        """Opens per country code."""
        return self._get(f"/campaigns/{campaign_id}/countries", _COUNTRIES)

    def campaign_referrals(self, campaign_id: int) -> dict[str, int]:
        """Clicks per link."""
        return {x["link"]: x.get("count") or 0 for x in self._get(f"/campaigns/{campaign_id}/referrals", _REFERRALS)}

    def campaign_recipient(self, campaign_id: int, email: str) -> CampaignRecipientStatus:
        """One recipient's delivery status in a campaign."""
        d = self._get(f"/campaigns/{campaign_id}/email/{_seg(email)}", _RECIPIENT)
        return CampaignRecipientStatus(
            _dt(d.get("sent_date")),
            d["global_status"],
            d.get("global_status_explain") or "",
        )

    def cancel_campaign(self, campaign_id: int) -> None:
        """Cancel a campaign that has not been sent yet."""
        self._write("DELETE", f"/campaigns/{campaign_id}")

    # -- templates ----------------------------------------------------------------------------------

    def create_template(self, body_html: str, *, name: str | None = None, lang: str = "en") -> int:
        """Create a template; returns its ``real_id`` (stable across edits)."""
        payload: dict[str, Any] = {
            "body": base64.b64encode(body_html.encode("utf-8")).decode("ascii"),
            "lang": lang,
        }
        if name:
            payload["name"] = name
        return self._write("POST", "/template", _TEMPLATE_CREATED, json=payload, idempotent=False)["real_id"]

    def edit_template(self, template_id: int | str, body_html: str, *, lang: str = "en") -> None:
        """Replace a template's body."""
        payload = {"body": base64.b64encode(body_html.encode("utf-8")).decode("ascii"), "lang": lang}
        self._write("POST", f"/template/edit/{_seg(template_id)}", json=payload, idempotent=True)

    def get_template(self, template_id: int | str) -> Template:
        """One template with its decoded body."""
        return Template.from_api(self._get(f"/template/{_seg(template_id)}", _TEMPLATE))

    def get_template_by_slug(self, name_slug: str) -> Template:
        """One template by its ``name_slug`` (the system name the template answers carry), with its decoded body."""
        return Template.from_api(self._get(f"/templates/template/slug/{_seg(name_slug)}", _TEMPLATE))

    def list_templates(self, *, owner: str | None = "me", lang: str | None = None) -> Iterator[Template]:
        """Templates, the account's own by default."""
        path = f"/templates/{_seg(lang)}" if lang else "/templates"
        for d in self._pages(path, _TEMPLATES, {"owner": owner} if owner else None):
            yield Template.from_api(d)

    # -- senders ---------------------------------------------------------------------------------------

    def list_senders(self) -> list[Sender]:
        """Sender addresses and their activation status."""
        return [Sender(d.get("name") or "", d["email"], d.get("status") or "") for d in self._get("/senders", _SENDERS)]

    def add_sender(self, email: str, name: str) -> None:
        """Register a sender; it needs activation by code before use (902 ConflictError if it exists, which a
        retry after a lost answer also meets: addresses are unique, so a resend cannot double it)."""
        self._write("POST", "/senders", json={"email": email, "name": name}, idempotent=True)

    def delete_sender(self, email: str) -> None:
        """Remove a sender."""
        self._write("DELETE", "/senders", json={"email": email})

    def request_sender_code(self, email: str) -> None:
        """Mail the activation code to the sender address."""
        self._get(f"/senders/{_seg(email)}/code", _OK)

    def activate_sender(self, email: str, code: str) -> None:
        """Activate a sender with the code it received."""
        self._write("POST", f"/senders/{_seg(email)}/code", json={"code": code}, idempotent=True)

    # -- blacklist ------------------------------------------------------------------------------------

    @staticmethod
    def _b64_list(emails: Sequence[str]) -> str:
        return base64.b64encode(",".join(emails).encode("utf-8")).decode("ascii")

    def blacklist(self) -> list[str]:
        """Every account-wide blacklisted address."""
        return list(self._pages("/blacklist", _BLACKLIST))

    def add_to_blacklist(self, emails: Sequence[str], comment: str | None = None) -> None:
        """Blacklist addresses account-wide (nothing to send for an empty list)."""
        if not emails:
            return
        payload: dict[str, Any] = {"emails": self._b64_list(emails)}
        if comment:
            payload["comment"] = comment
        self._write("POST", "/blacklist", json=payload, idempotent=True)

    def remove_from_blacklist(self, emails: Sequence[str]) -> None:
        """Take addresses off the blacklist (nothing to send for an empty list)."""
        if not emails:
            return
        self._write("DELETE", "/blacklist", json={"emails": self._b64_list(emails)})

    # -- balance --------------------------------------------------------------------------------------

    def balance(self, currency: str | None = None) -> CurrencyBalance:
        """Account balance in the account currency, or converted to ``currency``."""
        d = self._get(f"/balance/{_seg(currency)}" if currency else "/balance", _BALANCE)
        return CurrencyBalance(d["currency"], d["balance_currency"])

    def balance_detail(self) -> BalanceDetail:
        """Money, bonus and plan letters left."""
        d = self._get("/user/balance/detail", _BALANCE_DETAIL)
        bal = d["balance"]
        em = d["email"]
        return BalanceDetail(
            main=_dec(bal.get("main")),
            bonus=_dec(bal.get("bonus")),
            currency=bal.get("currency"),
            tariff_name=em.get("tariff_name"),
            finished_time=_dt(em.get("finished_time")),
            emails_left=opt_int(em.get("emails_left")),
            maximum_subscribers=opt_int(em.get("maximum_subscribers")),
            current_subscribers=opt_int(em.get("current_subscribers")),
            raw=dict(d),
        )

    # -- email information --------------------------------------------------------------------------

    def email_memberships(self, email: str) -> list[EmailMembership]:
        """The books an address belongs to, with status and variables."""
        return [
            EmailMembership(d["book_id"], d.get("email") or email, d.get("status") or 0, _vars(d.get("variables")))
            for d in self._get(f"/emails/{_seg(email)}", _MEMBERSHIPS)
        ]

    def emails_memberships(self, emails: Sequence[str]) -> dict[str, list[EmailMembership]]:
        """The books of several addresses in one call (``POST /emails``); nothing is sent for an empty list."""
        if not emails:
            return {}
        body = {"emails": list(emails)}
        d = self._write("POST", "/emails", _EMAILS_INFO, json=body, idempotent=True, changes=False)
        return {
            email: [
                EmailMembership(r["book_id"], r.get("email") or email, r.get("status") or 0, _vars(r.get("variables")))
                for r in rows
            ]
            for email, rows in d.items()
        }

    def email_details(self, email: str) -> list[EmailBookDetail]:
        """When and how an address joined each book."""
        return [
            EmailBookDetail(d.get("list_name") or "", d["list_id"], _dt(d.get("add_date")), d.get("source"))
            for d in self._get(f"/emails/{_seg(email)}/details", _BOOK_DETAILS)
        ]

    def email_campaigns(self, email: str) -> EmailCampaignSummary:
        """Campaign statistics and blacklist flag of one address."""
        d = self._get(f"/emails/{_seg(email)}/campaigns", _EMAIL_CAMPAIGNS)
        st = d["statistic"]
        return EmailCampaignSummary(st.get("sent") or 0, st.get("open") or 0, st.get("link") or 0, d["blacklist"])

    def emails_campaigns(self, emails: Sequence[str]) -> dict[str, EmailCampaignSummary]:
        """Campaign statistics of several addresses at once."""
        body = {"emails": list(emails)}
        d = self._write("POST", "/emails/campaigns", _EMAILS_CAMPAIGNS, json=body, idempotent=True, changes=False)
        out: dict[str, EmailCampaignSummary] = {}
        for email, v in d.items():
            books = tuple((b["id"], b.get("name") or "") for b in v.get("adressbooks") or [])
            out[email] = EmailCampaignSummary(
                v.get("sent") or 0, v.get("open") or 0, v.get("link") or 0, bool(v.get("blacklist")), books
            )
        return out

    def delete_email_everywhere(self, email: str) -> None:
        """Remove an address from every book."""
        self._write("DELETE", f"/emails/{_seg(email)}")

    # -- webhooks -------------------------------------------------------------------------------------

    def list_webhooks(self) -> list[Webhook]:
        """Registered webhooks (one per action)."""
        return [_webhook(x) for x in self._get("/v2/email-service/webhook", _HOOKS)["data"]]

    def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook by id (404 NotFoundError once deleted)."""
        return _webhook(self._get(f"/v2/email-service/webhook/{_seg(webhook_id)}", _ONE_HOOK)["data"])

    def create_webhook(self, url: str, actions: Sequence[str]) -> list[Webhook]:
        """Register ``url`` for each action; one hook per action."""
        body = {"url": url, "actions": list(actions)}
        d = self._write("POST", "/v2/email-service/webhook", _HOOKS, json=body, idempotent=False)
        return [_webhook(x) for x in d["data"]]

    def update_webhook(self, webhook_id: str, url: str) -> None:
        """Point a webhook at a new URL."""
        self._write("PUT", f"/v2/email-service/webhook/{_seg(webhook_id)}", _V2_OK, json={"url": url})

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook."""
        self._write("DELETE", f"/v2/email-service/webhook/{_seg(webhook_id)}", _V2_OK)


def _webhook(d: _Hook) -> Webhook:
    return Webhook(d["id"], d.get("url") or "", d.get("action") or "", d.get("user_id") or None)


# -- status maps (as documented) --------------------------------------------------------------------------
