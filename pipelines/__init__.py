"""This repository's code location (:mod:`pipelines.definitions`, from the ``pipelines/defs/`` folder) and demo
(:mod:`pipelines.demo`), built on the ``esp_warehouse`` library; not part of the installed package."""

from pathlib import Path

#: this repository's declarations folder: ``syncs.yaml`` and the campaign templates
PIPELINES_DIR = Path(__file__).resolve().parent
#: the project root (``pyproject.toml``, ``workspace.yaml``)
PROJECT_ROOT = PIPELINES_DIR.parent
#: the declarations this repository's code location reads unless ``ESP_DECLARATIONS`` names another file
DEFAULT_DECLARATIONS = PIPELINES_DIR / "syncs.yaml"
