"""The LiteStartup resource: bearer API key from the environment, real API or embedded sandbox."""

from typing import ClassVar, Literal

from pydantic import Field

from esp_warehouse.resources.base import ProviderResource
from espcore.http import HttpPolicy
from espcore.providers.base import EspProvider
from espcore.providers.litestartup import LITESTARTUP_BASE_URL, LiteStartupClient, LiteStartupProvider


class LiteStartupResource(ProviderResource):
    """LiteStartup REST API v2. Give ``api_key`` with ``dg.EnvVar("LITESTARTUP_API_KEY")``.

    LiteStartup's API exposes no balance or quota figures: the balance landing says so (``not_exposed``)
    instead of inventing numbers."""

    provider_name: ClassVar[str] = "litestartup"
    default_base_url: ClassVar[str] = LITESTARTUP_BASE_URL
    sandbox_path: ClassVar[str] = "/client/v2"

    api_key: str = Field(description="LiteStartup API key (sk_live_...).", repr=False)
    plan: Literal["free", "pro"] = Field(default="free", description="Plan: sets the client's request pace.")

    def _make_client(self, base_url: str, policy: HttpPolicy) -> LiteStartupClient:
        return LiteStartupClient(self.api_key, base_url, plan=self.plan, policy=policy)

    def _make_provider(self, client: LiteStartupClient) -> EspProvider:
        return LiteStartupProvider(client)

    def get_client(self) -> LiteStartupClient:
        return super().get_client()
