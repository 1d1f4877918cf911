"""This repository's resources: the demo's (:mod:`resources.demo`). The reusable resources, one per provider
plus the warehouse and the lake, are in :mod:`esp_warehouse.resources`."""
