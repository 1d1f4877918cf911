"""What a campaign launch is: its intent, its idempotency key, its provider-side name and its body."""

import hashlib
import html
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from espcore.providers.base import CampaignDraft

KEY_LEN = 16
_KEY_RE = re.compile(r"ck-([0-9a-f]{16})$")


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def campaign_key(
    *,
    provider: str,
    book: str,
    template: str | None,
    subject: str,
    occurrence: str,
    slug: str,
) -> str:
    """First 16 hex digits of sha256 over the canonical JSON of the launch *intent* (not the audience).

    ``book`` is the book id or, as here by default, the book name (stable before the book exists);
    ``template`` is the template id or the body file name (editing the file does not make a new intent);
    ``occurrence`` is the send date / schedule tick the launch belongs to.
    """
    intent = {
        "provider": provider,
        "book": book,
        "template": template,
        "subject": subject,
        "occurrence": occurrence,
        "slug": slug,
    }
    canonical = json.dumps(intent, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:KEY_LEN]


def key_suffix(key: str) -> str:
    return f"ck-{key}"


def provider_name(title: str, key: str, *, max_len: int = 100) -> str:
    """The provider-side campaign name: a readable title that always *ends* with ``ck-<key>``."""
    suffix = " " + key_suffix(key)
    return title[: max(0, max_len - len(suffix))].rstrip() + suffix


def key_of(name: str) -> str | None:
    m = _KEY_RE.search(name or "")
    return m.group(1) if m else None


@dataclass(frozen=True)
class LaunchSpec:
    """One launch of one declared campaign for one occurrence."""

    name: str  # the declaration's name (the slug of the key)
    provider: str
    book: str  # the book name the sync maintains
    subject: str
    sender_name: str
    sender_email: str
    occurrence: str
    template_id: str | None = None
    html: str | None = None  # rendered body (when no template id)
    body_ref: str | None = None  # template id or body file name: what the key hashes
    send_at: datetime | None = None  # aware; None = now
    title: str | None = None  # readable part of the provider-side name
    test_recipients: Sequence[str] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return campaign_key(
            provider=self.provider,
            book=self.book,
            template=self.body_ref or self.template_id,
            subject=self.subject,
            occurrence=self.occurrence,
            slug=self.name,
        )

    @property
    def provider_name(self) -> str:
        return provider_name(self.title or f"{self.name} {self.occurrence}", self.key)

    def draft(self, book_id: str) -> CampaignDraft:
        return CampaignDraft(
            name=self.provider_name,
            book_id=book_id,
            subject=self.subject,
            sender_name=self.sender_name,
            sender_email=self.sender_email,
            html=None if self.template_id else self.html,
            template_id=self.template_id,
            send_at=self.send_at,
        )


def render_body(path: str | Path, context: Mapping[str, Any] | None = None) -> str:
    """Render an HTML body file. ``*.j2``/``*.jinja`` files are Jinja templates with autoescape on (values in
    ``context`` are HTML-escaped); other files use ``$name`` substitution with every value HTML-escaped."""
    p = Path(path)
    text = p.read_text("utf-8")
    values = dict(context or {})
    if p.suffix in (".j2", ".jinja", ".jinja2"):
        import jinja2

        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        return env.from_string(text).render(**values)
    return string.Template(text).safe_substitute({k: html.escape(str(v)) for k, v in values.items()})
