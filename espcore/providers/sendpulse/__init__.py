"""SendPulse email-service REST API: a typed client and the provider-neutral adapter.

The client speaks SendPulse's own terms (address books, variables, campaigns, templates, senders, blacklist,
balance); :class:`SendPulseProvider` maps them onto :class:`espcore.providers.base.EspProvider`.
"""

from espcore.providers.sendpulse.adapter import (
    SendPulseProvider,
    campaign_state,
    member_state,
)
from espcore.providers.sendpulse.client import (
    SendPulseClient,
)
from espcore.providers.sendpulse.constants import (
    CAMPAIGN_RATE_CAP,
    DATE_FMT,
    EMAILS_PER_CALL,
    PAGE_MAX,
    SENDPULSE_BASE_URL,
)
from espcore.providers.sendpulse.errors import (
    HourlyCampaignLimitError,
    error_envelope,
    parse_error,
)
from espcore.providers.sendpulse.models import (
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
    Number,
    Sender,
    StatisticItem,
    Template,
    Webhook,
)

__all__ = [
    "CAMPAIGN_RATE_CAP",
    "DATE_FMT",
    "EMAILS_PER_CALL",
    "PAGE_MAX",
    "SENDPULSE_BASE_URL",
    "AddressBook",
    "BalanceDetail",
    "BookCampaign",
    "BookContact",
    "BookCost",
    "BookVariable",
    "CampaignCreated",
    "CampaignInfo",
    "CampaignRecipientStatus",
    "CurrencyBalance",
    "EmailBookDetail",
    "EmailCampaignSummary",
    "EmailMembership",
    "EmailToAdd",
    "HourlyCampaignLimitError",
    "Number",
    "SendPulseClient",
    "SendPulseProvider",
    "Sender",
    "StatisticItem",
    "Template",
    "Webhook",
    "campaign_state",
    "error_envelope",
    "member_state",
    "parse_error",
]
