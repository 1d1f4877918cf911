"""SendPulse API constants: base URL, page and batch limits, the hourly campaign cap."""

from typing import TypeVar

from espcore.providers.base import (
    CampaignRateCap,
)

T = TypeVar("T")
R = TypeVar("R")

SENDPULSE_BASE_URL = "https://api.sendpulse.com"
PAGE_MAX = 100
EMAILS_PER_CALL = 100  # delete/unsubscribe cap; also the batch the client uses for adds
CAMPAIGN_RATE_CAP = CampaignRateCap(per_hour=4, refusal="error 791")  # campaigns created through the API per hour
DATE_FMT = "%Y-%m-%d %H:%M:%S"
