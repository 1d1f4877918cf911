"""``esp-warehouse validate``: the declarations, then a pre-flight against the warehouse and each provider account.

Every problem is one :class:`Problem` naming the file, the entry and the field. Nothing is written anywhere:
the segments are planned (``EXPLAIN``, through the run-time guard) and read with ``LIMIT 0``, a DuckDB warehouse
file that does not exist is reported rather than created, and each account answers its cheapest authenticated
read (its balance or quota; where the provider exposes none, the first page of its books).
"""

import difflib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from esp_warehouse.assets.subscribers import to_spec
from esp_warehouse.cli.common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    CommandError,
    account_resource,
    declarations_file,
    explain,
    initialised,
    target_kind,
)
from esp_warehouse.config import ConfigError, load_declarations, providers_in_use
from esp_warehouse.environment import warehouse_resource
from espcore.sync.source import check_segment_sql
from espcore.warehouse import Warehouse

#: an entry of the declarations in a validation message: ``syncs[0] (name)``
_ENTRY = r"(?:syncs|campaigns)\[\d+\](?: \([^)]*\))?"
_PROBLEM = re.compile(rf"^(?:(?P<entry>{_ENTRY}) )?field (?P<field>\S+): (?P<message>.*)$", re.S)
_NEXT = re.compile(rf"; (?=(?:{_ENTRY}) field |field \S+: )")
_WHOLE_FILE = "(file)"


@dataclass(frozen=True)
class Problem:
    """One thing to fix: in ``file`` (the declarations, or ``environment``), ``entry`` (``syncs[0] (name)``,
    ``accounts.sendpulse_eu``…) and ``field`` (``fields.country``, ``source.table``, ``primary_key``…)."""

    file: str
    entry: str
    field: str
    message: str

    def __post_init__(self) -> None:  # one line per problem (a YAML error quotes the file over several)
        object.__setattr__(self, "message", " ".join(self.message.split()))

    @property
    def line(self) -> str:
        if self.entry == _WHOLE_FILE:
            return f"{self.file}: {self.message}"
        return f"{self.file}: {self.entry} field {self.field}: {self.message}"

    def as_json(self) -> dict[str, str]:
        return {**asdict(self), "line": self.line}


def declaration_problems(path: Path, message: str) -> list[Problem]:
    """A :class:`~esp_warehouse.config.ConfigError` of the declarations file as one problem per entry and field
    (its message joins them with ``; ``)."""
    body = message.removeprefix(f"{path}: ")
    problems = []
    for part in _NEXT.split(body):
        match = _PROBLEM.match(part)
        if match is None:
            problems.append(Problem(str(path), _WHOLE_FILE, "", part))
            continue
        entry, field, text = match["entry"], match["field"], match["message"]
        inner = _PROBLEM.match(text.removeprefix("Value error, "))  # a rule of the whole file names its entry
        if entry is None and inner is not None and inner["entry"]:
            entry, field, text = inner["entry"], inner["field"], inner["message"]
        problems.append(Problem(str(path), entry or _WHOLE_FILE, field, text.removeprefix("Value error, ")))
    return problems


# -- warehouse ------------------------------------------------------------------------------------------------


def _source_field(decl: Any) -> str:
    source = decl.source
    return "source.table" if source.table is not None else "source.view" if source.view is not None else "source.sql"


def _missing_column(column: str, columns: list[str], *, case_insensitive: bool) -> str | None:
    """Why ``column`` is not a column of the segment, or None when it is."""
    if column in columns or (case_insensitive and column.lower() in {c.lower() for c in columns}):
        return None
    close = difflib.get_close_matches(column, columns, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(columns[:12]) + (", …" if len(columns) > 12 else "")
    return f"column {column!r} is not in the segment (its columns: {shown or 'none'}){hint}"


def warehouse_preflight(path: Path, decls: Any) -> tuple[dict[str, Any], list[Problem]]:
    """Each sync's segment against the warehouse: the guard passes, the relation exists, the primary key and
    every mapped column are among its columns."""
    file = str(path)
    problems: list[Problem] = []
    resource = warehouse_resource()
    variable = "ESP_WAREHOUSE_URL" if resource.url is not None else "ESP_DATA_DIR"
    report: dict[str, Any] = {"location": None, "segments_checked": 0}
    try:
        with initialised(resource) as ready:
            wh = ready.get_warehouse()
            report["location"] = wh.location
            if isinstance(wh, Warehouse) and not wh.path.exists():
                problems.append(
                    Problem("environment", "warehouse", variable, f"the DuckDB file {wh.path} does not exist")
                )
                return report, problems
            with wh.connect() as con:
                con.fetchone("SELECT 1")
            case_insensitive = isinstance(wh, Warehouse)  # DuckDB resolves quoted names without regard to case
            for i, decl in enumerate(decls.syncs):
                entry = f"syncs[{i}] ({decl.name})"
                try:
                    spec = to_spec(decl)
                    with wh.connect() as con:
                        check_segment_sql(con, spec.source_sql)
                        columns = list(con.arrow(f"SELECT * FROM ({spec.source_sql}) AS seg LIMIT 0").column_names)
                except Exception as exc:  # the guard's refusal, or the database's own words (a missing relation)
                    problems.append(Problem(file, entry, _source_field(decl), explain(exc)))
                    continue
                report["segments_checked"] += 1
                checks = [("primary_key", decl.primary_key)] + [(f"fields.{k}", v) for k, v in decl.fields.items()]
                for field, column in checks:
                    why = _missing_column(column, columns, case_insensitive=case_insensitive)
                    if why is not None:
                        problems.append(Problem(file, entry, field, why))
    except Exception as exc:  # the warehouse cannot be reached or opened
        problems.append(Problem("environment", "warehouse", variable, f"cannot connect: {explain(exc)}"))
    return report, problems


# -- provider accounts ----------------------------------------------------------------------------------------


def _balance_summary(balance: Any) -> str:
    if balance.not_exposed_reason:
        return f"no balance exposed ({balance.not_exposed_reason})"
    parts = []
    if balance.amount is not None:
        parts.append(f"{balance.amount} {balance.currency or ''}".strip())
    if balance.unlimited:
        parts.append("unlimited quota")
    elif balance.emails_left is not None:
        parts.append(f"{balance.emails_left} emails left")
    return ", ".join(parts) or "balance read"


def account_preflight(path: Path, decls: Any) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Each account the declarations use: its credentials are configured, and the provider accepts them."""
    problems: list[Problem] = []
    accounts: list[dict[str, Any]] = []
    for name, users in providers_in_use(decls).items():
        entry = f"accounts.{name}" if name in decls.accounts else f"account {name} (used by {', '.join(users)})"
        field = "env_prefix" if name in decls.accounts else "provider"
        report: dict[str, Any] = {"account": name, "provider": decls.kind(name), "target": None, "ok": False}
        accounts.append(report)
        try:
            resource = account_resource(decls, name)
        except CommandError as exc:
            problems.append(Problem(str(path), entry, field, exc.message))
            continue
        except Exception as exc:  # missing or half-set credentials, or real ones beside ESP_SANDBOX_DIR
            problems.append(Problem(str(path), entry, field, str(exc)))
            continue
        try:
            with initialised(resource) as ready:
                report["target"] = target_kind(ready)
                adapter = ready.get_provider()
                balance = adapter.balance()
                if balance.not_exposed_reason:  # no call proved the credentials: read the first page of books
                    next(iter(adapter.list_books()), None)
                report["ok"] = True
                report["detail"] = _balance_summary(balance)
        except Exception as exc:
            where = "the sandbox" if report["target"] == "sandbox" else "the real API"
            problems.append(Problem(str(path), entry, field, f"{where} refused or failed: {explain(exc)}"))
    return accounts, problems


# -- the command ----------------------------------------------------------------------------------------------


def validate(given: str | None, *, warehouse: bool = True, providers: bool = True) -> tuple[dict[str, Any], int]:
    """The JSON document of ``validate`` and its exit code (0: no problem, 1: problems)."""
    path = declarations_file(given)
    payload: dict[str, Any] = {"declarations": str(path), "ok": False, "problems": []}
    try:
        decls = load_declarations(path)
    except ConfigError as exc:
        problems = declaration_problems(path, str(exc))
        payload.update(problems=[p.as_json() for p in problems], exit_code=EXIT_PROBLEMS)
        return payload, EXIT_PROBLEMS
    payload["syncs"] = [s.name for s in decls.syncs]
    payload["campaigns"] = [c.name for c in decls.campaigns]
    problems = []
    if warehouse:
        payload["warehouse"], found = warehouse_preflight(path, decls)
        problems += found
    if providers:
        payload["accounts"], found = account_preflight(path, decls)
        problems += found
    code = EXIT_PROBLEMS if problems else EXIT_OK
    payload.update(ok=not problems, problems=[p.as_json() for p in problems], exit_code=code)
    return payload, code


def render(payload: dict[str, Any]) -> list[str]:
    """The human lines of a ``validate`` document."""
    lines = [f"declarations: {payload['declarations']}"]
    if "syncs" in payload:
        lines[0] += f" ({len(payload['syncs'])} syncs, {len(payload['campaigns'])} campaigns)"
    wh = payload.get("warehouse")
    if wh is not None:
        lines.append(f"warehouse: {wh['location'] or 'not reached'}, {wh['segments_checked']} segments read")
    for account in payload.get("accounts", []):
        target = {"sandbox": "sandbox", "real": "REAL API"}.get(account["target"] or "", "not configured")
        state = account.get("detail", "ok") if account["ok"] else "problem"
        lines.append(f"{account['account']} ({account['provider']}): {target}: {state}")
    problems = payload["problems"]
    if problems:
        lines.append(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:")
        lines += [p["line"] for p in problems]
    else:
        lines.append("no problems")
    return lines
