"""``docs/providers.md`` shows every documented operation per provider; these tests keep its tables true.

Each coverage table (header ``operation | what it does | client method | sandbox | test``) sits under a ``###``
heading naming its provider. The first table under a heading is the provider's documented set, any further one
what the code implements beyond it. Checked against the code, not against the doc's own words: the documented
sets keep their size (SendPulse 52, Pakat 61, LiteStartup seed 24), every client method named exists on the
client class, the sandbox column agrees with the sandbox's routing table both ways and no routed operation is
left out of the tables, and every test the page names (in the tables or anywhere else) exists.
"""

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from espcore.providers.litestartup import LITESTARTUP_BASE_URL, LiteStartupClient
from espcore.providers.pakat import PAKAT_BASE_URL, PakatClient
from espcore.providers.sendpulse import SENDPULSE_BASE_URL, SendPulseClient
from espcore.sandbox.base import ProviderSandbox
from espcore.sandbox.litestartup import LiteStartupSandbox
from espcore.sandbox.pakat import PakatSandbox
from espcore.sandbox.sendpulse import SendPulseSandbox

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "providers.md"
HEADER = ("operation", "what it does", "client method", "sandbox", "test")
SECTION_TITLE = "## Operation coverage"

OPERATION = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`")
CLIENT_CELL = re.compile(r"—|`\w+\.\w+`(?:, `\w+\.\w+`)*")
CLIENT_METHOD = re.compile(r"`(\w+)\.(\w+)`")
TEST_CELL = re.compile(r"—|`tests/[^`]+`(?:, `tests/[^`]+`)*")
TEST_NAME = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w:]+))?`")


@dataclass(frozen=True)
class Provider:
    heading: str  # the start of its ``###`` heading
    client: type
    sandbox: Callable[[], ProviderSandbox]
    base_url: str  # the client's default base URL: its path is where the sandbox serves the API too
    documented: int | None  # operations in the provider's documentation (None: as many as the sandbox serves)


PROVIDERS = (
    Provider("SendPulse", SendPulseClient, SendPulseSandbox, SENDPULSE_BASE_URL, 52),
    Provider("Pakat", PakatClient, PakatSandbox, PAKAT_BASE_URL, 61),
    Provider(
        "LiteStartup, seed dialect",
        LiteStartupClient,
        lambda: LiteStartupSandbox(dialect="seed"),
        LITESTARTUP_BASE_URL,
        24,
    ),
    Provider(
        "LiteStartup, current dialect",
        LiteStartupClient,
        lambda: LiteStartupSandbox(dialect="current"),
        LITESTARTUP_BASE_URL,
        None,
    ),
)


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    does: str
    client: str
    served: str
    tests: str
    line: int

    @property
    def op(self) -> str:
        return f"{self.method} {self.path}"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@cache
def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


@cache
def _tables() -> dict[str, tuple[tuple[Row, ...], ...]]:
    """Coverage tables by the ``###`` heading they sit under (in the operation coverage section)."""
    lines = _doc().splitlines()
    start = lines.index(SECTION_TITLE)
    out: dict[str, list[tuple[Row, ...]]] = {}
    heading: str | None = None
    i = start + 1
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            break
        if line.startswith("### "):
            heading = line[4:].strip()
        elif line.startswith("|") and tuple(_cells(line)) == HEADER:
            assert heading is not None, f"line {i + 1}: a coverage table before any ### heading"
            rows: list[Row] = []
            i += 2  # the header and its |---| line
            while i < len(lines) and lines[i].startswith("|"):
                cells = _cells(lines[i])
                assert len(cells) == 5, f"line {i + 1}: {len(cells)} cells, not 5"
                op = OPERATION.fullmatch(cells[0])
                assert op, f"line {i + 1}: operation {cells[0]!r} is not `METHOD /path`"
                rows.append(Row(op.group(1), op.group(2), *cells[1:], line=i + 1))
                i += 1
            out.setdefault(heading, []).append(tuple(rows))
            continue
        i += 1
    return {k: tuple(v) for k, v in out.items()}


def _section(provider: Provider) -> tuple[tuple[Row, ...], ...]:
    found = [tables for heading, tables in _tables().items() if heading.startswith(provider.heading)]
    assert len(found) == 1, f"{len(found)} ### sections with coverage tables start with {provider.heading!r}"
    return found[0]


def _shape(path: str) -> str:
    """A path template with its parameter names (and converters) dropped: ``/a/{id:int}/b`` -> ``/a/{}/b``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def _routes(sandbox: ProviderSandbox) -> set[tuple[str, str]]:
    """What the sandbox routes: its dispatcher's table (one catch-all Starlette route hands every request to it)."""
    return {(r.method, _shape(r.template)) for r in sandbox._routes}


def _served_as(provider: Provider, sandbox: ProviderSandbox, row: Row) -> tuple[str, str]:
    """The routing-table entry that serves ``row``: its path under the base URL's path, as the sandbox sees it."""
    base = urlsplit(provider.base_url).path.rstrip("/")
    return row.method, _shape(sandbox.normalise_path(base + row.path))


BY_ID = {p.heading: p for p in PROVIDERS}


@pytest.fixture(params=[p.heading for p in PROVIDERS])
def provider(request: pytest.FixtureRequest) -> Provider:
    return BY_ID[request.param]


def test_every_provider_has_its_tables_and_nothing_else_is_tabled() -> None:
    for p in PROVIDERS:
        _section(p)
    unknown = [h for h in _tables() if not any(h.startswith(p.heading) for p in PROVIDERS)]
    assert unknown == [], f"coverage tables under headings no provider claims: {unknown}"


def test_documented_set_is_complete_and_rows_are_well_formed(provider: Provider) -> None:
    tables = _section(provider)
    if provider.documented is not None:
        assert len(tables[0]) == provider.documented, (
            f"{provider.heading}: {len(tables[0])} documented operations tabled, not {provider.documented}"
        )
    rows = [r for t in tables for r in t]
    shapes = [(r.method, _shape(r.path)) for r in rows]
    assert len(set(shapes)) == len(shapes), f"{provider.heading}: an operation is tabled twice"
    for r in rows:
        assert r.does, f"line {r.line}: {r.op} says nothing about what it does"
        assert CLIENT_CELL.fullmatch(r.client), f"line {r.line}: client cell {r.client!r}"
        assert r.served in ("yes", "no"), f"line {r.line}: sandbox cell {r.served!r} is not yes/no"
        assert TEST_CELL.fullmatch(r.tests), f"line {r.line}: test cell {r.tests!r}"
        if r.served == "yes" and r.client != "—":
            assert r.tests != "—", f"line {r.line}: {r.op} is served and called but names no test"


def test_named_client_methods_exist(provider: Provider) -> None:
    for r in (r for t in _section(provider) for r in t):
        for cls, name in CLIENT_METHOD.findall(r.client):
            assert cls == provider.client.__name__, f"line {r.line}: {cls} is not {provider.client.__name__}"
            assert callable(getattr(provider.client, name, None)), f"line {r.line}: {cls}.{name} does not exist"


def test_sandbox_column_matches_the_routing_table(provider: Provider) -> None:
    sandbox = provider.sandbox()
    routed = _routes(sandbox)
    assert routed, f"{provider.heading}: the sandbox routes nothing (its routing table moved?)"
    for r in (r for t in _section(provider) for r in t):
        served = _served_as(provider, sandbox, r) in routed
        assert served == (r.served == "yes"), f"line {r.line}: {r.op} says sandbox {r.served}, routed: {served}"


def test_every_routed_operation_is_tabled(provider: Provider) -> None:
    sandbox = provider.sandbox()
    tabled = {_served_as(provider, sandbox, r) for t in _section(provider) for r in t}
    missing = sorted(_routes(sandbox) - tabled)
    assert missing == [], f"{provider.heading}: routed by the sandbox but in no table: {missing}"


@cache
def _definitions(path: Path) -> frozenset[str]:
    """``name`` for module-level functions and ``Class::name`` for methods of module-level classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{n.name}" for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return frozenset(names)


def test_every_test_named_on_the_page_exists() -> None:
    named = TEST_NAME.findall(_doc())
    assert len(named) > 100, "the coverage tables name far fewer tests than they should"
    for file, name in sorted(set(named)):
        path = ROOT / file
        assert path.is_file(), f"{file} does not exist"
        if name:
            assert name in _definitions(path), f"{file}::{name} does not exist"
