"""The dashboard's scaling page (staff with the policy's view permission)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import staff_can_view
from apps.core.api.params import reject_unknown_params
from apps.scaling import selectors
from apps.scaling.models import ScalingPolicy

CAN_VIEW = staff_can_view("scaling.view_scalingpolicy")


class ScalingOverviewView(APIView):
    permission_classes = [CAN_VIEW]

    def get(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        return Response({"results": selectors.scaling_overview()})


class ManifestPreviewView(APIView):
    permission_classes = [CAN_VIEW]

    def get(self, request: Request, policy_id: int) -> Response:
        reject_unknown_params(request, [])
        policy = get_object_or_404(ScalingPolicy.objects.select_related("service"), pk=policy_id)
        return Response(selectors.manifest_preview(policy))
