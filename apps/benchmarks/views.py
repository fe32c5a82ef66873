from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.report import render_plan_report
from apps.core.views import stored_report


@staff_member_required
@permission_required("benchmarks.view_benchmarkrun", raise_exception=True)
def run_report(request: HttpRequest, run_id: int) -> HttpResponse:
    return stored_report(get_object_or_404(BenchmarkRun, pk=run_id))


@staff_member_required
@permission_required("benchmarks.view_benchmarkplan", raise_exception=True)
def plan_report(request: HttpRequest, plan_id: int) -> HttpResponse:
    return HttpResponse(render_plan_report(get_object_or_404(BenchmarkPlan, pk=plan_id)))
