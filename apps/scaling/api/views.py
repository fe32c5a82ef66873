"""The dashboard's scaling page (staff with the policy's view permission)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import staff_can_view
from apps.core.api.params import reject_unknown_params
from apps.core.api.schema import error_responses
from apps.scaling import selectors
from apps.scaling.api.schema import ManifestPreviewOutputSerializer, ScalingOverviewOutputSerializer
from apps.scaling.models import ScalingPolicy
from apps.services.selectors import of_visible_services, visible_service_ids

CAN_VIEW = staff_can_view("scaling.view_scalingpolicy")


class ScalingOverviewView(APIView):
    permission_classes = [CAN_VIEW]

    @extend_schema(responses={200: ScalingOverviewOutputSerializer, **error_responses(400, 401, 403)})
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        rows = selectors.scaling_overview(visible_services=visible_service_ids(request.user))
        return Response({"results": rows})


class ManifestPreviewView(APIView):
    permission_classes = [CAN_VIEW]

    @extend_schema(
        responses={
            200: ManifestPreviewOutputSerializer,
            **error_responses(400, 401, 403, 404, e404="No such policy among the services this user sees."),
        }
    )
    def get(self, request: Request, policy_id: int) -> Response:
        reject_unknown_params(request, [])
        policies = of_visible_services(
            ScalingPolicy.objects.select_related("service"), visible_service_ids(request.user)
        )
        policy = get_object_or_404(policies, pk=policy_id)
        return Response(selectors.manifest_preview(policy))
