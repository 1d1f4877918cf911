"""Campaign launches: idempotent (one ``campaign_key`` → at most one provider campaign), guarded, observable.

No Dagster here: ``esp_warehouse/assets/campaigns.py`` is the thin layer on top. Contract:
``docs/sync-semantics.md`` §8.
"""
