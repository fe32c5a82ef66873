from django.contrib import admin
from django.utils.html import format_html

from apps.optimizer.models import OptimizationRun


@admin.register(OptimizationRun)
class OptimizationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "target", "status", "apply", "started_at", "finished_at", "report_link"]
    list_filter = ["target", "status", "apply"]
    readonly_fields = ["target", "status", "apply", "started_at", "finished_at", "findings", "recommendations",
                       "applied", "error", "report_link"]  # fmt: skip
    exclude = ["report_html"]

    def has_add_permission(self, request) -> bool:
        return False  # runs are started with `manage.py optimize` (or by a schedule), not typed in

    @admin.display(description="Report")
    def report_link(self, run: OptimizationRun) -> str:
        return format_html('<a href="/optimizer/runs/{}/report/">open</a>', run.pk)
