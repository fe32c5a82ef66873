"""Django set up for code that imports the product from a plain script (the brief's import paths)."""

from __future__ import annotations

import os


def ensure_django() -> None:
    """Set Django up with the product's settings unless the caller already has."""
    import django
    from django.apps import apps

    if not apps.ready:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
        django.setup()
