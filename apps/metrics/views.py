"""/metrics for Prometheus: a bearer token (METRICS_TOKEN) or an allowed client address."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from apps.metrics.prometheus import exposition


def _allowed(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    if settings.METRICS_TOKEN and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").encode(), settings.METRICS_TOKEN.encode())
    return request.META.get("REMOTE_ADDR", "") in settings.METRICS_ALLOWED_IPS


def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return JsonResponse({"detail": "Not allowed to read metrics.", "code": "forbidden"}, status=403)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
