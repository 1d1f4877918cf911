"""One Dagster ``ConfigurableResource`` per provider, plus the warehouse and the lake."""
