"""What every provider resource shares: target selection (real API or embedded sandbox), policy, lifecycle.

A resource holds configuration and secrets only; the HTTP work lives in the plain client from ``espcore``.
Secrets come from ``dg.EnvVar`` and are never logged. A resource with ``sandbox_state`` set talks to an
embedded loopback sandbox and says so in the run log; without it, it talks to the provider's real https API.
There is no silent fallback from one to the other.
"""

from typing import Any, ClassVar

import dagster as dg
from pydantic import Field, PrivateAttr

from espcore.errors import ConfigurationError
from espcore.http import HttpPolicy, is_loopback_host
from espcore.providers.base import EspProvider


class ProviderResource(dg.ConfigurableResource):
    """Base class of the SendPulse, Pakat and LiteStartup resources."""

    provider_name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    default_requests_per_second: ClassVar[float | None] = None
    sandbox_path: ClassVar[str] = ""  # where the API lives on the sandbox server (Pakat: /api)

    account: str | None = Field(
        default=None,
        description="The account's name when a deployment declares several of one provider (e.g. sendpulse_eu): "
        "sync state, locks, the campaign ledger and lake partitions are kept per account. Default: the provider's.",
    )
    sandbox_state: str | None = Field(
        default=None,
        description="State file of an embedded loopback sandbox. Set only for the demo and tests: the resource "
        "then never talks to the real provider.",
    )
    base_url: str | None = Field(default=None, description="Override the API base URL (https, or loopback http).")
    requests_per_second: float | None = Field(
        default=None, description="Client-side rate limit in requests/s (0 turns it off; default: the provider's)."
    )
    timeout_s: float = Field(default=30.0, description="Read timeout of one HTTP call, in seconds.")
    retry_budget_s: float = Field(default=90.0, description="Total time spent retrying one call, in seconds.")
    max_attempts: int = Field(default=6, description="Attempts per call, first included.")

    _client: Any = PrivateAttr(default=None)

    # -- to override -----------------------------------------------------------------------------------

    def _make_client(self, base_url: str, policy: HttpPolicy) -> Any:
        raise NotImplementedError

    def _make_provider(self, client: Any) -> EspProvider:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------------

    @property
    def account_name(self) -> str:
        return self.account or self.provider_name

    @property
    def is_sandbox(self) -> bool:
        return bool(self.sandbox_state)

    def target_url(self) -> str:
        if self.sandbox_state:
            if self.base_url:
                raise ConfigurationError(
                    f"{self.provider_name}: give either sandbox_state or base_url, not both",
                    provider=self.provider_name,
                )
            # imported here: production code loads the emulators only when a sandbox is configured
            from espcore.sandbox.embedded import embedded_sandbox_url

            return embedded_sandbox_url(self.provider_name, self.sandbox_state) + self.sandbox_path
        return self.base_url or self.default_base_url

    def describe_target(self, url: str) -> str:
        from urllib.parse import urlsplit

        host = urlsplit(url).hostname or ""
        who = (
            self.provider_name
            if self.account_name == self.provider_name
            else f"{self.account_name} ({self.provider_name})"
        )
        if self.sandbox_state:
            return f"{who}: SANDBOX at {url} (state {self.sandbox_state}) — not the real API"
        if is_loopback_host(host):
            return f"{who}: loopback server at {url} (a sandbox, not the real API)"
        return f"{who}: REAL API at {url}"

    def policy(self) -> HttpPolicy:
        return HttpPolicy(
            read_timeout_s=self.timeout_s,
            retry_budget_s=self.retry_budget_s,
            max_attempts=self.max_attempts,
            requests_per_second=(
                self.requests_per_second if self.requests_per_second is not None else self.default_requests_per_second
            ),
        )

    def _new_client(self) -> Any:
        return self._make_client(self.target_url(), self.policy())

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        url = self.target_url()
        self._client = self._make_client(url, self.policy())
        if context.log is not None:
            context.log.info(self.describe_target(url))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def get_client(self) -> Any:
        """The set-up client, or a fresh one the caller closes (outside a Dagster run)."""
        return self._client or self._new_client()

    def get_provider(self) -> EspProvider:
        """The provider-neutral adapter over the client, speaking for this resource's account."""
        adapter = self._make_provider(self.get_client())
        adapter.account = self.account_name
        return adapter
