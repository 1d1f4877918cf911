"""Where landed Parquet goes."""

import dagster as dg
from pydantic import Field


class LakeResource(dg.ConfigurableResource):
    """Root folder of the Hive-partitioned Parquet lake."""

    root: str = Field(default="data/lake", description="Local folder of the Parquet lake.")
