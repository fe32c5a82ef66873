from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from apps.optimizer.models import OptimizationRun


@staff_member_required
def run_report(request: HttpRequest, run_id: int) -> HttpResponse:
    """The stored, self-contained HTML report of one optimization run."""
    run = get_object_or_404(OptimizationRun, pk=run_id)
    return HttpResponse(run.report_html)
