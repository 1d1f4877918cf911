"""Pakat (a hosted MailWizz EMA 2.x): the typed HTTP client and the provider-neutral adapter.

Wire facts the client relies on (Pakat's API documentation and MailWizz 2.x):

* ``X-API-KEY`` header only; a bad key answers **400** (not 401).
* POST bodies are forms (urlencoded here; the service also reads multipart, never JSON). PUT bodies are
  **urlencoded only**: the service silently ignores a multipart PUT while answering success, so this module
  builds every PUT body itself and never hands httpx anything it could turn into multipart.
* Nested fields use PHP bracket keys (``campaign[template][content]``), flattened by :func:`flatten_form`.
* Offset paging, ``per_page`` clamped to 10-50, newest first: rows added mid-crawl shift older rows to later
  pages, so every crawl de-duplicates by uid and stops when ``next_page`` is null.
* ``Unable to acquire the mutex lock`` (409) means nothing happened: retried here with backoff, whatever the
  verb. Campaign creates are never resent after a timeout or 5xx (:class:`OutcomeUnknownError` instead).
"""

from espcore.providers.pakat.adapter import (
    PakatProvider,
    field_tag,
)
from espcore.providers.pakat.client import (
    PakatClient,
)
from espcore.providers.pakat.constants import (
    PAKAT_BASE_URL,
)
from espcore.providers.pakat.errors import (
    PakatMutexError,
    parse_pakat_error,
)
from espcore.providers.pakat.models import (
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
    b64,
    flatten_form,
)

__all__ = [
    "PAKAT_BASE_URL",
    "BulkItemResult",
    "CampaignBounce",
    "CampaignUnsubscribe",
    "Country",
    "DeliveryLog",
    "DeliveryServer",
    "FieldType",
    "PakatCampaign",
    "PakatCampaignStats",
    "PakatClient",
    "PakatField",
    "PakatList",
    "PakatMutexError",
    "PakatProvider",
    "PakatQuota",
    "PakatSegment",
    "PakatSubscriber",
    "PakatTemplate",
    "SegmentOperator",
    "SendingDomain",
    "SubscriberMembership",
    "SubscriberRef",
    "TransactionalAttachment",
    "TransactionalEmail",
    "Zone",
    "b64",
    "field_tag",
    "flatten_form",
    "parse_pakat_error",
]
