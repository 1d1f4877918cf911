"""Row checks that run before anything is sent: address syntax (offline, IDN-aware) and field values."""

import re
from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalise_email(raw: str | None) -> str | None:
    """The primary key form of an address: trimmed and lower-cased (None stays None)."""
    if raw is None:
        return None
    return raw.strip().lower()


def email_problem(email: str) -> str | None:
    """Why an address cannot be sent, or None. Syntax only: no DNS, no deliverability."""
    try:
        validate_email(email, check_deliverability=False, test_environment=False)
    except EmailNotValidError as exc:
        return f"invalid email: {exc}"
    return None


def value_problem(fields: Mapping[str, Any], *, required: tuple[str, ...] = (), max_length: int = 1000) -> str | None:
    """Why mapped values cannot be sent, or None: missing required values, control characters, oversize."""
    for name in required:
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise_msg = f"required field {name} is empty"
            return raise_msg
    for name, value in fields.items():
        if isinstance(value, str):
            if _CONTROL.search(value):
                return f"field {name} contains control characters"
            if len(value) > max_length:
                return f"field {name} is {len(value)} characters long (limit {max_length})"
    return None


def mask_email(email: str | None) -> str:
    """``a***@example.com`` for samples shown in the UI."""
    if not email or "@" not in email:
        return "***"
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
