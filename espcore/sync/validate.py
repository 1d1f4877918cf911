"""Row checks that run before anything is sent: address syntax (offline, IDN-aware) and field values."""

import math
import re
from collections.abc import Mapping
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from espcore.providers.base import AddressRules

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

#: RFC 5321 4.5.3.1.1: at most 64 octets before the ``@``
LOCAL_PART_MAX_OCTETS = 64

#: the RFC rules only: what applies when the provider declares nothing stricter
RFC_ONLY = AddressRules()


def normalise_email(raw: str | None) -> str | None:
    """The primary key form of an address: trimmed and lower-cased (None stays None)."""
    if raw is None:
        return None
    return raw.strip().lower()


def address_rules(provider: object) -> AddressRules:
    """The address rules an adapter declares (its ``address_rules`` attribute), or the RFC rules alone."""
    rules = getattr(provider, "address_rules", None)
    return rules if isinstance(rules, AddressRules) else RFC_ONLY


# The common case, decided without email-validator (about 80 µs an address): a lower-case dot-atom of ordinary
# characters, at most 64 before the @, and a domain of LDH labels under an alphabetic top-level domain that is
# not special-use. Every such address is one email-validator accepts (tests/sync/test_email_rules.py checks the
# two agree); anything else is decided by email-validator itself.
_PLAIN = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def plainly_valid(email: str) -> bool:
    """True for an address of the common shape that email-validator is known to accept (a fast path only)."""
    return (
        len(email) <= 254
        and email.find("@") <= 64
        and _PLAIN.fullmatch(email) is not None
        and email.rpartition(".")[2] not in _SPECIAL_USE
    )


def _validate(email: str, smtputf8: bool) -> None:
    if plainly_valid(email):
        return
    validate_email(email, check_deliverability=False, test_environment=False, strict=True, allow_smtputf8=smtputf8)


def email_problem(email: str, rules: AddressRules | None = None) -> str | None:
    """Why an address cannot be sent, or None. Syntax only: no DNS, no deliverability.

    The RFC length rules are always enforced: at most 64 octets before the ``@`` (email-validator checks
    that only in its ``strict`` mode, and counts characters, not the octets RFC 5321 counts), 254 octets in
    all, 63 per domain label and 253 for the domain. ``rules`` adds what the provider is stricter about."""
    rules = rules or RFC_ONLY
    where = f" ({rules.source})" if rules.source else ""
    try:
        _validate(email, rules.unicode_local)
    except EmailNotValidError as exc:
        if rules != RFC_ONLY and email_problem(email) is None:  # only the provider's rule refuses it: say whose
            return f"invalid email: {exc}{where}"
        return f"invalid email: {exc}"
    local, _, domain = email.rpartition("@")
    octets = len(local.encode("utf-8"))
    if octets > LOCAL_PART_MAX_OCTETS:
        return (
            f"invalid email: the part before the @-sign is {octets} bytes long in UTF-8 (limit {LOCAL_PART_MAX_OCTETS})"
        )
    if not rules.unicode_domain and not domain.isascii():
        return f"invalid email: the provider does not accept a domain written in Unicode{where}"
    if rules.max_length is not None and len(email) > rules.max_length:
        return f"invalid email: {len(email)} characters long, the provider keeps at most {rules.max_length}{where}"
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
        elif not _finite(value):
            return f"field {name} holds a number that is not finite (NaN or infinity), which JSON cannot carry"
    return None


def _finite(value: Any) -> bool:
    """No float in ``value`` (a mapped value as parsed from JSON: nested lists and objects too) is NaN or
    infinite. The warehouse writes them as ``NaN``/``Infinity``, which no provider's JSON takes."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def mask_email(email: str | None) -> str:
    """``a***@example.com`` for samples shown in the UI."""
    if not email or "@" not in email:
        return "***"
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
