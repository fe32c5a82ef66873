"""The OpenAPI schema generator: the anonymous document is built once per process.

Building it walks every view and serializer: about 0.75 s of CPU per request, and /api/schema/ answers
anyone, so a handful of anonymous callers could keep a process busy (a cheap DoS). The document is public
(SERVE_PUBLIC), the same for every anonymous caller of a version and language, and changes only with the
code or the settings: it is kept per (URLconf, version, language, public) until a setting that shapes it
changes. Signed-in callers, and `manage.py spectacular` (no request), still get a fresh build.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import translation
from drf_spectacular.generators import SchemaGenerator

_built: dict[tuple, dict[str, Any]] = {}
_building = threading.Lock()  # concurrent first callers wait for one build rather than each make one

_SHAPING_SETTINGS = ("SPECTACULAR_SETTINGS", "ROOT_URLCONF", "REST_FRAMEWORK", "USE_I18N", "INSTALLED_APPS")


class CachedSchemaGenerator(SchemaGenerator):
    """drf-spectacular's generator, keeping the anonymous document (see the module's docstring)."""

    def get_schema(self, request=None, public: bool = False) -> dict[str, Any]:
        user = getattr(request, "user", None)
        if request is None or (user is not None and user.is_authenticated):
            return super().get_schema(request=request, public=public)
        key = (
            settings.ROOT_URLCONF,
            self.urlconf if isinstance(self.urlconf, str | None) else id(self.urlconf),
            self.api_version or getattr(request, "version", None),
            translation.get_language(),
            public,
        )
        schema = _built.get(key)
        if schema is None:
            with _building:
                schema = _built.get(key)
                if schema is None:
                    schema = _built[key] = super().get_schema(request=request, public=public)
        return schema


def forget_built_schemas() -> None:
    with _building:
        _built.clear()


@receiver(setting_changed)
def _forget_on_setting_change(*, setting: str, **kwargs) -> None:
    if setting in _SHAPING_SETTINGS:
        forget_built_schemas()
