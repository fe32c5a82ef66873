from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from apps.core.views import stored_report
from apps.optimizer.models import OptimizationRun
from apps.optimizer.selectors import control_plane_overview
from apps.optimizer.services import report_html_live
from apps.services.selectors import of_visible_services, sees_all_traffic, visible_service_ids


@staff_member_required
@permission_required("optimizer.view_optimizationrun", raise_exception=True)
def run_report(request: HttpRequest, run_id: int) -> HttpResponse:
    """The stored, self-contained HTML report of one optimization run. A run of no service reports on every
    service (their p95 verdicts, forecasts and replica plans): only for who sees every service."""
    visible = visible_service_ids(request.user)
    runs = of_visible_services(OptimizationRun.objects.all(), visible, unassigned=sees_all_traffic(visible))
    run = get_object_or_404(runs.select_related("service"), pk=run_id)
    if not run.report_html:
        return stored_report(run)  # the 404 that says why
    return HttpResponse(report_html_live(run))


def overview(request: HttpRequest) -> TemplateResponse:
    """The control plane at a glance, inside admin (wrapped by admin_view in urls)."""
    context = {
        **admin.site.each_context(request),
        "title": "Control plane overview",
        **control_plane_overview(request.user),
    }
    return TemplateResponse(request, "admin/control_plane_overview.html", context)
