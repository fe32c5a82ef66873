from celery import current_app
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest
from django.utils.html import format_html

from apps.accounts.models import scope_permission_codename
from apps.benchmarks import services
from apps.benchmarks.models import MAX_JSON_DEPTH, BenchmarkPlan, BenchmarkRun, Regression
from apps.core.admin_lookups import PlainLookupsAdmin
from apps.core.admin_paginator import EstimatedCountPaginator
from apps.core.broker_errors import broker_failure, send_errors
from apps.services.admin import ServiceVisibilityAdmin


class PlanJSONField(forms.JSONField):
    """Django's JSONField, with JSON nested deeper than Python's stack (a few hundred `[`) a field error:
    the parser's RecursionError was a 500, on the post and again on showing the form with its errors."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError(f"Nested more than {MAX_JSON_DEPTH} levels deep.", code="invalid") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)


@admin.register(BenchmarkPlan)
class BenchmarkPlanAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    list_display = ["name", "service", "kind", "users", "arrival_rate", "duration_seconds", "enabled", "history"]
    search_fields = ["name", "service__name", "service__slug"]
    list_filter = ["kind", "enabled", ("service", admin.RelatedOnlyFieldListFilter)]
    actions = ["run_now", "schedule_nightly"]
    formfield_overrides = {models.JSONField: {"form_class": PlanJSONField}}

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class PlanForm(form):
            def clean_scopes(self):
                """A run's token carries these scopes: a user may give a plan only scopes they hold, or an
                Operator (who reads no patient data) could issue themselves a PHI token through a run."""
                scopes = self.cleaned_data.get("scopes")
                if isinstance(scopes, list):
                    before = self.instance.scopes if self.instance.pk and isinstance(self.instance.scopes, list) else []
                    added = [scope for scope in scopes if isinstance(scope, str) and scope not in before]
                    missing = [s for s in added if not user.has_perm(f"accounts.{scope_permission_codename(s)}")]
                    if missing:
                        raise ValidationError(f"You may give a plan only scopes you hold; not {', '.join(missing)}.")
                return scopes

            def clean_service(self):
                """Moving a plan to another service sends its token, with its scopes, to that service's URL:
                only a user holding those scopes may (an Operator could otherwise move an administrator's
                plan to a service they pointed at a listener of their own)."""
                service = self.cleaned_data.get("service")
                if self.instance.pk and service is not None and service.pk != self.instance.service_id:
                    stored = self.instance.scopes if isinstance(self.instance.scopes, list) else []
                    missing = sorted(
                        s for s in stored
                        if isinstance(s, str) and not user.has_perm(f"accounts.{scope_permission_codename(s)}")
                    )  # fmt: skip
                    if missing:
                        raise ValidationError(
                            f"Its runs' token carries scopes you do not hold ({', '.join(missing)}): only a user "
                            "holding them may move the plan to another service."
                        )
                return service

        return PlanForm

    @admin.display(description="History")
    def history(self, plan: BenchmarkPlan) -> str:
        return format_html('<a href="/benchmarks/plans/{}/report/">report</a>', plan.pk)

    @admin.action(description="Run now on the benchmark workers", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[BenchmarkPlan]) -> None:
        for plan in queryset:
            try:
                run = services.benchmark_run_create(plan=plan, requested_by=request.user.get_username())
            except ValidationError as invalid:
                self.message_user(request, f"{plan}: fix the plan first: {'; '.join(invalid.messages)}", messages.ERROR)
                continue
            except services.RunInProgress as busy:
                self.message_user(request, f"{plan}: not started, {busy}.", messages.WARNING)
                continue
            try:
                services.benchmark_run_dispatch(run)
            except send_errors(current_app) as exc:
                services.benchmark_run_cancel(run=run)
                self.message_user(request, f"{plan}: nothing was sent, {broker_failure(exc)}.", messages.ERROR)
            else:
                self.message_user(request, f"{plan}: run #{run.pk} sent.", messages.SUCCESS)

    @admin.action(description="Schedule nightly (03:00 on the hospital's clock, TIME_ZONE)", permissions=["change"])
    def schedule_nightly(self, request: HttpRequest, queryset: QuerySet[BenchmarkPlan]) -> None:
        outcome = services.nightly_benchmarks_ensure(plans=queryset)
        for label, names, level in (
            ("Scheduled nightly", outcome.created, messages.SUCCESS),
            ("Already scheduled", outcome.existing, messages.INFO),
            ("Renamed after its plan", outcome.renamed, messages.SUCCESS),
            ("Removed a second schedule of the same plan", outcome.duplicates_removed, messages.SUCCESS),
        ):
            if names:
                self.message_user(request, f"{label} (Periodic tasks): {', '.join(names)}.", level)
        if outcome.disabled_plans:
            self.message_user(request, f"Not scheduled, the plan is disabled: {', '.join(outcome.disabled_plans)}.",
                              messages.WARNING)  # fmt: skip


HEAVY_FIELDS = ["report_html", "histogram", "timeline"]  # shown in the report, not the form


@admin.register(BenchmarkRun)
class BenchmarkRunAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    service_field = "plan__service"
    list_display = ["id", "plan", "status", "passed", "progress", "started_at", "finished_at", "report"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_filter = ["status", "passed", ("plan", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["plan__name", "plan__service__name", "plan__service__slug", "requested_by"]
    actions = ["cancel"]
    exclude = HEAVY_FIELDS
    readonly_fields = [*(f.name for f in BenchmarkRun._meta.fields if f.name not in HEAVY_FIELDS), "report"]

    def has_add_permission(self, request) -> bool:
        return False

    def get_queryset(self, request: HttpRequest):
        """The list reads no run's report or samples (a page of 100 runs read megabytes it never shows)."""
        runs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name and match.url_name.endswith("_changelist"):
            from apps.benchmarks.selectors import RUN_DETAIL_FIELDS

            runs = runs.defer(*RUN_DETAIL_FIELDS, "summary", "error")
        return runs

    @admin.display(description="Report")
    def report(self, run: BenchmarkRun) -> str:
        return format_html('<a href="/benchmarks/runs/{}/report/">open</a>', run.pk) if run.is_finished else "-"

    @admin.action(description="Cancel", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[BenchmarkRun]) -> None:
        finished = [run for run in queryset if run.is_finished]
        if finished:  # nothing to stop: said, rather than "cancellation requested" for a run long over
            names = ", ".join(f"#{r.pk} ({r.status})" for r in finished)
            self.message_user(request, f"Already finished, left as they were: {names}.", messages.INFO)
        for run in queryset:
            if run.is_finished:
                continue
            run = services.benchmark_run_cancel(run=run)
            if run.status == BenchmarkRun.Status.CANCELLED:
                self.message_user(request, f"Run #{run.pk} cancelled before it started.", messages.SUCCESS)
            else:
                self.message_user(request, f"Run #{run.pk}: cancellation requested; its load stops within a second.",
                                  messages.SUCCESS)  # fmt: skip


@admin.register(Regression)
class RegressionAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    service_field = "plan__service"
    list_display = ["plan", "run", "metric", "change_pct", "p_value", "change_point", "detected_at", "acknowledged_at"]
    list_select_related = ["plan", "run__plan"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_filter = [("plan", admin.RelatedOnlyFieldListFilter), "change_point"]
    search_fields = ["plan__name", "plan__service__name", "plan__service__slug", "metric"]
    readonly_fields = [f.name for f in Regression._meta.fields]
    actions = ["acknowledge"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Acknowledge", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Regression]) -> None:
        regressions = list(queryset)
        # Counted by what this call acknowledged: another admin's acknowledgement made meanwhile is theirs.
        done = sum(services.regression_acknowledge(regression=r, user=request.user) for r in regressions)
        already = len(regressions) - done
        if done:
            self.message_user(request, f"Acknowledged {done} regression(s).", messages.SUCCESS)
        if already:
            self.message_user(request, f"{already} were already acknowledged; left as they were.", messages.INFO)
