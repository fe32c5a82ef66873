"""The dashboard's rate-limit page (staff with the policy's view permission)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import staff_can_view
from apps.core.api.params import reject_unknown_params
from apps.ratelimits import selectors


class RateLimitOverviewView(APIView):
    permission_classes = [staff_can_view("ratelimits.view_ratelimitpolicy")]

    def get(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        return Response({"results": selectors.policy_overview()})
