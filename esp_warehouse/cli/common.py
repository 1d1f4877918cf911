"""What the commands share: exit codes, output (text or JSON) with secrets kept out, the declarations file, and
resources built from the environment exactly as the code location builds them.

Resources are :mod:`esp_warehouse.environment`'s (real credentials through ``dg.EnvVar``, or the embedded
sandboxes when ``ESP_SANDBOX_DIR`` is set); :func:`initialised` resolves and sets one up outside a Dagster run,
as a run would, and tears it down afterwards. No Dagster instance, daemon or run storage is involved.
"""

import contextlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from esp_warehouse.config import ConfigError, declarations_path, load_declarations, providers_in_use
from esp_warehouse.environment import provider_resource
from espcore.errors import ConfigurationError
from espcore.http import is_loopback_host
from espcore.sync.errors import SyncLockedError
from espcore.transient import is_transient

#: the run did what it was asked; ``validate`` found nothing
EXIT_OK = 0
#: ``validate`` found problems; ``sync`` or ``land`` failed
EXIT_PROBLEMS = 1
#: a usage or configuration error: nothing ran (click's own usage errors exit 2 as well)
EXIT_USAGE = 2
#: try again later: the book is locked by another live run, or a transient fault (rate limit, 5xx, network, a
#: lost warehouse connection, a DuckDB file held by another process)
EXIT_RETRY = 3
#: ``sync`` ran but left rows pending or had rows rejected by the provider (outcome ``partial``)
EXIT_PARTIAL = 4

EXIT_CODES = {
    EXIT_OK: "ok",
    EXIT_PROBLEMS: "problems found, or the run failed",
    EXIT_USAGE: "usage or configuration error: nothing ran",
    EXIT_RETRY: "try again later: book locked by another live run, or a transient fault",
    EXIT_PARTIAL: "partial: rows left pending or rejected by the provider",
}

#: declarations read when neither --declarations nor ESP_DECLARATIONS names a file: the first that exists, from
#: the working directory (the second is this repository's layout, the file its code location reads)
DEFAULT_DECLARATIONS = ("syncs.yaml", "pipelines/syncs.yaml")

#: environment variables whose values are secrets wherever they appear (credentials of every account, a
#: warehouse URL that may hold a password, object-store keys)
_SECRET_NAME = re.compile(r"(_API_KEY|_CLIENT_ID|_CLIENT_SECRET|_SECRET|_SECRET_ACCESS_KEY|_PASSWORD|_TOKEN)$")
_SECRET_URLS = ("ESP_WAREHOUSE_URL", "ESP_LAKE_ROOT")

T = TypeVar("T")


class CommandError(Exception):
    """A command cannot go on: ``message`` is shown (text) or returned under ``error`` (JSON), with ``code``."""

    def __init__(self, message: str, code: int = EXIT_PROBLEMS, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values that must never be printed: every credential-like variable, and the password of a warehouse
    or lake URL (the whole URL too). Short values are left out (they would mask ordinary words)."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_NAME.search(name):
            found.add(value)
        elif name in _SECRET_URLS:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.add(password)
                found.add(value)
    return sorted((v for v in found if len(v) >= 8), key=len, reverse=True)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret of the environment replaced by ``***`` (a safety net: nothing the commands
    print is meant to hold one, since errors are redacted where they are raised)."""
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, "***")
    return text


class Output:
    """Where a command writes: human lines on stdout (``--json``: one JSON document instead), progress and
    errors on stderr; everything passes :func:`scrub`."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._secrets = secret_values()

    def line(self, text: str = "") -> None:
        """A line of the human output (nothing under ``--json``)."""
        if not self.as_json:
            click.echo(scrub(text, self._secrets))

    def progress(self, text: str) -> None:
        click.echo(scrub(text, self._secrets), err=True)

    def document(self, payload: Mapping[str, Any]) -> None:
        """The JSON document of a ``--json`` run (nothing otherwise)."""
        if self.as_json:
            click.echo(scrub(json.dumps(payload, indent=2, default=str), self._secrets))

    def error(self, message: str) -> None:
        if not self.as_json:
            click.echo(scrub(f"error: {message}", self._secrets), err=True)


def failure_code(exc: BaseException) -> int:
    """The exit code of a command stopped by ``exc``: 3 when trying again later may succeed (another run holds
    the book, or the fault is transient), 2 for a configuration error, else 1."""
    if isinstance(exc, SyncLockedError) or is_transient(exc):
        return EXIT_RETRY
    if isinstance(exc, ConfigError | ConfigurationError):
        return EXIT_USAGE
    return EXIT_PROBLEMS


def explain(exc: BaseException) -> str:
    """``<ErrorType>: <message>``, the message as the provider or the database gave it (already redacted)."""
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text}"


# -- declarations ---------------------------------------------------------------------------------------------


def declarations_file(given: str | None) -> Path:
    """The declarations file a command reads: ``--declarations``, else ``ESP_DECLARATIONS``, else the first of
    :data:`DEFAULT_DECLARATIONS` that exists (a :class:`CommandError` with exit code 2 when none is given)."""
    default = next((Path(p) for p in DEFAULT_DECLARATIONS if Path(p).is_file()), None)
    try:
        return declarations_path(given, default=default)
    except ConfigError as exc:
        raise CommandError(
            f"{exc}, give --declarations PATH, or run where {' or '.join(DEFAULT_DECLARATIONS)} is", EXIT_USAGE
        ) from None


def load(given: str | None) -> tuple[Path, Any]:
    """The declarations file and its validated :class:`~esp_warehouse.config.Declarations` (exit code 2 when it
    cannot be read: ``validate`` says what is wrong, one problem a line)."""
    path = declarations_file(given)
    try:
        return path, load_declarations(path)
    except ConfigError as exc:
        raise CommandError(f"{exc} (esp-warehouse validate lists every problem)", EXIT_USAGE) from None


# -- resources ------------------------------------------------------------------------------------------------


#: set by ``--verbose``: Dagster's resource set-up then logs what it connects to (stderr)
VERBOSE = {"on": False}


@contextmanager
def initialised(resource: T) -> Iterator[T]:
    """``resource`` with its environment variables resolved and set up, as a Dagster run sets it up (the client
    is opened, the warehouse connected lazily); torn down when the block ends. Dagster's console log of the set-up
    (which target, which warehouse) is shown with ``--verbose`` only: the commands print the target themselves."""
    with contextlib.ExitStack() as stack:
        previous = logging.root.manager.disable
        if not VERBOSE["on"]:
            logging.disable(logging.INFO)  # the set-up logs to a logger of Dagster's own, not reachable by name
        try:
            ready = stack.enter_context(resource.process_config_and_initialize_cm())  # type: ignore[attr-defined]
        finally:
            logging.disable(previous)
        yield ready


def account_resource(decls: Any, name: str) -> Any:
    """The resource of one account (a provider's name for its default account, or a declared account), from the
    environment as :func:`esp_warehouse.environment.build_resources` builds it."""
    try:
        account = decls.account(name)
    except ConfigError as exc:
        known = ", ".join(sorted(set(providers_in_use(decls)) | set(decls.accounts))) or "none"
        raise CommandError(f"{exc} (accounts in the declarations: {known})", EXIT_USAGE) from None
    return provider_resource(name, providers_in_use(decls).get(name, ()), account=account)


def target_kind(resource: Any) -> str:
    """``sandbox`` (an embedded sandbox, or a loopback server) or ``real`` (the provider's API)."""
    if resource.is_sandbox:
        return "sandbox"
    host = urlsplit(resource.target_url()).hostname or ""
    return "sandbox" if is_loopback_host(host) else "real"


def new_run_id() -> str:
    """A run id of this command line (``cli-`` and a UUID), told apart from Dagster's in the sync tables."""
    return f"cli-{uuid.uuid4()}"
