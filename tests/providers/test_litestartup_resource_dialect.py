"""The LiteStartup resource's ``dialect``: auto for a real account, the sandbox's own on an embedded sandbox."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from esp_warehouse.resources.litestartup import LiteStartupResource
from espcore.errors import ConfigurationError
from espcore.providers.litestartup import LiteStartupClient
from espcore.sandbox.embedded import stop_all
from espcore.sandbox.litestartup import DEMO_API_KEY

KEY = DEMO_API_KEY


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    stop_all()


def test_a_real_account_defaults_to_auto() -> None:
    res = LiteStartupResource(api_key="sk_live_x")
    assert res.effective_dialect() == "auto"
    assert LiteStartupResource(api_key="sk_live_x", dialect="current").effective_dialect() == "current"


def test_a_new_sandbox_state_serves_the_requested_dialect_over_loopback(tmp_path: Path) -> None:
    state = str(tmp_path / "ls.json")
    res = LiteStartupResource(api_key=KEY, sandbox_state=state, dialect="current")
    client = res.get_client()
    try:
        assert client.dialect.name == "current"
        assert client.usage().plan_type == "free"
        balance = res.get_provider().balance()
        assert (balance.quota_allowed, balance.not_exposed_reason) == (10_000, None)
    finally:
        client.close()
    # the default on the same state: the sandbox's own dialect
    assert LiteStartupResource(api_key=KEY, sandbox_state=state).effective_dialect() == "current"
    # auto over the same loopback server detects it
    url = LiteStartupResource(api_key=KEY, sandbox_state=state).target_url()
    auto = LiteStartupClient(KEY, url, dialect="auto")
    try:
        assert auto.detect().dialect == "current"
    finally:
        auto.close()


def test_a_sandbox_defaults_to_seed_and_refuses_a_mismatch(tmp_path: Path) -> None:
    state = str(tmp_path / "seed.json")
    res = LiteStartupResource(api_key=KEY, sandbox_state=state)
    client = res.get_client()
    try:
        assert client.dialect.name == "seed"
        assert res.get_provider().balance().not_exposed_reason == "not_exposed"
    finally:
        client.close()
    with pytest.raises(ConfigurationError, match="serves the seed dialect"):
        LiteStartupResource(api_key=KEY, sandbox_state=state, dialect="current").get_client()
