"""The dashboard's cache page (staff with the policy's view permission)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import staff_can_view
from apps.caching import selectors
from apps.core.api.params import reject_unknown_params


class CacheOverviewView(APIView):
    permission_classes = [staff_can_view("caching.view_cachepolicy")]

    def get(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        return Response({"results": selectors.namespace_overview()})
