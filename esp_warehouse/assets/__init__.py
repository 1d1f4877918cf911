"""Asset factories per family: subscriber syncs, campaign launches, landing, and their checks."""
