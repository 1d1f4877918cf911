"""The LiteStartup resource: bearer API key from the environment, real API or embedded sandbox, either dialect."""

from typing import ClassVar, Literal

from pydantic import Field

from esp_warehouse.resources.base import ProviderResource
from espcore.errors import ConfigurationError
from espcore.http import HttpPolicy
from espcore.providers.base import EspProvider
from espcore.providers.litestartup import LITESTARTUP_BASE_URL, LiteStartupClient, LiteStartupProvider


class LiteStartupResource(ProviderResource):
    """LiteStartup REST API v2. Give ``api_key`` with ``dg.EnvVar("LITESTARTUP_API_KEY")``.

    LiteStartup has two API doc sets (``dialect``): the seed's, whose API exposes no balance or quota figures
    (the balance landing says ``not_exposed`` instead of inventing numbers), and the current official one, whose
    ``/settings/usage`` gives the monthly email quota. A real account defaults to ``auto`` (detected once from
    ``GET /verify``); an embedded sandbox to the dialect its state file serves."""

    provider_name: ClassVar[str] = "litestartup"
    default_base_url: ClassVar[str] = LITESTARTUP_BASE_URL
    sandbox_path: ClassVar[str] = "/client/v2"

    api_key: str = Field(description="LiteStartup API key (sk_live_...).", repr=False)
    plan: Literal["free", "pro"] = Field(default="free", description="Plan: sets the client's request pace.")
    dialect: Literal["default", "auto", "seed", "current"] = Field(
        default="default",
        description="API dialect: seed (the doc set the product was specified from), current (LiteStartup's newer "
        "official API) or auto (detected from GET /verify). default: auto for a real account; on an embedded "
        "sandbox, the dialect it serves (a new sandbox state is created in the dialect given here).",
    )

    @staticmethod
    def _state_dialect(state: str, wanted: str | None) -> str:
        from espcore.sandbox.litestartup import prepare_state_dialect  # sandboxes load only when one is used

        return prepare_state_dialect(state, wanted)

    def target_url(self) -> str:
        if self.sandbox_state and not self.base_url:
            # a new state file is created in the requested dialect; an existing one must already speak it
            wanted = self.dialect if self.dialect in ("seed", "current") else None
            served = self._state_dialect(self.sandbox_state, wanted)
            if wanted not in (None, served):
                raise ConfigurationError(
                    f"litestartup: the sandbox state {self.sandbox_state} serves the {served} dialect, not "
                    f"{self.dialect}; give another state file or dialect",
                    provider=self.provider_name,
                )
        return super().target_url()

    def effective_dialect(self) -> Literal["auto", "seed", "current"]:
        """The dialect the client is built with: as set, else the sandbox's own, else ``auto``."""
        if self.dialect != "default":
            return self.dialect
        if self.sandbox_state:
            return "current" if self._state_dialect(self.sandbox_state, None) == "current" else "seed"
        return "auto"

    def _make_client(self, base_url: str, policy: HttpPolicy) -> LiteStartupClient:
        return LiteStartupClient(
            self.api_key, base_url, plan=self.plan, policy=policy, dialect=self.effective_dialect()
        )

    def _make_provider(self, client: LiteStartupClient) -> EspProvider:
        return LiteStartupProvider(client)

    def get_client(self) -> LiteStartupClient:
        return super().get_client()
