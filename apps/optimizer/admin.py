from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apps.core.admin_lookups import PlainLookupsAdmin
from apps.core.admin_paginator import EstimatedCountPaginator
from apps.optimizer import selectors, services
from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation
from apps.services.admin import ServiceVisibilityAdmin
from apps.services.selectors import sees_all_traffic


class EveryServiceRunAdmin(ServiceVisibilityAdmin):
    """A run of no service covers every service: its verdicts, steps and recommendations name each of them
    (p95s, forecasts, replica plans), so it is only for who sees every service."""

    def unassigned_visible_to(self, visible_services: frozenset[int] | None) -> bool:
        return sees_all_traffic(visible_services)


class StepInline(admin.TabularInline):
    model = OptimizationStep
    extra = 0
    max_num = 0
    can_delete = False
    fields = readonly_fields = ["name", "status", "attempts", "progress", "progress_message", "error", "started_at",
                                "finished_at"]  # fmt: skip


class RecommendationInline(admin.TabularInline):
    model = Recommendation
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    fields = readonly_fields = ["step", "title", "status", "decided_by", "decided_at"]


@admin.register(OptimizationRun)
class OptimizationRunAdmin(PlainLookupsAdmin, EveryServiceRunAdmin):
    show_full_result_count = False  # a filtered list counts its own rows only, not the whole history again
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_display = ["id", "target", "status", "targets_met", "apply", "requested_by", "started_at", "finished_at",
                    "report_link"]  # fmt: skip
    list_filter = ["target", "status", "targets_met", "apply"]
    search_fields = ["subject", "requested_by", "service__name", "service__slug"]
    readonly_fields = ["target", "status", "targets_met", "apply", "service", "response_time_ms",
                       "cache_hit_rate", "requested_by", "inline", "started_at", "finished_at", "verdicts", "error",
                       "report_link"]  # fmt: skip
    exclude = ["report_html"]
    inlines = [StepInline, RecommendationInline]
    actions = ["cancel_selected"]

    @admin.action(description="Cancel the selected runs", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[OptimizationRun]) -> None:
        for run in queryset:
            if services.optimization_run_cancel(run=run, by=request.user.get_username()):
                self.message_user(request, f"Cancelled run #{run.pk}.", messages.SUCCESS)
            else:
                self.message_user(request, f"Run #{run.pk} had already finished.", messages.WARNING)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OptimizationRun]:
        # The stored report (hundreds of KB with its charts) is served by its own view, never shown here.
        return super().get_queryset(request).defer("report_html")

    def has_add_permission(self, request) -> bool:
        return False  # runs are started with `manage.py optimize` or by a schedule (Periodic tasks)

    @admin.display(description="Report")
    def report_link(self, run: OptimizationRun) -> str:
        return format_html('<a href="/optimizer/runs/{}/report/">open</a>', run.pk)


@admin.register(Recommendation)
class RecommendationAdmin(PlainLookupsAdmin, EveryServiceRunAdmin):
    service_field = "run__service"
    list_display = ["title", "step", "status", "apply_progress", "actionable", "run", "decided_by", "decided_via",
                    "decided_at"]  # fmt: skip
    list_select_related = ["run", "decided_by"]  # one query for the page, not one per decided recommendation
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_filter = ["status", "step", "kind", "actionable"]
    search_fields = ["title", "subject"]
    readonly_fields = ["run", "step", "kind", "subject", "title", "reason", "change", "evidence", "actionable",
                       "status", "apply_progress", "decided_by", "decided_via", "decided_at", "outcome",
                       "created_at"]  # fmt: skip
    actions = ["apply_selected", "dismiss_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Recommendation]:
        return super().get_queryset(request).defer("run__report_html")  # select_related would load each report

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the record of who decided what stays

    @admin.display(description="Progress")
    def apply_progress(self, recommendation: Recommendation) -> str:
        return selectors.recommendation_progress(recommendation)

    @admin.action(description="Apply the selected recommendations", permissions=["change"])
    def apply_selected(self, request: HttpRequest, queryset: QuerySet[Recommendation]) -> None:
        # Sent to a worker: an index build takes minutes, and in the request a gunicorn timeout killed it half-way.
        for recommendation in queryset:
            try:
                queued = services.recommendation_apply_enqueue(recommendation=recommendation, user=request.user,
                                                               via="admin")  # fmt: skip
            except (ValueError, services.DispatchFailed) as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            self.message_user(request, f"Queued: {queued.title}; a worker applies it, its progress shows here.",
                              messages.SUCCESS)  # fmt: skip

    @admin.action(description="Dismiss the selected recommendations", permissions=["change"])
    def dismiss_selected(self, request: HttpRequest, queryset: QuerySet[Recommendation]) -> None:
        for recommendation in queryset:
            try:
                services.recommendation_dismiss(recommendation=recommendation, user=request.user, via="admin")
            except ValueError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"Dismissed: {recommendation.title}", messages.SUCCESS)
