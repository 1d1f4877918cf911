"""This repository's own assets: the demo warehouse (:mod:`assets.warehouse`). The reusable asset factories
(syncs, launches, landing, checks) are in :mod:`esp_warehouse.assets`."""
