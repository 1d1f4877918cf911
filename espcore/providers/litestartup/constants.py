"""LiteStartup API constants: webhook events, plan rates, what the usage answers may say."""

from collections.abc import Mapping
from typing import TypeVar

SIGNATURE_HEADER = "X-LiteStartup-Signature"
#: client-side request rate per plan, requests per minute (the API's documented per-minute limits)
PLAN_REQUESTS_PER_MINUTE: Mapping[str, float] = {"free": 60.0, "pro": 300.0}
WEBHOOK_EVENTS = (
    "email.sent",
    "email.delivered",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.spam_reported",
    "email.unsubscribed",
)
NOT_EXPOSED = "not_exposed"
FORBIDDEN = "forbidden"  # the key may not read /settings/usage (owner/admin only)

T = TypeVar("T")
R = TypeVar("R")
