"""Where landed Parquet goes."""

import dagster as dg
from pydantic import Field


class LakeResource(dg.ConfigurableResource):
    """Root of the Hive-partitioned Parquet lake: a local folder, or an object store through ``pyarrow.fs``."""

    root: str = Field(
        default="data/lake",
        description="Local folder, or an object-store URI such as s3://bucket/prefix?region=eu-central-1 "
        "(credentials from the environment, never in the URI).",
    )
