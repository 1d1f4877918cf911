"""The Pakat client: every operation of the published API, typed, over the shared HTTP policy."""

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx

from espcore.errors import (
    AuthError,
    NotFoundError,
)
from espcore.http import Expect, HttpPolicy, ProviderClient, ProviderHttp, Shape
from espcore.providers.coerce import as_int
from espcore.providers.pakat.constants import (
    BULK_MAX,
    DATE_FMT,
    PAKAT_BASE_URL,
    PER_PAGE_MAX,
    PER_PAGE_MIN,
    PROVIDER,
    Rec,
    T,
)
from espcore.providers.pakat.errors import PakatMutexError, _flatten_errors, error_envelope, parse_pakat_error
from espcore.providers.pakat.models import (
    _BULK,
    _COLLECTION,
    _QUOTA,
    _TOGGLE,
    BOUNCE,
    BOUNCE_CREATED,
    CAMPAIGN,
    COUNTRY,
    DELIVERY_LOG,
    DELIVERY_SERVER,
    FIELD,
    FIELD_TYPE,
    LIST,
    MEMBERSHIP,
    SEGMENT,
    SEGMENT_OPERATOR,
    SENDING_DOMAIN,
    STATS,
    SUBSCRIBER,
    SUBSCRIBER_REF,
    TEMPLATE,
    TEMPLATE_ROW,
    TRACKED_URL,
    TRANSACTIONAL,
    UNSUBSCRIBE,
    ZONE,
    BulkItemResult,
    CampaignBounce,
    CampaignUnsubscribe,
    Country,
    DeliveryLog,
    DeliveryServer,
    FieldType,
    PakatCampaign,
    PakatCampaignStats,
    PakatField,
    PakatList,
    PakatQuota,
    PakatSegment,
    PakatSubscriber,
    PakatTemplate,
    SegmentOperator,
    SendingDomain,
    SubscriberMembership,
    SubscriberRef,
    TransactionalAttachment,
    TransactionalEmail,
    Zone,
    _action,
    _collection,
    _created,
    _data,
    _field_created,
    _log,
    _record,
    _records,
    _str,
    b64,
    flatten_form,
    parse_date,
)


class PakatClient(ProviderClient):
    """Typed client of Pakat's customer API (MailWizz 2.x); every call goes through :class:`ProviderHttp`."""

    def __init__(
        self,
        api_key: str,
        base_url: str = PAKAT_BASE_URL,
        *,
        policy: HttpPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timezone: str = "UTC",
        mutex_attempts: int = 5,
    ) -> None:
        if not api_key:
            raise AuthError("a Pakat API key is required (PAKAT_API_KEY)", provider=PROVIDER)
        self._api_key = api_key
        self.timezone = ZoneInfo(timezone)
        self.mutex_attempts = max(1, mutex_attempts)
        self._sleep = sleep
        self.http = ProviderHttp(
            PROVIDER,
            base_url,
            policy=policy,
            error_parser=parse_pakat_error,
            error_envelope=error_envelope,
            auth_headers=lambda: {"X-API-KEY": self._api_key},
            secrets=[api_key],
            transport=transport,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"PakatClient(base_url={self.http.base_url!r}, timezone={self.timezone.key!r})"

    # -- transport ----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, expect: Expect[T], **kwargs: Any) -> T:
        delay = 0.5
        for attempt in range(1, self.mutex_attempts + 1):
            try:
                return self.http.call(method, path, expect, **kwargs)
            except PakatMutexError:
                if attempt >= self.mutex_attempts:
                    raise
                self._sleep(delay)
                delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, path: str, expect: Expect[T], params: Mapping[str, Any] | None = None) -> T:
        return self._call("GET", path, expect, params=dict(params or {}))

    def _post(
        self,
        path: str,
        expect: Expect[T],
        fields: Mapping[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> T:
        return self._call("POST", path, expect, data=flatten_form(fields or {}), idempotent=idempotent)

    def _put(self, path: str, expect: Expect[T], fields: Mapping[str, Any] | None = None) -> T:
        # Always an urlencoded body built here: a multipart PUT is silently ignored by the service.
        body = urlencode(list(flatten_form(fields or {}).items())).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self._call("PUT", path, expect, content=body, headers=headers)

    def _delete(self, path: str) -> None:
        self._call("DELETE", path, _action)

    def _paginate(
        self,
        path: str,
        item: Shape[Rec],
        uid_key: str | None,
        params: Mapping[str, Any] | None = None,
        per_page: int = 50,
    ) -> Iterator[Rec]:
        per_page = min(PER_PAGE_MAX, max(PER_PAGE_MIN, per_page))
        seen: set[str] = set()
        page = 1
        while True:
            records, nxt = self._get(path, _collection(item), {**(params or {}), "page": page, "per_page": per_page})
            for rec in records:
                key = _dig(rec, uid_key) if uid_key else None
                if key:
                    if key in seen:
                        continue
                    seen.add(key)
                yield rec
            if not nxt or nxt <= page:
                return
            page = nxt

    # -- account ------------------------------------------------------------------------------------------

    def quota(self) -> PakatQuota:
        """The sending quota (``GET /quota/index``), Pakat's "balance"; also the key check."""
        q = self._get("/quota/index", _QUOTA)["quota"]
        allowed_raw = q.get("allowed")
        unlimited = isinstance(allowed_raw, str) and allowed_raw.strip() in ("∞", "")
        allowed = None if unlimited or allowed_raw is None else as_int(allowed_raw)
        pct_raw = _str(q.get("percentage")).strip().rstrip("%")
        try:
            pct = float(pct_raw) if pct_raw else None
        except ValueError:
            pct = None
        return PakatQuota(used=as_int(q.get("used")), allowed=allowed, unlimited=unlimited, percentage=pct)

    def verify(self) -> PakatQuota:
        """Check the API key (there is no dedicated endpoint; a bad key raises AuthError)."""
        return self.quota()

    # -- lists --------------------------------------------------------------------------------------------

    def lists(self, *, per_page: int = 50) -> Iterator[PakatList]:
        """Every list, newest first, auto-paginating and de-duplicated by uid."""
        for rec in self._paginate("/lists", LIST, "general.list_uid", per_page=per_page):
            yield PakatList.from_api(rec)

    def get_list(self, list_uid: str) -> PakatList:
        """One list."""
        return PakatList.from_api(self._get(f"/lists/{list_uid}", _record(LIST)))

    @staticmethod
    def _list_fields(
        name: str | None,
        description: str | None,
        from_name: str | None,
        from_email: str | None,
        reply_to: str | None,
        subject: str | None,
        opt_in: str | None,
        notifications: Mapping[str, Any] | None,
        company: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "general": {"name": name, "description": description, "opt_in": opt_in},
            "defaults": {"from_name": from_name, "from_email": from_email, "reply_to": reply_to, "subject": subject},
            "notifications": dict(notifications or {}) or None,
            "company": dict(company or {}) or None,
        }

    def create_list(
        self,
        name: str,
        description: str,
        *,
        from_name: str,
        from_email: str,
        reply_to: str,
        subject: str | None = None,
        opt_in: str | None = None,
        notifications: Mapping[str, Any] | None = None,
        company: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a list and return its uid (``opt_in`` single/double where the service exposes it)."""
        fields = self._list_fields(
            name, description, from_name, from_email, reply_to, subject, opt_in, notifications, company
        )
        return self._post("/lists", _created("list_uid"), fields)

    def update_list(
        self,
        list_uid: str,
        *,
        name: str | None = None,
        description: str | None = None,
        from_name: str | None = None,
        from_email: str | None = None,
        reply_to: str | None = None,
        subject: str | None = None,
        opt_in: str | None = None,
        notifications: Mapping[str, Any] | None = None,
        company: Mapping[str, Any] | None = None,
    ) -> None:
        """Update a list (only the given attributes are sent)."""
        fields = self._list_fields(
            name, description, from_name, from_email, reply_to, subject, opt_in, notifications, company
        )
        self._put(f"/lists/{list_uid}", _action, fields)

    def delete_list(self, list_uid: str) -> None:
        """Delete a list and its subscribers."""
        self._delete(f"/lists/{list_uid}")

    def copy_list(self, list_uid: str) -> str:
        """Copy a list (settings and fields) and return the new uid."""
        return self._post(f"/lists/{list_uid}/copy", _created("list_uid"))

    def list_fields(self, list_uid: str) -> list[PakatField]:
        """The custom fields of a list (unpaginated)."""
        return [PakatField.from_api(r) for r in self._get(f"/lists/{list_uid}/fields", _records(FIELD))]

    def create_list_field(
        self, list_uid: str, tag: str, label: str, *, type: str = "text", required: bool = False
    ) -> PakatField | None:
        """Create a custom field (TAG upper case); returns it when the service echoes it."""
        fields = {"type": type, "label": label, "tag": tag, "required": required}
        rec = self._post(f"/lists/{list_uid}/fields", _field_created, fields)
        return PakatField.from_api(rec) if rec is not None else None

    def get_list_field(self, list_uid: str, field_id: int) -> PakatField:
        """One custom field of a list by its id."""
        return PakatField.from_api(self._get(f"/lists/{list_uid}/fields/{field_id}", _record(FIELD)))

    def update_list_field(
        self,
        list_uid: str,
        field_id: int,
        *,
        label: str | None = None,
        tag: str | None = None,
        required: bool | None = None,
        visibility: Literal["visible", "hidden", "none"] | None = None,
        sort_order: int | None = None,
        default_value: str | None = None,
        help_text: str | None = None,
        description: str | None = None,
    ) -> PakatField:
        """Update a custom field (only the given attributes are sent) and return it as stored."""
        fields = {
            "label": label,
            "tag": tag,
            "required": required,
            "visibility": visibility,
            "sort_order": sort_order,
            "default_value": default_value,
            "help_text": help_text,
            "description": description,
        }
        return PakatField.from_api(self._put(f"/lists/{list_uid}/fields/{field_id}", _record(FIELD), fields))

    def delete_list_field(self, list_uid: str, field_id: int) -> None:
        """Delete a custom field and its subscriber values."""
        self._delete(f"/lists/{list_uid}/fields/{field_id}")

    def list_field_types(self) -> list[FieldType]:
        """The field types a list field may have."""
        return [
            FieldType(r["identifier"], r["name"], r.get("description"))
            for r in self._paginate("/lists/fields/types", FIELD_TYPE, "identifier")
        ]

    # -- subscribers --------------------------------------------------------------------------------------

    def list_subscribers(
        self, list_uid: str, *, status: str | None = None, per_page: int = 50
    ) -> Iterator[PakatSubscriber]:
        """Subscribers of a list, newest first, optionally by status (checked client-side too)."""
        params = {"status": status} if status else {}
        for rec in self._paginate(f"/lists/{list_uid}/subscribers", SUBSCRIBER, "subscriber_uid", params, per_page):
            sub = PakatSubscriber.from_api(rec)
            if status and sub.status != status:
                continue  # the service ignores unknown status filters
            yield sub

    def count_subscribers(self, list_uid: str, *, status: str | None = None) -> int:
        """How many subscribers a list has (one small page; ``count`` is a string, null when empty)."""
        params: dict[str, Any] = {"page": 1, "per_page": PER_PAGE_MIN}
        if status:
            params["status"] = status
        return self._get(f"/lists/{list_uid}/subscribers", _COLLECTION, params)["data"].get("count") or 0

    def get_subscriber(self, list_uid: str, subscriber_uid: str) -> PakatSubscriber:
        """One subscriber (no ``date_added`` in this answer)."""
        return PakatSubscriber.from_api(
            self._get(f"/lists/{list_uid}/subscribers/{subscriber_uid}", _record(SUBSCRIBER))
        )

    def search_subscriber(self, list_uid: str, email: str) -> SubscriberRef | None:
        """Find a subscriber of a list by email; None when absent (the service answers 404)."""
        try:
            data = self._get(f"/lists/{list_uid}/subscribers/search-by-email", _data(SUBSCRIBER_REF), {"EMAIL": email})
        except NotFoundError as exc:
            if "does not exist in this list" in exc.message.lower():
                return None
            raise  # the list itself is missing
        return SubscriberRef(data["subscriber_uid"], data["status"], parse_date(data.get("date_added")))

    def search_subscribers_by_custom_fields(
        self, list_uid: str, values: Mapping[str, str], *, per_page: int = 50
    ) -> Iterator[PakatSubscriber]:
        """Subscribers of a list whose fields equal every given ``TAG: value`` (exact match)."""
        path = f"/lists/{list_uid}/subscribers/search-by-custom-fields"
        for rec in self._paginate(path, SUBSCRIBER, "subscriber_uid", dict(values), per_page):
            yield PakatSubscriber.from_api(rec)

    def search_subscriber_in_all_lists(self, email: str) -> list[SubscriberMembership]:
        """Every list an email is in (max 100, unpaginated)."""
        records = self._get("/lists/subscribers/search-by-email-in-all-lists", _records(MEMBERSHIP), {"EMAIL": email})
        return [
            SubscriberMembership(
                subscriber_uid=r["subscriber_uid"],
                email=r["email"],
                status=r["status"],
                list_uid=r["list"]["list_uid"],
                list_name=r["list"].get("name"),
                date_added=parse_date(r.get("date_added")),
            )
            for r in records
        ]

    @staticmethod
    def _subscriber_fields(
        email: str | None,
        fields: Mapping[str, Any] | None,
        status: str | None,
        source: str | None,
        ip_address: str | None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"EMAIL": email}
        out.update({k: v for k, v in (fields or {}).items() if k != "EMAIL"})
        details = {"status": status, "source": source, "ip_address": ip_address}
        if any(v is not None for v in details.values()):
            out["details"] = details
        return out

    def create_subscriber(
        self,
        list_uid: str,
        email: str,
        fields: Mapping[str, Any] | None = None,
        *,
        status: str | None = "confirmed",
        source: str | None = None,
        ip_address: str | None = None,
    ) -> PakatSubscriber:
        """Add a subscriber (an unsubscribed one is re-subscribed in place: look up first when that matters)."""
        payload = self._subscriber_fields(email, fields, status, source, ip_address)
        return PakatSubscriber.from_api(self._post(f"/lists/{list_uid}/subscribers", _record(SUBSCRIBER), payload))

    def update_subscriber(
        self,
        list_uid: str,
        subscriber_uid: str,
        fields: Mapping[str, Any] | None = None,
        *,
        email: str | None = None,
        status: str | None = None,
        source: str | None = None,
        ip_address: str | None = None,
    ) -> PakatSubscriber:
        """Update the TAGs sent (required fields other than EMAIL must be re-sent)."""
        payload = self._subscriber_fields(email, fields, status, source, ip_address)
        path = f"/lists/{list_uid}/subscribers/{subscriber_uid}"
        return PakatSubscriber.from_api(self._put(path, _record(SUBSCRIBER), payload))

    def delete_subscriber(self, list_uid: str, subscriber_uid: str) -> None:
        """Delete a subscriber from a list."""
        self._delete(f"/lists/{list_uid}/subscribers/{subscriber_uid}")

    def unsubscribe(self, list_uid: str, subscriber_uid: str) -> None:
        """Unsubscribe a subscriber (a silent no-op unless confirmed)."""
        self._put(f"/lists/{list_uid}/subscribers/{subscriber_uid}/unsubscribe", _action)

    def unsubscribe_from_all_lists(self, email: str) -> None:
        """Unsubscribe an email from every list."""
        self._put("/lists/subscribers/unsubscribe-by-email-from-all-lists", _action, {"EMAIL": email})

    def bulk_add_subscribers(
        self,
        list_uid: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        status: str | None = "confirmed",
        chunk_size: int = BULK_MAX,
    ) -> list[BulkItemResult]:
        """Create many subscribers (rows carry ``EMAIL`` and TAGs), chunked to ≤ 10,000; results in input order.

        Marked idempotent: bulk never updates, so a resend after a lost answer yields "exists" per item, which
        callers count as accepted.
        """
        chunk_size = max(1, min(BULK_MAX, chunk_size))
        results: list[BulkItemResult] = []
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start : start + chunk_size]
            items: dict[str, Any] = {}
            for i, row in enumerate(chunk):
                item = {k: v for k, v in row.items()}
                if status is not None:
                    item["details"] = {**dict(item.get("details") or {}), "status": status}
                items[str(i)] = item
            # Only the documented envelope says which items were taken; anything else raises (an
            # UnexpectedOutcomeError) and no item of the chunk counts as added. Per-item errors are answers.
            body = self._post(f"/lists/{list_uid}/subscribers/bulk", _BULK, {"subscribers": items}, idempotent=True)
            records = body["data"]["records"]
            for i, row in enumerate(chunk):
                email = _str(row.get("EMAIL"))
                if i >= len(records):
                    results.append(
                        BulkItemResult(start + i, email, False, errors={"_common": "no result returned"}, missing=True)
                    )
                    continue
                rec = records[i]
                data = rec["data"] if isinstance(rec["data"], dict) else {}
                errors = _flatten_errors(rec.get("errors")) if rec.get("errors") else {}
                uid = data.get("subscriber_uid") if not errors else None
                uid = str(uid) if uid else None
                results.append(BulkItemResult(start + i, email, not errors and bool(uid), uid, errors))
        return results

    # -- segments -----------------------------------------------------------------------------------------

    def segments(self, list_uid: str, *, per_page: int = 50) -> Iterator[PakatSegment]:
        """Segments of a list."""
        for r in self._paginate(f"/lists/{list_uid}/segments", SEGMENT, "segment_uid", per_page=per_page):
            yield PakatSegment(r["segment_uid"], r["name"], as_int(r.get("subscribers_count")))

    def create_segment(
        self, list_uid: str, name: str, conditions: Sequence[Mapping[str, Any]] = (), *, operator_match: str = "any"
    ) -> str:
        """Create a segment (conditions: field_id, operator_id, value) and return its uid."""
        payload = {"name": name, "operator_match": operator_match, "conditions": [dict(c) for c in conditions]}
        return self._post(f"/lists/{list_uid}/segments", _created("segment_uid"), payload)

    def get_segment(self, list_uid: str, segment_uid: str) -> PakatSegment:
        """One segment of a list."""
        r = self._get(f"/lists/{list_uid}/segments/{segment_uid}", _record(SEGMENT))
        return PakatSegment(r["segment_uid"], r["name"], as_int(r.get("subscribers_count")))

    def update_segment(
        self,
        list_uid: str,
        segment_uid: str,
        *,
        name: str | None = None,
        operator_match: Literal["any", "all"] | None = None,
        conditions: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Update a segment's name, match mode and/or conditions (given conditions replace the old ones)."""
        payload: dict[str, Any] = {"name": name, "operator_match": operator_match}
        if conditions is not None:
            payload["conditions"] = [dict(c) for c in conditions]
        self._put(f"/lists/{list_uid}/segments/{segment_uid}", _action, payload)

    def delete_segment(self, list_uid: str, segment_uid: str) -> None:
        """Delete a segment (its subscribers stay in the list)."""
        self._delete(f"/lists/{list_uid}/segments/{segment_uid}")

    def segment_condition_operators(self) -> list[SegmentOperator]:
        """The operators a segment condition may use."""
        return [
            SegmentOperator(as_int(r["operator_id"]), r["name"], r.get("slug"))
            for r in self._paginate("/lists/segments/condition-operators", SEGMENT_OPERATOR, "operator_id")
        ]

    def segment_subscribers(self, list_uid: str, segment_uid: str, *, per_page: int = 50) -> Iterator[PakatSubscriber]:
        """Subscribers matching a segment."""
        path = f"/lists/{list_uid}/segments/{segment_uid}/subscribers"
        for rec in self._paginate(path, SUBSCRIBER, "subscriber_uid", per_page=per_page):
            yield PakatSubscriber.from_api(rec)

    # -- templates ----------------------------------------------------------------------------------------

    def templates(self, *, name: str | None = None, per_page: int = 50) -> Iterator[PakatTemplate]:
        """Templates, optionally filtered by name."""
        params = {"filter[name]": name} if name else {}
        for r in self._paginate("/templates", TEMPLATE_ROW, "template_uid", params, per_page):
            yield PakatTemplate(r["template_uid"], r["name"], None, r.get("screenshot"))

    def get_template(self, template_uid: str) -> PakatTemplate:
        """One template with its HTML."""
        rec = self._get(f"/templates/{template_uid}", _record(TEMPLATE))
        return PakatTemplate(template_uid, rec["name"], rec.get("content"), rec.get("screenshot"))

    def create_template(self, name: str, html: str, *, inline_css: bool | None = None) -> str:
        """Create a template (HTML sent base64) and return its uid."""
        payload = {"template": {"name": name, "content": b64(html), "inline_css": inline_css}}
        return self._post("/templates", _created("template_uid"), payload)

    def update_template(self, template_uid: str, *, name: str | None = None, html: str | None = None) -> None:
        """Update a template's name and/or HTML."""
        payload = {"template": {"name": name, "content": b64(html) if html else None}}
        self._put(f"/templates/{template_uid}", _action, payload)

    def delete_template(self, template_uid: str) -> None:
        """Delete a template."""
        self._delete(f"/templates/{template_uid}")

    # -- campaigns ----------------------------------------------------------------------------------------

    def format_send_at(self, when: datetime | str | None) -> str:
        """``send_at`` in the customer's timezone (aware datetimes are converted; naive ones taken as is)."""
        if isinstance(when, str):
            return when
        when = when or datetime.now(UTC)
        if when.tzinfo is not None:
            when = when.astimezone(self.timezone)
        return when.strftime(DATE_FMT)

    def campaigns(self, *, list_uid: str | None = None, per_page: int = 50) -> Iterator[PakatCampaign]:
        """Campaign summaries, newest first (``list_uid`` sent, but the service may ignore it)."""
        params = {"list_uid": list_uid} if list_uid else {}
        for r in self._paginate("/campaigns", CAMPAIGN, "campaign_uid", params, per_page):
            yield PakatCampaign.from_api(r)

    def get_campaign(self, campaign_uid: str) -> PakatCampaign:
        """One campaign with sender, subject, send_at and list."""
        return PakatCampaign.from_api(self._get(f"/campaigns/{campaign_uid}", _record(CAMPAIGN)))

    def _campaign_payload(
        self,
        *,
        name: str | None,
        list_uid: str | None,
        from_name: str | None,
        from_email: str | None,
        subject: str | None,
        reply_to: str | None,
        send_at: datetime | str | None,
        status: str | None,
        segment_uid: str | None,
        template_uid: str | None,
        html: str | None,
        plain_text: str | None,
        options: Mapping[str, Any] | None,
        send_at_default: bool,
    ) -> dict[str, Any]:
        template: dict[str, Any] = {
            "template_uid": template_uid,
            "content": b64(html) if html is not None else None,
            "plain_text": b64(plain_text) if plain_text else None,
        }
        campaign: dict[str, Any] = {
            "name": name,
            "from_name": from_name,
            "from_email": from_email,
            "subject": subject,
            "reply_to": reply_to,
            "send_at": self.format_send_at(send_at) if (send_at is not None or send_at_default) else None,
            "list_uid": list_uid,
            "segment_uid": segment_uid,
            "status": status,
            "template": template if any(v is not None for v in template.values()) else None,
            "options": dict(options) if options else None,
        }
        return {"campaign": campaign}

    def create_campaign(
        self,
        *,
        name: str,
        list_uid: str,
        from_name: str,
        from_email: str,
        subject: str,
        reply_to: str,
        send_at: datetime | str | None = None,
        status: str = "draft",
        segment_uid: str | None = None,
        template_uid: str | None = None,
        html: str | None = None,
        plain_text: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a campaign (default ``draft``: never sends) and return its uid; never resent on a timeout."""
        payload = self._campaign_payload(
            name=name,
            list_uid=list_uid,
            from_name=from_name,
            from_email=from_email,
            subject=subject,
            reply_to=reply_to,
            send_at=send_at,
            status=status,
            segment_uid=segment_uid,
            template_uid=template_uid,
            html=html,
            plain_text=plain_text,
            options=options,
            send_at_default=True,
        )
        # Not resend-safe: an answer that is not the documented one raises UnexpectedOutcomeError (an
        # OutcomeUnknownError), so a launch looks the campaign up by name instead of creating it again.
        return self._post("/campaigns", _created("campaign_uid"), payload)

    def update_campaign(
        self,
        campaign_uid: str,
        *,
        name: str | None = None,
        list_uid: str | None = None,
        from_name: str | None = None,
        from_email: str | None = None,
        subject: str | None = None,
        reply_to: str | None = None,
        send_at: datetime | str | None = None,
        status: str | None = None,
        segment_uid: str | None = None,
        template_uid: str | None = None,
        html: str | None = None,
        plain_text: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Update a campaign (only in draft, pending-sending or paused); ``status="pending-sending"`` launches."""
        payload = self._campaign_payload(
            name=name,
            list_uid=list_uid,
            from_name=from_name,
            from_email=from_email,
            subject=subject,
            reply_to=reply_to,
            send_at=send_at,
            status=status,
            segment_uid=segment_uid,
            template_uid=template_uid,
            html=html,
            plain_text=plain_text,
            options=options,
            send_at_default=False,
        )
        self._put(f"/campaigns/{campaign_uid}", _action, payload)

    def copy_campaign(self, campaign_uid: str) -> str:
        """Copy a campaign and return the new uid (not idempotent)."""
        return self._post(f"/campaigns/{campaign_uid}/copy", _created("campaign_uid"))

    def pause_unpause_campaign(self, campaign_uid: str) -> str:
        """Toggle paused/sending and return the new status."""
        return self._put(f"/campaigns/{campaign_uid}/pause-unpause", _TOGGLE)["campaign"]["status"]

    def mark_campaign_sent(self, campaign_uid: str) -> str:
        """Mark a sending or paused campaign as sent; returns the new status."""
        return self._put(f"/campaigns/{campaign_uid}/mark-sent", _TOGGLE)["campaign"]["status"]

    def delete_campaign(self, campaign_uid: str) -> None:
        """Delete a campaign (refused while it is sending)."""
        self._delete(f"/campaigns/{campaign_uid}")

    def campaign_stats(self, campaign_uid: str) -> PakatCampaignStats:
        """Counters and rates of a campaign."""
        return PakatCampaignStats.from_api(self._get(f"/campaigns/{campaign_uid}/stats", _data(STATS)))

    def delivery_logs(self, campaign_uid: str, *, per_page: int = 50) -> Iterator[DeliveryLog]:
        """Delivery logs of a campaign."""
        path = f"/campaigns/{campaign_uid}/delivery-logs"
        for r in self._paginate(path, DELIVERY_LOG, "email_message_id", per_page=per_page):
            yield DeliveryLog.from_api(r)

    def delivery_log_by_message_id(self, email_message_id: str) -> DeliveryLog:
        """One delivery log by its Message-ID."""
        return DeliveryLog.from_api(self._get(f"/campaigns/delivery-logs/email-message-id/{email_message_id}", _log))

    def campaign_bounces(self, campaign_uid: str, *, per_page: int = 50) -> Iterator[CampaignBounce]:
        """Bounces of a campaign."""
        for r in self._paginate(f"/campaigns/{campaign_uid}/bounces", BOUNCE, None, per_page=per_page):
            sub = r["subscriber"]
            yield CampaignBounce(
                _str(sub.get("subscriber_uid")),
                _str(sub.get("email")),
                r["bounce_type"],
                r.get("message"),
                parse_date(r.get("date_added")),
            )

    def campaign_unsubscribes(self, campaign_uid: str, *, per_page: int = 50) -> Iterator[CampaignUnsubscribe]:
        """Unsubscribes of a campaign."""
        for r in self._paginate(f"/campaigns/{campaign_uid}/unsubscribes", UNSUBSCRIBE, None, per_page=per_page):
            sub = r["subscriber"]
            yield CampaignUnsubscribe(
                _str(sub.get("subscriber_uid")),
                _str(sub.get("email")),
                r.get("reason"),
                parse_date(r.get("date_added")),
            )

    def create_campaign_bounce(
        self,
        campaign_uid: str,
        subscriber_uid: str,
        bounce_type: Literal["internal", "soft", "hard"],
        message: str | None = None,
    ) -> CampaignBounce:
        """Record a bounce of a campaign for a subscriber (once per pair; a hard one blacklists the address)."""
        fields = {"subscriber_uid": subscriber_uid, "bounce_type": bounce_type, "message": message}
        r = self._post(f"/campaigns/{campaign_uid}/bounces", _record(BOUNCE_CREATED), fields)
        who = r.get("subscriber") or {}
        return CampaignBounce(
            _str(who.get("subscriber_uid")) or subscriber_uid,
            _str(who.get("email")),
            r["bounce_type"],
            r.get("message"),
        )

    def track_url(self, campaign_uid: str, subscriber_uid: str, url_hash: str) -> str:
        """Record a click of a campaign link (by its hash) and return the link's destination."""
        path = f"/campaigns/{campaign_uid}/track-url/{subscriber_uid}/{url_hash}"
        return self._get(path, _data(TRACKED_URL))["destination"]

    def track_opening(self, campaign_uid: str, subscriber_uid: str) -> None:
        """Record an open of a campaign by a subscriber."""
        self._get(f"/campaigns/{campaign_uid}/track-opening/{subscriber_uid}", _action)

    def track_unsubscribe(
        self,
        campaign_uid: str,
        subscriber_uid: str,
        *,
        ip_address: str | None = None,
        user_agent: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record an unsubscribe from a campaign (the subscriber leaves the list); not idempotent."""
        fields = {"ip_address": ip_address, "user_agent": user_agent, "reason": reason}
        self._post(f"/campaigns/{campaign_uid}/track-unsubscribe/{subscriber_uid}", _action, fields)

    # -- account: countries, customers, delivery servers, sending domains -------------------------------------

    def countries(self, *, per_page: int = 50) -> Iterator[Country]:
        """Every country MailWizz knows."""
        for r in self._paginate("/countries", COUNTRY, "country_id", per_page=per_page):
            yield Country(as_int(r["country_id"]), r["name"], r.get("code"))

    def country_zones(self, country_id: int, *, per_page: int = 50) -> Iterator[Zone]:
        """The zones of a country."""
        for r in self._paginate(f"/countries/{country_id}/zones", ZONE, "zone_id", per_page=per_page):
            yield Zone(as_int(r["zone_id"]), r["name"], r.get("code"))

    def create_customer(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str,
        password: str,
        timezone: str,
        birth_date: date | str | None = None,
        company: Mapping[str, Any] | None = None,
    ) -> str:
        """Register a customer account and return its uid; not idempotent."""
        customer = {
            "first_name": first_name,
            "last_name": last_name,
            "email": email,
            "confirm_email": email,
            "password": password,
            "confirm_password": password,
            "timezone": timezone,
            "birthDate": birth_date,
        }
        fields: dict[str, Any] = {"customer": customer, "company": dict(company) if company else None}
        return self._post("/customers", _created("customer_uid"), fields)

    def delivery_servers(self, *, per_page: int = 50) -> Iterator[DeliveryServer]:
        """The delivery servers the account may use."""
        for r in self._paginate("/delivery-servers", DELIVERY_SERVER, "server_id", per_page=per_page):
            yield _server(r)

    def get_delivery_server(self, server_id: int) -> DeliveryServer:
        """One delivery server."""
        return _server(self._get(f"/delivery-servers/{server_id}", _record(DELIVERY_SERVER)))

    def get_sending_domain(self, domain_name: str) -> SendingDomain:
        """A sending domain of the account by its name."""
        r = self._get(f"/sending-domains/{domain_name}", _record(SENDING_DOMAIN))
        verified = r.get("verified")
        return SendingDomain(
            r["name"],
            verified is True or _str(verified).lower() == "yes",
            as_int(r.get("domain_id")) if r.get("domain_id") not in (None, "") else None,
        )

    # -- transactional emails ---------------------------------------------------------------------------------

    def create_transactional_email(
        self,
        *,
        to_email: str,
        to_name: str,
        from_name: str,
        subject: str,
        html: str | None = None,
        template_uid: str | None = None,
        params: Mapping[str, Any] | None = None,
        from_email: str | None = None,
        reply_to_email: str | None = None,
        reply_to_name: str | None = None,
        plain_text: str | None = None,
        send_at: datetime | None = None,
        contact: Mapping[str, Any] | None = None,
        attachments: Sequence[TransactionalAttachment] = (),
    ) -> str:
        """Queue a transactional email (``send_at`` UTC, default now) and return its uid; not idempotent.

        MailWizz sets a Reply-To only when both ``reply_to_email`` and ``reply_to_name`` are stored, so the name
        defaults to ``from_name`` when an address is given. ``plain_text`` is sent, but MailWizz does not assign
        it (no validation rule names it) and makes the plain text from the body; ``priority`` likewise cannot be
        set. Attachments go as ``email[attachments][N][name|type|data]`` (data base64), which MailWizz checks
        against its back-office settings (by default png, jpg, jpeg, gif, pdf, doc(x), xls(x), ppt(x), 1 MiB)
        and ignores when attachments are off; Pakat documents three."""
        if len(attachments) > 3:
            raise ValueError("Pakat accepts at most 3 attachments")
        when = send_at or datetime.now(UTC)
        if when.tzinfo is not None:
            when = when.astimezone(UTC)
        email: dict[str, Any] = {
            "to_name": to_name,
            "to_email": to_email,
            "from_name": from_name,
            "from_email": from_email,
            "reply_to_email": reply_to_email,
            "reply_to_name": (reply_to_name or from_name) if reply_to_email else reply_to_name,
            "subject": subject,
            "body": b64(html) if html is not None else None,
            "plain_text": b64(plain_text) if plain_text else None,
            "template_uid": template_uid,
            "params": dict(params) if params else None,
            "contact": dict(contact) if contact else None,
            "send_at": when.strftime(DATE_FMT),
            "attachments": [{"name": a.name, "type": a.mime_type, "data": b64(a.data)} for a in attachments] or None,
        }
        return self._post("/transactional-emails", _created("email_uid"), {"email": email})

    def transactional_emails(self, *, per_page: int = 50) -> Iterator[TransactionalEmail]:
        """Transactional emails, newest first."""
        for r in self._paginate("/transactional-emails", TRANSACTIONAL, "email_uid", per_page=per_page):
            yield TransactionalEmail.from_api(r)

    def get_transactional_email(self, email_uid: str) -> TransactionalEmail:
        """One transactional email."""
        return TransactionalEmail.from_api(self._get(f"/transactional-emails/{email_uid}", _record(TRANSACTIONAL)))

    def delete_transactional_email(self, email_uid: str) -> None:
        """Delete a transactional email."""
        self._delete(f"/transactional-emails/{email_uid}")


def _server(r: Mapping[str, Any]) -> DeliveryServer:
    known = ("server_id", "name", "hostname", "type", "status")
    return DeliveryServer(
        as_int(r["server_id"]),
        r.get("name"),
        r.get("hostname"),
        r.get("type"),
        r.get("status"),
        {k: v for k, v in r.items() if k not in known},
    )


def _dig(rec: Mapping[str, Any], dotted: str) -> str | None:
    node: Any = rec
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return None if node is None else str(node)
