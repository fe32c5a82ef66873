"""The dashboard's rate-limit page (staff with the policy's view permission)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import staff_can_view
from apps.core.api.params import reject_unknown_params
from apps.core.api.schema import error_responses
from apps.ratelimits import selectors
from apps.ratelimits.api.schema import RateLimitOverviewOutputSerializer


class RateLimitOverviewView(APIView):
    permission_classes = [staff_can_view("ratelimits.view_ratelimitpolicy")]

    @extend_schema(responses={200: RateLimitOverviewOutputSerializer, **error_responses(400, 401, 403)})
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        return Response({"results": selectors.policy_overview(user=request.user)})
