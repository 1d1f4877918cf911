"""LiteStartup REST API v2: a typed client and the provider-neutral adapter, in two dialects.

LiteStartup has published two API doc sets under the same base ``/client/v2``. The *seed* dialect (the one the
product was specified from): REST paths, mixed envelopes (bare ``uuid``/``messageId``, ``{"success","data"}``,
``pagination``), symbolic error codes, webhooks. The *current* dialect (its newer official documentation, which
a real account most likely speaks): verb-style paths, the ``{"code","message","data"}`` envelope, errors by
HTTP status (validation can be a 500), integer ids, tags as objects, scoped keys, ``GET /settings/usage`` and a
CSV import; see :mod:`espcore.providers.litestartup.current`. The client takes ``dialect="seed"|"current"|
"auto"``; ``auto`` asks ``GET /verify`` once and decides from the shape of its answer.

:class:`LiteStartupProvider` maps LiteStartup onto :class:`espcore.providers.base.EspProvider`: a *book* is a
tag on contacts, members are contacts carrying the tag, suppressions are ``subscribed=false`` contacts plus
bounced emails, and campaigns target ``recipient_list: "tag:<book>"``. In the current dialect a book is a tag
object (its id is the book id) and campaigns target its id. The seed's API exposes no quota or balance endpoint,
so :meth:`LiteStartupClient.balance` says so there instead of inventing numbers; the current dialect's
``GET /settings/usage`` gives the monthly email quota.
"""

from espcore.providers.litestartup.adapter import (
    LiteStartupProvider,
    campaign_state,
    contact_payload,
)
from espcore.providers.litestartup.client import (
    CSV_COLUMNS,
    EMAILS_PER_MONTH,
    LiteStartupClient,
)
from espcore.providers.litestartup.common import (
    LITESTARTUP_BASE_URL,
    PAGE_MAX,
    PROVIDER,
    PageInfo,
)
from espcore.providers.litestartup.constants import (
    FORBIDDEN,
    NOT_EXPOSED,
    PLAN_REQUESTS_PER_MINUTE,
    SIGNATURE_HEADER,
    WEBHOOK_EVENTS,
)
from espcore.providers.litestartup.current import (
    CURRENT_DIALECT,
    DIALECT_SETTINGS,
    CurrentDialect,
    DialectDetection,
    DialectName,
    DialectSetting,
    detect_dialect,
)
from espcore.providers.litestartup.models import (
    CAMPAIGN,
    CAMPAIGN_SEND,
    CONTACT,
    EMAIL,
    STATS,
    TEMPLATE,
    WEBHOOK,
    LsCampaign,
    LsCampaignSend,
    LsCampaignStats,
    LsContact,
    LsEmail,
    LsExportRow,
    LsImportResult,
    LsSendResult,
    LsTag,
    LsTemplate,
    LsUsage,
    LsUsageFeature,
    LsVerify,
    LsWebhook,
    Page,
)
from espcore.providers.litestartup.seed import (
    SEED_DIALECT,
    LiteStartupDialect,
    SeedDialect,
    parse_error,
    verify_webhook_signature,
)

__all__ = [
    "CAMPAIGN",
    "CAMPAIGN_SEND",
    "CONTACT",
    "CSV_COLUMNS",
    "CURRENT_DIALECT",
    "DIALECT_SETTINGS",
    "EMAIL",
    "EMAILS_PER_MONTH",
    "FORBIDDEN",
    "LITESTARTUP_BASE_URL",
    "NOT_EXPOSED",
    "PAGE_MAX",
    "PLAN_REQUESTS_PER_MINUTE",
    "PROVIDER",
    "SEED_DIALECT",
    "SIGNATURE_HEADER",
    "STATS",
    "TEMPLATE",
    "WEBHOOK",
    "WEBHOOK_EVENTS",
    "CurrentDialect",
    "DialectDetection",
    "DialectName",
    "DialectSetting",
    "LiteStartupClient",
    "LiteStartupDialect",
    "LiteStartupProvider",
    "LsCampaign",
    "LsCampaignSend",
    "LsCampaignStats",
    "LsContact",
    "LsEmail",
    "LsExportRow",
    "LsImportResult",
    "LsSendResult",
    "LsTag",
    "LsTemplate",
    "LsUsage",
    "LsUsageFeature",
    "LsVerify",
    "LsWebhook",
    "Page",
    "PageInfo",
    "SeedDialect",
    "campaign_state",
    "contact_payload",
    "detect_dialect",
    "parse_error",
    "verify_webhook_signature",
]
