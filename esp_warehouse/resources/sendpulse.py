"""The SendPulse resource: OAuth client id/secret from the environment, real API or embedded sandbox."""

from typing import ClassVar

from pydantic import Field

from esp_warehouse.resources.base import ProviderResource
from espcore.http import HttpPolicy
from espcore.providers.base import EspProvider
from espcore.providers.sendpulse import SENDPULSE_BASE_URL, SendPulseClient, SendPulseProvider


class SendPulseResource(ProviderResource):
    """SendPulse email service. Give ``client_id``/``client_secret`` with ``dg.EnvVar``."""

    provider_name: ClassVar[str] = "sendpulse"
    default_base_url: ClassVar[str] = SENDPULSE_BASE_URL
    # under the documented 10 req/s by 5%: room for network jitter (a 429 from SendPulse names no Retry-After), and
    # 0.95 of the bound for a sync (bench/limits_bench.py: 0.79 at 8 req/s, refusals at 10 with 20 ms of jitter)
    default_requests_per_second: ClassVar[float | None] = 9.5

    client_id: str = Field(description="OAuth client id (API 'ID').", repr=False)
    client_secret: str = Field(description="OAuth client secret (API 'Secret').", repr=False)
    account_timezone: str = Field(default="UTC", description="Time zone SendPulse reads send_date in.")

    def _make_client(self, base_url: str, policy: HttpPolicy) -> SendPulseClient:
        return SendPulseClient(
            self.client_id, self.client_secret, base_url, policy=policy, account_timezone=self.account_timezone
        )

    def _make_provider(self, client: SendPulseClient) -> EspProvider:
        return SendPulseProvider(client)

    def get_client(self) -> SendPulseClient:
        return super().get_client()
