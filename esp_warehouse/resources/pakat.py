"""The Pakat (MailWizz) resource: API key from the environment, real API or embedded sandbox."""

from typing import ClassVar

from pydantic import Field

from esp_warehouse.resources.base import ProviderResource
from espcore.http import HttpPolicy
from espcore.providers.base import EspProvider
from espcore.providers.pakat import PAKAT_BASE_URL, PakatClient, PakatProvider


class PakatResource(ProviderResource):
    """Pakat marketing API (``X-API-KEY``). Give ``api_key`` with ``dg.EnvVar("PAKAT_API_KEY")``."""

    provider_name: ClassVar[str] = "pakat"
    default_base_url: ClassVar[str] = PAKAT_BASE_URL
    sandbox_path: ClassVar[str] = "/api"

    api_key: str = Field(description="Pakat API key.", repr=False)
    customer_timezone: str = Field(
        default="UTC", description="The account's configured time zone: campaign send_at is read in it."
    )
    from_name: str = Field(default="Newsletter", description="Default sender name of lists the sync creates.")
    from_email: str = Field(default="news@demo.example.com", description="Default sender of new lists.")
    reply_to: str | None = Field(default=None, description="Default reply-to of new lists.")

    def _make_client(self, base_url: str, policy: HttpPolicy) -> PakatClient:
        return PakatClient(self.api_key, base_url, policy=policy, timezone=self.customer_timezone)

    def _make_provider(self, client: PakatClient) -> EspProvider:
        return PakatProvider(client, from_name=self.from_name, from_email=self.from_email, reply_to=self.reply_to)

    def get_client(self) -> PakatClient:
        return super().get_client()
