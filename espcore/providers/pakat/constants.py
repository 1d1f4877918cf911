"""Pakat (MailWizz) API constants: base URL, bulk and paging limits."""

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
Rec = TypeVar("Rec", bound=Mapping[str, Any])

PAKAT_BASE_URL = "https://new.pakat.net/api"
PROVIDER = "pakat"
DATE_FMT = "%Y-%m-%d %H:%M:%S"
BULK_MAX = 10_000
PER_PAGE_MIN, PER_PAGE_MAX = 10, 50

# -- errors ---------------------------------------------------------------------------------------------------
