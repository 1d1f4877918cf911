"""Resources: secrets from the environment, never shown; the run log says sandbox or real; no silent fallback."""

import dagster as dg
import pytest

from esp_warehouse.resources.litestartup import LiteStartupResource
from esp_warehouse.resources.pakat import PakatResource
from esp_warehouse.resources.sendpulse import SendPulseResource
from espcore.errors import ConfigurationError
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


def test_env_var_secret_reaches_the_client_and_stays_hidden(monkeypatch, tmp_path):
    monkeypatch.setenv("SP_ID", DEMO_CLIENT_ID)
    monkeypatch.setenv("SP_SECRET", DEMO_CLIENT_SECRET)
    res = SendPulseResource(
        client_id=dg.EnvVar("SP_ID"), client_secret=dg.EnvVar("SP_SECRET"), sandbox_state=str(tmp_path / "sp.json")
    )
    with dg.build_resources({"sendpulse": res}) as built:
        client = built.sendpulse.get_client()
        assert client.balance().currency  # authenticated with the value, not the variable name
        assert DEMO_CLIENT_SECRET not in repr(built.sendpulse)
        assert DEMO_CLIENT_SECRET not in repr(client)


def test_repr_hides_secrets():
    for res in (
        SendPulseResource(client_id="ID-123456", client_secret="SECRET-123456"),
        PakatResource(api_key="SECRET-123456"),
        LiteStartupResource(api_key="SECRET-123456"),
    ):
        assert "SECRET-123456" not in repr(res)
        assert "SECRET-123456" not in str(res)


def test_plain_http_to_a_real_host_is_refused():
    res = PakatResource(api_key="k", base_url="http://new.pakat.net/api")
    with pytest.raises(ConfigurationError, match="https"):
        res.get_client()


def test_sandbox_and_base_url_together_is_refused(tmp_path):
    res = PakatResource(api_key="k", base_url="https://x.example", sandbox_state=str(tmp_path / "p.json"))
    with pytest.raises(ConfigurationError, match="not both"):
        res.target_url()


def test_run_log_says_which_target(tmp_path):
    res = LiteStartupResource(api_key="sk_live_sandbox_demo", sandbox_state=str(tmp_path / "ls.json"))
    url = res.target_url()
    assert "SANDBOX" in res.describe_target(url)
    real = LiteStartupResource(api_key="x")
    assert real.describe_target(real.target_url()).startswith("litestartup: REAL API at https://")


@pytest.mark.parametrize(
    "res",
    [
        lambda p: SendPulseResource(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, sandbox_state=p),
        lambda p: PakatResource(api_key="sandbox-demo-pakat-key", sandbox_state=p),
        lambda p: LiteStartupResource(api_key="sk_live_sandbox_demo", sandbox_state=p),
    ],
    ids=["sendpulse", "pakat", "litestartup"],
)
def test_each_resource_reaches_its_sandbox_over_loopback(tmp_path, res):
    resource = res(str(tmp_path / "state.json"))
    provider = resource.get_provider()
    try:
        book = provider.ensure_book("Resource test")
        assert provider.find_book("Resource test") is not None or book.id
        provider.balance()
    finally:
        provider.close()
