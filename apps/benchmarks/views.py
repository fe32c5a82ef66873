from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.report import render_plan_report
from apps.core.views import stored_report
from apps.services.selectors import of_visible_services, visible_service_ids


@staff_member_required
@permission_required("benchmarks.view_benchmarkrun", raise_exception=True)
def run_report(request: HttpRequest, run_id: int) -> HttpResponse:
    runs = of_visible_services(BenchmarkRun.objects.all(), visible_service_ids(request.user), "plan__service")
    return stored_report(get_object_or_404(runs, pk=run_id))


@staff_member_required
@permission_required("benchmarks.view_benchmarkplan", raise_exception=True)
def plan_report(request: HttpRequest, plan_id: int) -> HttpResponse:
    plans = of_visible_services(BenchmarkPlan.objects.all(), visible_service_ids(request.user))
    return HttpResponse(render_plan_report(get_object_or_404(plans, pk=plan_id)))
