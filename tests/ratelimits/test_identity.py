"""Whose quota a request spends: anonymous callers (a view open to them that names a scope) each their own,
by the peer's address, never one shared bucket nor a header the caller writes."""

from __future__ import annotations

import pytest
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db


class OpenView(APIView):
    """No such view ships today (every limited view wants a token); the identity must hold when one does."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "audit_logs"

    def get(self, request):
        return Response({"ok": True})


def _get(ip: str, **headers) -> int:
    return OpenView.as_view()(APIRequestFactory().get("/open/", REMOTE_ADDR=ip, **headers)).status_code


def test_anonymous_callers_each_spend_their_own_quota_by_address():
    RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=1)
    assert _get("10.0.0.1") == 200
    assert _get("10.0.0.2") == 200  # another caller: not refused for the first one's request
    assert _get("10.0.0.1") == 429
    assert _get("10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9") == 429  # a header it writes is no new quota


def test_an_ipv6_caller_spends_one_quota_for_its_whole_slash_64():
    """One IPv6 host is given a /64 (2^64 addresses) and picks any of them: keyed by address, each request could
    come from a fresh one and a fresh quota. The /64 is the caller; IPv4 inside IPv6 is its IPv4 address."""
    RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=1)
    assert _get("2001:db8:1:2::1") == 200
    assert _get("2001:db8:1:2:ffff::9") == 429
    assert _get("2001:db8:1:3::1") == 200  # another /64, another caller
    assert _get("192.0.2.7") == 200
    assert _get("::ffff:192.0.2.7") == 429
