"""What both LiteStartup dialects share: the provider name, base URL, paging info and quota wording."""

import re
from dataclasses import dataclass

LITESTARTUP_BASE_URL = "https://api.litestartup.com/client/v2"
PROVIDER = "litestartup"
PAGE_MAX = 100
#: a 429 (or odd 5xx) whose message reads like an exhausted email allowance, in either doc set's wording
QUOTA_TEXT = re.compile(r"quota|usage exceeded", re.IGNORECASE)


@dataclass(frozen=True)
class PageInfo:
    """``pagination{page,limit,total,pages}``; ``pages`` (and on odd answers ``total``) may be missing."""

    page: int
    limit: int
    total: int | None = None
    pages: int | None = None
