"""django-csp's middleware with its policy headers built once, not twice per response.

django-csp 4 rebuilds both headers from settings on every response (a copy and merge of every
directive, through `dataclasses.asdict` and `build_policy`): about a fifth of the CPU of a small JSON
response on this project's machines. A response that no view decorated with its own policy, to a
request whose page asked for no nonce, gets the same two strings every time; those are built once,
with django-csp's own `build_policy`, and again whenever the CSP settings change. Everything else
(per-view `@csp_update`/`@csp_replace`/`@csp`, nonces, DEBUG error pages) goes through django-csp.
"""

from __future__ import annotations

import functools
import http

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

# What a view decorator leaves on its response to change the policy for that response alone.
_PER_RESPONSE_POLICY = (
    "_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro",
)  # fmt: skip
_DEBUG_PAGES = (http.HTTPStatus.NOT_FOUND, http.HTTPStatus.INTERNAL_SERVER_ERROR)


@functools.cache
def default_headers() -> tuple[tuple[str, str, tuple[str, ...], str], ...]:
    """(header, value, excluded path prefixes, exemption attribute) for each policy that is configured."""
    headers = []
    for header, setting, report_only, exempt in (
        (HEADER, "CONTENT_SECURITY_POLICY", False, "_csp_exempt"),
        (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", True, "_csp_exempt_ro"),
    ):
        value = build_policy(report_only=report_only)
        if value:
            prefixes = tuple((getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ())
            headers.append((header, value, prefixes, exempt))
    return tuple(headers)


@receiver(setting_changed)
def _forget_default_headers(*, setting: str, **kwargs) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        default_headers.cache_clear()


class CSPMiddleware(DjangoCSPMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if (
            getattr(request, "_csp_nonce", None) is not None
            or any(hasattr(response, name) for name in _PER_RESPONSE_POLICY)
            or (settings.DEBUG and response.status_code in _DEBUG_PAGES)
        ):
            return super().process_response(request, response)
        for header, value, excluded_prefixes, exempt in default_headers():
            if (
                header not in response
                and getattr(response, exempt, False) is False
                and not request.path_info.startswith(excluded_prefixes)
            ):
                response[header] = value
        # As django-csp does: a nonce asked for after the header is written would not be in it.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
