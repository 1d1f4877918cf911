"""The Dagster UI on the demo's code location as a user sees it: the webserver on loopback lists every asset,
materialises one through its GraphQL API, and headless Chromium renders the asset graph (screenshots saved for
the README)."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from espcore.sandbox.server import free_port

ROOT = Path(__file__).resolve().parents[2]
# Screenshots go to the test's temp dir; ESP_SCREENSHOT_DIR=docs/images refreshes the README's pictures.
SHOTS_ENV = os.environ.get("ESP_SCREENSHOT_DIR")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # webserver start + a real run + Chromium

INSTANCE = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""


def gql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    r = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(INSTANCE)
    data = tmp_path_factory.mktemp("data")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ESP_DATA_DIR": str(data)}
    for var in ("SENDPULSE_CLIENT_ID", "SENDPULSE_CLIENT_SECRET", "PAKAT_API_KEY", "LITESTARTUP_API_KEY"):
        env.pop(var, None)  # the UI test always runs on the sandboxes
    log = open(home / "webserver.log", "w")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-m",
            "pipelines.demo_location",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (home / "webserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "webserver did not start"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def launch(webserver: str, keys: list[list[str]]) -> str:
    repos = gql(
        webserver,
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }",
    )["repositoriesOrError"]["nodes"]
    repo = repos[0]
    params = {
        "selector": {
            "repositoryLocationName": repo["location"]["name"],
            "repositoryName": repo["name"],
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": k} for k in keys],
        },
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "source", "value": "ui-test"}]},
    }
    result = gql(webserver, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    run_id = result["run"]["runId"]
    deadline = time.monotonic() + 180
    status = ""
    while time.monotonic() < deadline:
        status = gql(webserver, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})[
            "runOrError"
        ]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS"
    return run_id


def latest_run_of(webserver: str, key: list[str]) -> str:
    mats = gql(
        webserver,
        "query($k: AssetKeyInput!) { assetOrError(assetKey: $k) "
        "{ ... on Asset { assetMaterializations(limit: 1) { runId } } } }",
        {"k": {"path": key}},
    )["assetOrError"]["assetMaterializations"]
    return mats[0]["runId"]


class Browser:
    """Headless Chromium driven over the DevTools protocol (loopback only): navigate, click, screenshot."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM, "chromium is not installed (scripts/test.sh installs it)"
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                f"--remote-debugging-port={self.port}",
                "--window-size=1600,1000",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=2).json()
                page = next(t for t in targets if t.get("type") == "page")
                break
            except (httpx.TransportError, StopIteration, ValueError):
                assert time.monotonic() < deadline, "chromium did not start"
                time.sleep(0.2)
        self.ws = ws_connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10).__enter__()
        self._id = 0
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=1600, height=1000, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self._id:
                assert "error" not in msg, msg
                return msg.get("result", {})

    def js(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    def open(self, url: str, ready_text: str, timeout: float = 60) -> None:
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not self.js(f"document.body && document.body.innerText.includes({json.dumps(ready_text)})"):
            assert time.monotonic() < deadline, f"{url} never showed {ready_text!r}"
            time.sleep(0.5)
        self.dismiss_dialogs()

    def click_at(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def click(self, expression: str, what: str) -> None:
        """Click the centre of the element the JavaScript ``expression`` finds."""
        rect = self.js(
            f"(() => {{ const el = {expression}; if (!el) return null; const r = el.getBoundingClientRect(); "
            "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        assert rect, f"no {what} on the page"
        self.click_at(*rect)
        time.sleep(0.5)

    def click_text(self, text: str) -> None:
        """Click the innermost element showing exactly ``text``."""
        self.click(
            "[...document.querySelectorAll('*')].find(x => x.children.length === 0 && "
            f"(x.textContent || '').trim() === {json.dumps(text)})",
            repr(text),
        )

    def press(self, key: str, code: str, key_code: int, alt: bool = False) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                modifiers=1 if alt else 0,
                key=key,
                code=code,
                windowsVirtualKeyCode=key_code,
            )
        time.sleep(0.5)

    def type_text(self, text: str) -> None:
        self.call("Input.insertText", text=text)
        time.sleep(0.5)

    def dismiss_dialogs(self) -> None:
        for _ in range(10):
            clicked = self.js(
                "(() => { const b = [...document.querySelectorAll('button')].find("
                "x => ['Skip', 'Dismiss', 'Close'].includes(x.innerText.trim())); if (b) { b.click(); return true; }"
                " return false; })()"
            )
            if not clicked:
                return
            time.sleep(0.5)

    def screenshot(self, out: Path, settle_s: float = 3.0) -> None:
        time.sleep(settle_s)
        self.dismiss_dialogs()
        time.sleep(0.5)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        out.write_bytes(base64.b64decode(data))
        assert out.stat().st_size > 20_000  # a rendered page, not a blank one

    def close(self) -> None:
        self.ws.__exit__(None, None, None)
        self.proc.terminate()
        self.proc.wait(timeout=20)


SYNC_KEY = ["sendpulse", "books", "active_eu_customers"]
BALANCE_KEY = ["lake", "sendpulse", "balances"]
#: the README's picture of the graph: one provider's way, from the warehouse through its sync, campaign guard and
#: launch to its landed datasets and the lake views (every group expanded: the whole graph is too wide to read)
GRAPH_QUERY = f'+key:"{"/".join(SYNC_KEY)}"+'


def show_lineage(browser: Browser, webserver: str, query: str) -> None:
    """The global asset lineage of ``query`` with every group expanded, the navigation and the group list hidden
    so the graph gets the whole window."""
    browser.open(f"{webserver}/asset-groups", "sendpulse_sync")
    time.sleep(2)
    browser.dismiss_dialogs()  # a first visit's newsletter dialog comes late and would take the clicks
    browser.click_text("Hide navigation")
    browser.click(  # the group list's toggle, right of its "Jump to…" box
        "(() => { const i = [...document.querySelectorAll('input')].find(x => (x.placeholder || '')"
        ".startsWith('Jump to')); if (!i) return null; const r = i.getBoundingClientRect(); return "
        "[...document.querySelectorAll('button')].find(b => { const q = b.getBoundingClientRect(); "
        "return Math.abs(q.y - r.y) < 20 && q.x > r.right && q.x < r.right + 80; }); })()",
        "group list toggle",
    )
    browser.click_text("Search and filter assets")
    browser.type_text(query)
    browser.press("Enter", "Enter", 13)
    time.sleep(2)
    browser.press("e", "KeyE", 69, alt=True)  # the lineage page's "Expand all groups" (⌥E)


def test_the_ui_lists_materialises_and_renders(webserver, tmp_path):
    """One flow, so it runs against one webserver whatever the test distribution."""
    # 1. every asset the demo's definitions declare is in the UI's asset graph
    from pipelines.demo_location import defs

    expected = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    entries = gql(
        webserver,
        "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename "
        "... on PythonError { message } } } } } }",
    )["workspaceOrError"]["locationEntries"]
    assert entries, "no code location loaded"
    for entry in entries:
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    data = gql(webserver, "{ assetNodes { assetKey { path } } }")
    listed = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
    assert expected <= listed
    for family in ("/books/", "/campaigns/", "lake/"):
        assert any(family in k for k in listed), family
    # 2. materialise the segments, one sync and a landing asset through the UI's GraphQL API
    segments = [list(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "warehouse"]
    demo = [
        k for k in segments if k[1] in ("customers", "segment_active_eu", "segment_trial_users", "segment_all_active")
    ]
    run_id = launch(webserver, [*demo, SYNC_KEY, BALANCE_KEY])
    assert latest_run_of(webserver, SYNC_KEY) == run_id
    assert latest_run_of(webserver, BALANCE_KEY) == run_id
    # 3. what a person sees: the asset graph, and a sync's metadata
    shots = Path(SHOTS_ENV) if SHOTS_ENV else tmp_path
    browser = Browser(tmp_path / "profile")
    try:
        show_lineage(browser, webserver, GRAPH_QUERY)
        shown = browser.js("document.body.innerText")
        for name in ("segment_active_eu", "active_eu_customers", "sendpulse_welcome", "book_members", "views"):
            assert name in shown, name  # the assets of the query, each group expanded
        assert "litestartup_sync" not in shown  # only the query's
        browser.screenshot(shots / "asset-graph.png")
        browser.open(f"{webserver}/assets/{'/'.join(SYNC_KEY)}?view=events", "planned_add")
        browser.screenshot(shots / "sync-metadata.png")
    finally:
        browser.close()
