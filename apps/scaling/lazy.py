"""A module imported on first use: kubernetes' client takes ~0.8 s to import, and the modules that build and
apply manifests load with the admin, the URLconf and the Celery tasks, i.e. in every process."""

from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands for the module `name`, importing it when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attribute: str):
        return getattr(self._module(), attribute)
