"""The dashboard's metrics API (staff): time series, SLO status, alerts."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import staff_can_view
from apps.core.api.params import reject_unknown_params, validated_query
from apps.core.api.schema import error_responses
from apps.metrics import selectors
from apps.metrics.api.schema import AlertListOutputSerializer, SeriesOutputSerializer, SloListOutputSerializer
from apps.metrics.api.serializers import AlertListInputSerializer, SeriesInputSerializer
from apps.services.models import Service
from apps.services.selectors import sees_every_service, services_visible_to, visible_service_ids


def series_routes(user, service: Service | None) -> list[str] | None:
    """One service's routes; without one, every route for those who see every service, else the routes of
    the services this user sees (a total must not carry hidden services' traffic)."""
    if service is not None:
        return [service.route_prefix]
    if sees_every_service(user):
        return None
    return list(services_visible_to(user).values_list("route_prefix", flat=True))


class SeriesView(APIView):
    permission_classes = [staff_can_view("metrics.view_metricpoint")]

    @extend_schema(
        parameters=[SeriesInputSerializer],
        responses={
            200: SeriesOutputSerializer,
            **error_responses(
                400, 401, 403, e400="Invalid input: also a service this user does not see, or over 1,440 points."
            ),
        },
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, SeriesInputSerializer, context={"user": request.user})
        points = selectors.time_series(
            metric=query["metric"],
            since=query["start"],
            until=query["end"],
            step_seconds=query["step"],
            route_prefixes=series_routes(request.user, query.get("service")),
            namespace=query["namespace"],
            visible_services=visible_service_ids(request.user),
        )
        return Response(
            {
                "metric": query["metric"],
                "service": query["service"].slug if query.get("service") else None,
                "step": query["step"],
                "points": [[at.isoformat(), value] for at, value in points],
            }
        )


class SloView(APIView):
    permission_classes = [staff_can_view("services.view_service")]

    @extend_schema(responses={200: SloListOutputSerializer, **error_responses(400, 401, 403)})
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        services = services_visible_to(request.user).filter(is_active=True).exclude(route_prefix="")
        return Response({"results": [selectors.slo_status(service) for service in services]})


class AlertListView(APIView):
    permission_classes = [staff_can_view("metrics.view_alert")]

    @extend_schema(
        parameters=[AlertListInputSerializer],
        responses={200: AlertListOutputSerializer, **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, AlertListInputSerializer)
        return Response({"results": selectors.alert_list(
            state=query.get("state"), limit=query["limit"], visible_services=visible_service_ids(request.user)
        )})  # fmt: skip
