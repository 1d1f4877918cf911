"""Lenient number coercion for provider payloads (ids and counts arrive as ints, strings or junk)."""

from typing import Any


def as_int(value: Any, default: int = 0) -> int:
    """``int(value)``, or ``default`` when the value is missing or not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def opt_int(value: Any) -> int | None:
    """``int(value)``, or None when the value is missing or not a number."""
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
