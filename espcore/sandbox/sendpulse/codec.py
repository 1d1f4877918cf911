"""Request decoding the SendPulse emulator needs: PHP-style form bodies, PHP ``serialize()`` strings,
base64 fields, the ``emails`` argument in all its spellings, e-mail syntax, paging and typed variables."""

import base64
import binascii
import json
import re
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl

from espcore.sandbox.base import HandlerError, SandboxRequest

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_EMAIL_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$")
_INT_RE = re.compile(r"^-?\d+$")
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SEND_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_BRACKET_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def invalid(message: str, code: int = 422, status: int = 422) -> HandlerError:
    return HandlerError(status, message, code)


# -- bodies --------------------------------------------------------------------------------------------------


def parse_php_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``a[0][b]=1&a[]=2`` pairs into nested dicts/lists, the way PHP reads a form body."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        m = _BRACKET_KEY.match(key)
        if not m:
            root[key] = value
            continue
        parts = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))]
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if part == "" or not _INT_RE.match(part):
                    if last:
                        node.append(value)
                        break
                    child: Any = {}
                    node.append(child)
                    node = child
                    continue
                idx = int(part)
                while len(node) <= idx:
                    node.append(None)
                if last:
                    node[idx] = value
                else:
                    if not isinstance(node[idx], dict | list):
                        node[idx] = _container_for(parts[i + 1])
                    node = node[idx]
                continue
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), dict | list):
                    node[part] = _container_for(parts[i + 1])
                node = node[part]
    return root


def _container_for(next_part: str) -> Any:
    return [] if next_part == "" or _INT_RE.match(next_part) else {}


def declares_json(content_type: str) -> bool:
    """``application/json``, with or without parameters, or a ``+json`` type."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media.endswith("/json") or media.endswith("+json")


def body_params(req: SandboxRequest) -> dict[str, Any]:
    """The request's arguments: a JSON object, a (PHP-style) form, or multipart fields.

    [A] As a PHP service reads its input, a body counts only when its content type says JSON or a form: any other
    body (``text/plain``, none at all) carries no arguments, so the call answers as if they were missing. A body
    that says JSON but is not a JSON object, or a form that cannot be parsed, is 999 ``Badly formed incoming data``.
    """
    if req.content_type.startswith("application/x-www-form-urlencoded"):
        return parse_php_form(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
    if req.form is not None:
        pairs = [(k, v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for k, v in req.form.items()]
        return parse_php_form(pairs)
    if req.body_error:
        raise invalid("Badly formed incoming data", code=999, status=400)
    if not req.body or not declares_json(req.content_type):
        return {}
    if req.json_error:
        raise invalid("Badly formed incoming data", code=999, status=400)
    if isinstance(req.json_body, dict):
        return dict(req.json_body)
    if req.json_body is not None:
        raise invalid("Badly formed incoming data", code=999, status=400)
    return {}


def all_params(req: SandboxRequest) -> dict[str, Any]:
    """Body arguments over key=value query arguments (a raw-JSON query string is ignored)."""
    merged: dict[str, Any] = {k: v for k, v in req.query.items() if v != "" or not k.startswith("{")}
    merged.update(body_params(req))
    return merged


# -- PHP serialize() ---------------------------------------------------------------------------------------


class _PhpReader:
    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")
        self.pos = 0

    def _until(self, stop: bytes) -> str:
        end = self.data.index(stop, self.pos)
        out = self.data[self.pos : end].decode("utf-8")
        self.pos = end + len(stop)
        return out

    def _expect(self, token: bytes) -> None:
        if self.data[self.pos : self.pos + len(token)] != token:
            raise ValueError(f"expected {token!r} at {self.pos}")
        self.pos += len(token)

    def read(self) -> Any:
        kind = self.data[self.pos : self.pos + 2]
        self.pos += 2
        if kind == b"N;":
            return None
        if kind == b"i:":
            return int(self._until(b";"))
        if kind == b"d:":
            return float(self._until(b";"))
        if kind == b"b:":
            return self._until(b";") == "1"
        if kind == b"s:":
            length = int(self._until(b":"))
            self._expect(b'"')
            raw = self.data[self.pos : self.pos + length]
            self.pos += length
            self._expect(b'";')
            return raw.decode("utf-8")
        if kind == b"a:":
            count = int(self._until(b":"))
            self._expect(b"{")
            items: list[tuple[Any, Any]] = [(self.read(), self.read()) for _ in range(count)]
            self._expect(b"}")
            if [k for k, _ in items] == list(range(count)):
                return [v for _, v in items]
            return {str(k): v for k, v in items}
        raise ValueError(f"unsupported PHP type {kind!r}")


def php_unserialize(text: str) -> Any:
    reader = _PhpReader(text)
    value = reader.read()
    if reader.pos != len(reader.data):
        raise ValueError("trailing data")
    return value


def decode_structured(value: Any, name: str) -> Any:
    """A structured argument given as itself, as a JSON string, or as a PHP ``serialize()`` string."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            raise invalid("Badly formed incoming data", code=999, status=400) from None
    if re.match(r"^[aNidbs]:", text):
        try:
            return php_unserialize(text)
        except (ValueError, IndexError, UnicodeDecodeError):
            raise invalid("Badly formed incoming data", code=999, status=400) from None
    return value


def as_list(value: Any, name: str) -> list[Any]:
    """``emails`` and friends: a list, a JSON/PHP string of one, or a PHP list read as a dict of indexes."""
    value = decode_structured(value, name)
    if isinstance(value, dict) and all(_INT_RE.match(str(k)) for k in value):
        value = [value[k] for k in sorted(value, key=lambda k: int(k))]
    if not isinstance(value, list):
        raise invalid(f"Argument {name} must be array")
    return value


# -- scalars ------------------------------------------------------------------------------------------------


def normalise_email(value: Any) -> str:
    return str(value).strip().lower()


def is_valid_email(email: str) -> bool:
    """[A] SendPulse documents no address rule: ASCII only (its regular expression), no ``..``, and the RFC 5321
    lengths: at most 254 characters, 64 before the ``@``, 63 per domain label."""
    if len(email) > 254 or not _EMAIL_RE.match(email) or ".." in email:
        return False
    local, _, domain = email.rpartition("@")
    return len(local) <= 64 and all(len(label) <= 63 for label in domain.split("."))


def b64_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"Argument {name} is invalid string")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise invalid(f"Argument {name} is invalid string") from None


def b64_encode(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def paging(req: SandboxRequest) -> tuple[int, int]:
    """``limit`` 1-100 (default 100) and ``offset`` >= 0 with SendPulse's exact 422 messages."""
    limit, offset = 100, 0
    raw = req.query.get("limit")
    if raw is not None:
        if not _INT_RE.match(raw.strip()):
            raise invalid("Argument limit must be integer")
        limit = int(raw)
        if limit < 1:
            raise invalid("Argument limit must be at least 1")
        if limit > 100:
            raise invalid("Argument limit may not be greater than 100")
    raw = req.query.get("offset")
    if raw is not None:
        if not _INT_RE.match(raw.strip()):
            raise invalid("Argument offset must be integer")
        offset = int(raw)
        if offset < 0:
            raise invalid("Argument offset must be at least 0")
    return limit, offset


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def coerce_variable(kind: str, value: Any) -> Any:
    """Check a value against a book variable type; return the stored value or raise ValueError."""
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError("not a number")
        if isinstance(value, int | float):
            return value
        if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
            text = value.strip()
            return int(text) if _INT_RE.match(text) else float(text)
        raise ValueError("not a number")
    if kind == "date":
        if not isinstance(value, str) or not _DATE_RE.match(value.strip()):
            raise ValueError("not a date")
        date.fromisoformat(value.strip())
        return value.strip()
    if isinstance(value, dict | list):
        raise ValueError("not a scalar")
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return value


def parse_send_date(value: Any) -> datetime:
    """``YYYY-MM-DD HH:MM:SS`` (account zone: UTC) or raise ValueError."""
    if not isinstance(value, str) or not _SEND_DATE_RE.match(value.strip()):
        raise ValueError("bad format")
    return datetime.strptime(value.strip(), DATE_FORMAT).replace(tzinfo=UTC)


def fmt(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime(DATE_FORMAT)
