"""The dashboard's benchmark pages (staff with the run's view permission)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import staff_can_view
from apps.benchmarks import selectors
from apps.benchmarks.api.schema import BenchmarkRunDetailOutputSerializer, BenchmarkRunListOutputSerializer
from apps.core.api.params import reject_unknown_params, validated_query
from apps.core.api.schema import error_responses
from apps.services.selectors import visible_service_ids

CAN_VIEW = staff_can_view("benchmarks.view_benchmarkrun")


class RunListInputSerializer(serializers.Serializer):
    plan = serializers.IntegerField(min_value=1, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)


class BenchmarkRunListView(APIView):
    permission_classes = [CAN_VIEW]

    @extend_schema(
        operation_id="benchmarks_runs_list",
        parameters=[RunListInputSerializer],
        responses={200: BenchmarkRunListOutputSerializer, **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, RunListInputSerializer)
        runs = selectors.benchmark_runs(
            plan_id=query.get("plan"), limit=query["limit"], visible_services=visible_service_ids(request.user)
        )
        return Response({"results": runs})


class BenchmarkRunDetailView(APIView):
    permission_classes = [CAN_VIEW]

    @extend_schema(
        operation_id="benchmarks_runs_retrieve",
        responses={
            200: BenchmarkRunDetailOutputSerializer,
            **error_responses(400, 401, 403, 404, e404="No such run among the services this user sees."),
        },
    )
    def get(self, request: Request, run_id: int) -> Response:
        reject_unknown_params(request, [])
        detail = selectors.benchmark_run_detail(run_id, visible_services=visible_service_ids(request.user))
        if detail is None:
            raise NotFound("No such benchmark run.")
        return Response(detail)
