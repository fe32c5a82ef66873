"""The dashboard's scaling page (staff with the policy's view permission)."""

from __future__ import annotations

from django.db.models import Exists, OuterRef
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


def _with_emergency_sources(rows: list[dict]) -> list[dict]:
    """Why each policy is in emergency mode: set by hand (`emergency_manual`) and/or its alert rule firing.
    Read-only here: emergency mode is set through the admin (`emergency_mode_set`), never by this API.
    One query for every row; belongs in `selectors.scaling_overview`, which this API does not own."""
    from apps.metrics.models import Alert

    firing = Alert.objects.filter(rule=OuterRef("emergency_alert_rule"), state=Alert.State.FIRING)
    sources = {
        source["pk"]: source
        for source in ScalingPolicy.objects.filter(pk__in=[row["id"] for row in rows])
        .annotate(rule_firing=Exists(firing))
        .values("pk", "emergency_manual", "emergency_alert_rule_id", "emergency_alert_rule__name",
                "emergency_alert_rule__enabled", "rule_firing")
    }  # fmt: skip
    for row in rows:
        source = sources.get(row["id"], {})
        row["emergency_manual"] = bool(source.get("emergency_manual"))
        rule_id = source.get("emergency_alert_rule_id")
        row["emergency_alert_rule"] = (
            None
            if rule_id is None
            else {
                "id": rule_id,
                "name": source["emergency_alert_rule__name"],
                "enabled": source["emergency_alert_rule__enabled"],
                # A disabled rule's leftover alert holds nothing (services._alert_firing).
                "firing": source["emergency_alert_rule__enabled"] and source["rule_firing"],
            }
        )
    return rows


class ScalingOverviewView(APIView):
    permission_classes = [CAN_VIEW]

    @extend_schema(responses={200: ScalingOverviewOutputSerializer, **error_responses(400, 401, 403)})
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        rows = selectors.scaling_overview(visible_services=visible_service_ids(request.user))
        return Response({"results": _with_emergency_sources(rows)})


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
