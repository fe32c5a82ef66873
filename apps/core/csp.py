"""django-csp's middleware with its policy headers built once, not twice per response.

django-csp 4 rebuilds both headers from settings on every response (a copy and merge of every
directive, through `dataclasses.asdict` and `build_policy`): about a fifth of the CPU of a small JSON
response on this project's machines. A response that no view decorated with its own policy, to a
request whose page asked for no nonce, gets the same two strings every time; those are built once,
with django-csp's own `build_policy`, and again whenever the CSP settings change. Everything else
(per-view `@csp_update`/`@csp_replace`/`@csp`, nonces, DEBUG error pages) goes through django-csp.

A few third-party admin pages run an inline script of their own template, which takes no nonce: on those
pages alone, the policy allows that one script by its SHA-256 (`INLINE_SCRIPTS`), and nothing else inline.

As the chain's response-header middleware it also says `Cache-Control: no-store` on every response whose
view chose no caching of its own: API and FHIR answers carry PHI or a staff user's view of the control
plane, and no browser disk cache, back/forward cache or proxy may keep a copy. Static files, the favicon
and admin's `never_cache` pages keep their own.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http
import re

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.http.request import split_domain_port

# What a view decorator leaves on its response to change the policy for that response alone.
_PER_RESPONSE_POLICY = (
    "_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro",
)  # fmt: skip
_DEBUG_PAGES = (http.HTTPStatus.NOT_FOUND, http.HTTPStatus.INTERNAL_SERVER_ERROR)

# View name -> the id of the one inline <script> its third-party template renders (no nonce in it).
# django-celery-beat's task form: the crontab's help text shows the schedule in words.
_PERIODIC_TASK_SCRIPT = "periodic-task-overrides"
INLINE_SCRIPTS = {
    "admin:django_celery_beat_periodictask_add": _PERIODIC_TASK_SCRIPT,
    "admin:django_celery_beat_periodictask_change": _PERIODIC_TASK_SCRIPT,
}


def inline_script_source(request: HttpRequest, response: HttpResponseBase) -> str | None:
    """The source ('sha256-...') of the inline script this page's template is known to render, or None.
    Two scripts with that id (one of them injected) allow neither."""
    match = getattr(request, "resolver_match", None)
    script_id = INLINE_SCRIPTS.get(match.view_name) if match else None
    if script_id is None or response.streaming or "html" not in response.get("Content-Type", ""):
        return None
    scripts = re.findall(rb'<script id="' + script_id.encode() + rb'">(.*?)</script>', response.content, re.DOTALL)
    if len(scripts) != 1:
        return None
    # A browser hashes the text after its parser turned CR LF and lone CR into LF.
    text = scripts[0].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return "'sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode("ascii") + "'"


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


NO_STORE = "no-store"


class CSPMiddleware(DjangoCSPMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if "Cache-Control" not in response:
            response["Cache-Control"] = NO_STORE
        source = inline_script_source(request, response)
        if source is not None:  # added to the enforced policy's script-src, for this response alone
            update = dict(getattr(response, "_csp_update", None) or {})
            update["script-src"] = [*_sources(update.get("script-src")), source]
            response._csp_update = update
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


def _sources(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


_WEBSOCKET_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def live_feed_origin(request: HttpRequest) -> str:
    """The live feed's WebSocket origin, as the dashboard computes it (frontend/src/lib/config.ts).

    The dashboard page alone may connect there: a site-wide ws: wss: let an injected script on any page send
    what it read to any host. 'self' covers a same-origin socket in CSP 3 only, so it is named here too.
    """
    configured = settings.LIVE_WEBSOCKET_URL
    if configured and not configured.startswith("/"):
        scheme, _, rest = configured.partition("://")
        return f"{_WEBSOCKET_SCHEMES[scheme.lower()]}://{rest.split('/', 1)[0]}"
    scheme = "wss" if request.is_secure() else "ws"
    host = request.get_host()
    if settings.LIVE_PORT and not configured:
        host = f"{split_domain_port(host)[0]}:{settings.LIVE_PORT}"
    return f"{scheme}://{host}"


def allow_live_feed(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Let this response's page connect to the live feed's origin, and nowhere else beyond 'self'."""
    update = dict(getattr(response, "_csp_update", None) or {})
    update["connect-src"] = [*_sources(update.get("connect-src")), live_feed_origin(request)]
    response._csp_update = update
    return response
