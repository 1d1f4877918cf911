"""Resources for the definitions: the real API when credentials are in the environment, else the sandboxes.

Real credentials switch a provider to its real API (secrets via ``dg.EnvVar``, resolved at run start). With no
credentials, the provider runs on its embedded loopback sandbox with the sandbox's demo account, and every
run log says so. A half-configured provider (one variable of two) is an error, never a silent fallback.
"""

import os
from pathlib import Path

import dagster as dg

from espcore.sandbox.litestartup import DEMO_API_KEY as LITESTARTUP_DEMO_KEY
from espcore.sandbox.pakat import DEMO_API_KEY as PAKAT_DEMO_KEY
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from resources.lake import LakeResource
from resources.litestartup import LiteStartupResource
from resources.pakat import PakatResource
from resources.sendpulse import SendPulseResource
from resources.warehouse import WarehouseResource

DATA_DIR = Path(os.environ.get("ESP_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))


class MissingCredentialsError(RuntimeError):
    pass


def _real(provider: str, names: list[str]) -> bool:
    present = [n for n in names if os.environ.get(n)]
    if present and len(present) != len(names):
        missing = sorted(set(names) - set(present))
        raise MissingCredentialsError(f"{provider}: {', '.join(present)} set but {', '.join(missing)} missing")
    return bool(present)


def sendpulse_resource() -> SendPulseResource:
    if _real("sendpulse", ["SENDPULSE_CLIENT_ID", "SENDPULSE_CLIENT_SECRET"]):
        return SendPulseResource(
            client_id=dg.EnvVar("SENDPULSE_CLIENT_ID"), client_secret=dg.EnvVar("SENDPULSE_CLIENT_SECRET")
        )
    return SendPulseResource(
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        sandbox_state=str(DATA_DIR / "sandbox" / "sendpulse.json"),
    )


def pakat_resource() -> PakatResource:
    if _real("pakat", ["PAKAT_API_KEY"]):
        return PakatResource(api_key=dg.EnvVar("PAKAT_API_KEY"))
    return PakatResource(api_key=PAKAT_DEMO_KEY, sandbox_state=str(DATA_DIR / "sandbox" / "pakat.json"))


def litestartup_resource() -> LiteStartupResource:
    if _real("litestartup", ["LITESTARTUP_API_KEY"]):
        return LiteStartupResource(api_key=dg.EnvVar("LITESTARTUP_API_KEY"))
    return LiteStartupResource(
        api_key=LITESTARTUP_DEMO_KEY, sandbox_state=str(DATA_DIR / "sandbox" / "litestartup.json")
    )


def warehouse_resource() -> WarehouseResource:
    """``ESP_WAREHOUSE_URL`` (e.g. ``postgresql://user:password@host/db``, resolved at run start and never shown)
    selects the warehouse; without it, the DuckDB file in the data directory. That file also holds the
    ``lake_*`` views when the warehouse is PostgreSQL (which cannot read Parquet)."""
    duckdb_path = str(DATA_DIR / "warehouse.duckdb")
    if os.environ.get("ESP_WAREHOUSE_URL"):
        return WarehouseResource(url=dg.EnvVar("ESP_WAREHOUSE_URL"), duckdb_path=duckdb_path)
    return WarehouseResource(duckdb_path=duckdb_path)


def build_resources() -> dict[str, object]:
    return {
        "sendpulse": sendpulse_resource(),
        "pakat": pakat_resource(),
        "litestartup": litestartup_resource(),
        "warehouse": warehouse_resource(),
        # ESP_LAKE_ROOT: another folder, or an object store (s3://bucket/prefix?region=…; credentials from the
        # environment, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
        "lake": LakeResource(root=os.environ.get("ESP_LAKE_ROOT") or str(DATA_DIR / "lake")),
    }
