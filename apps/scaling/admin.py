from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin_lookups import PlainLookupsAdmin
from apps.core.admin_paginator import EstimatedCountPaginator
from apps.core.broker_errors import broker_failure, send_errors
from apps.metrics.admin import alert_rules_visible_to
from apps.scaling import charts, manifests, services
from apps.scaling.models import ScalingPolicy, ScalingRecommendation, WorkloadForecast
from apps.services.admin import ServiceVisibilityAdmin


@admin.register(ScalingPolicy)
class ScalingPolicyAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    list_display = [
        "service",
        "enabled",
        "min_replicas",
        "max_replicas",
        "target_cpu_pct",
        "target_memory_pct",
        "vpa_mode",
        "keda_enabled",
        "predictive",
        "emergency_mode",
        "history_source",
        "apply_state",
    ]
    list_filter = ["enabled", "apply_state", "emergency_mode", "keda_enabled"]
    search_fields = ["service__name", "service__slug"]
    actions = ["apply_now", "emergency_on", "emergency_off"]
    readonly_fields = [
        "emergency_mode",
        "apply_state",
        "apply_attempts",
        "apply_error",
        "desired_hash",
        "applied_hash",
        "state_changed_at",
        "latest_plan",
        "forecast_skipped",
        "manifest_preview",
    ]
    fieldsets = [
        (None, {"fields": ["service", "enabled", "namespace", "image", "container_port"]}),
        ("Resources", {"fields": ["cpu_request", "cpu_limit", "memory_request", "memory_limit"]}),
        (
            "Horizontal scaling",
            {
                "fields": [
                    "min_replicas",
                    "max_replicas",
                    "max_replicas_ceiling",
                    "target_cpu_pct",
                    "target_memory_pct",
                    "target_rps_per_pod",
                    "keda_enabled",
                    "pdb_max_unavailable",
                ]
            },
        ),
        (
            "Behavior",
            {
                "fields": [
                    "scale_up_percent",
                    "scale_up_period_seconds",
                    "scale_up_stabilization_seconds",
                    "scale_down_percent",
                    "scale_down_period_seconds",
                    "scale_down_stabilization_seconds",
                ]
            },
        ),
        ("Vertical scaling", {"fields": ["vpa_mode"]}),
        (
            "Prediction",
            {
                "fields": [
                    "predictive",
                    "history_source",
                    "prometheus_selector",
                    "replica_capacity_rps",
                    "stress_test_replicas",
                    "target_utilization",
                    "lead_minutes",
                    "latest_plan",
                    "forecast_skipped",
                ]
            },
        ),
        (
            "Emergency",
            {
                "fields": [
                    "emergency_manual",
                    "emergency_until",
                    "emergency_alert_rule",
                    "emergency_mode",
                    "emergency_min_replicas",
                ]
            },
        ),
        (
            "On the cluster",
            {
                "fields": [
                    "apply_state",
                    "apply_attempts",
                    "apply_error",
                    "desired_hash",
                    "applied_hash",
                    "state_changed_at",
                ]
            },
        ),
        ("Manifests", {"fields": ["manifest_preview"]}),
    ]

    @staticmethod
    def _rule_hidden_from(request: HttpRequest, policy: ScalingPolicy | None) -> bool:
        """Whether the policy follows an alert rule this user may not see (another service's, hidden from them)."""
        rule_id = policy.emergency_alert_rule_id if policy is not None else None
        return rule_id is not None and not alert_rules_visible_to(request.user).filter(pk=rule_id).exists()

    def get_fieldsets(self, request: HttpRequest, obj=None):
        """A rule hidden from the user is shown as one, not by its name and link (a Viewer read another service's
        rule on the page), and is not in the form: a save by them keeps it."""
        fieldsets = super().get_fieldsets(request, obj)
        if not self._rule_hidden_from(request, obj):
            return fieldsets
        hidden = "emergency_alert_rule_hidden"
        return [
            (name, {**options, "fields": [hidden if f == "emergency_alert_rule" else f for f in options["fields"]]})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "emergency_alert_rule_hidden"] if self._rule_hidden_from(request, obj) else fields

    @admin.display(description="Emergency alert rule")
    def emergency_alert_rule_hidden(self, policy: ScalingPolicy) -> str:
        return "An alert rule you cannot see (another service's): an administrator changes it."

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        """The emergency alert rule among the rules the user sees: the list named every service's rules, those of
        services hidden from an Operator included (a rule held that they cannot see is not in their form)."""
        form = super().get_form(request, obj, change=change, **kwargs)

        class PolicyForm(form):
            def clean_emergency_until(self):
                """An end set already past (a wrong date) saved, and the mode in force was computed off at
                once: "saved", and the minimum never lifted. Only an end entered now: one lapsing while the
                form was open is the checker's to end."""
                until = self.cleaned_data.get("emergency_until")
                if until is not None and "emergency_until" in self.changed_data and until <= timezone.now():
                    when = charts.date_clock_label(until)
                    raise ValidationError(
                        f"Already past ({when}): emergency mode would be off at once. Choose a later end, or none "
                        "(until switched off)."
                    )
                return until

        # On the subclass: its metaclass builds the model's fields afresh, so a queryset set on `form` was lost.
        field = PolicyForm.base_fields.get("emergency_alert_rule")
        if field is not None:
            field.queryset = alert_rules_visible_to(
                request.user
            )  # the alert list's: host and cache rules are everyone's
        return PolicyForm

    @admin.display(description="Manifests (preview)")
    def manifest_preview(self, policy: ScalingPolicy) -> str:
        if not policy.pk:
            return "Saved policies show their manifests here."
        docs = services.policy_manifests(policy)
        errors = manifests.validate(docs)
        text = "\n---\n".join(manifests.to_yaml(doc) for doc in docs.values())
        status = (
            format_html('<p style="color:#cf222e">{}</p>', "; ".join(errors))
            if errors
            else format_html('<p style="color:#1a7f37">{}</p>', "Valid (schemas, ranges, HPA/VPA rule).")
        )
        return format_html('{}<pre style="max-height:30rem;overflow:auto">{}</pre>', status, text)

    @admin.display(description="Latest replica plan")
    def latest_plan(self, policy: ScalingPolicy) -> str:
        latest = policy.service.scaling_recommendations.first() if policy.pk else None
        if latest is None:
            return "No plan yet: forecasts run hourly (`manage.py scaling forecast` runs them now)."
        reasons = format_html_join("", "<li>{}</li>", ((reason,) for reason in latest.reasons))
        stale = (
            format_html(
                '<p style="color:#cf222e">Stale: made {} ({} days ago) and no forecast has replaced it; its KEDA cron '
                "windows still repeat its hours every day. Are the workers and beat running? (Why forecasts were "
                "skipped: below.)</p>",
                # With its zone: the hour the clocks go back happens twice, and a bare time reads as UTC.
                charts.date_clock_label(latest.created_at),
                (timezone.now() - latest.created_at).days,
            )
            if latest.is_stale()
            else ""
        )
        return format_html("{}{}<ul>{}</ul>", stale, charts.replicas_svg(latest.hours), reasons)

    @admin.action(description="Apply to the cluster now", permissions=["change"])
    def apply_now(self, request: HttpRequest, queryset: QuerySet[ScalingPolicy]) -> None:
        from apps.scaling.tasks import apply_policy

        for policy in queryset:
            if not policy.enabled:  # its state reads "no cluster" too: the checker withdraws what it applied
                self.message_user(request, f"{policy}: the policy is disabled: nothing to apply (enable it to apply "
                                  "its manifests).", messages.WARNING)  # fmt: skip
                continue
            if services.policy_state_refresh(policy) == ScalingPolicy.ApplyState.NOT_CONFIGURED:
                self.message_user(request, f"{policy}: no cluster configured (SCALING_KUBECONFIG).", messages.WARNING)
                continue
            if not services.apply_requested(policy):
                self.message_user(request, f"{policy}: an apply is in flight; it was not sent twice.", messages.INFO)
                continue
            # Who changed the cluster by hand, and when, is in the policy's history (as the emergency actions').
            self.log_change(request, policy, "Apply to the cluster sent by hand (Apply to the cluster now).")
            try:
                apply_policy.delay(policy.pk)
            except send_errors(apply_policy.app) as exc:
                self.message_user(request, f"{policy}: not sent, {broker_failure(exc)}; the checker will send it.",
                                  messages.WARNING)  # fmt: skip
            else:
                self.message_user(request, f"{policy}: sent to the workers.", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: ScalingPolicy, form, change: bool) -> None:
        # The mode in force follows an edit of the hand's setting or of the alert rule at once, as the
        # actions do, rather than at the checker's next pass.
        obj.emergency_mode = services.emergency_in_force(obj)
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only what the form changed: a whole-row save wrote back the apply state, the applied objects and the
        # forecasts' notes as they were when the form was read, over what a worker wrote meanwhile (an apply
        # finished, an autoscaler then left on the cluster unrecorded).
        obj.save(update_fields=[*form.changed_data, "emergency_mode", "updated_at"])

    @admin.action(description="Emergency mode on", permissions=["change"])
    def emergency_on(self, request: HttpRequest, queryset: QuerySet[ScalingPolicy]) -> None:
        for policy in queryset.select_related("service", "emergency_alert_rule"):
            was, by_hand = policy.emergency_mode, policy.emergency_manual
            services.emergency_mode_set(policy, on=True)
            if not by_hand:
                # The policy's history says who lifted the minimum and when (actions log nothing themselves).
                self.log_change(request, policy, f"Emergency mode on by hand: minimum {policy.floor_replicas}.")
            if by_hand:
                self.message_user(request, f"{policy}: emergency mode was already on.", messages.INFO)
            elif was:
                self.message_user(request, f"{policy}: emergency mode was on for its alert rule; it now stays on "
                                  "until switched off by hand.", messages.SUCCESS)  # fmt: skip
            else:
                self.message_user(request, f"{policy}: emergency mode on, the minimum lifted to "
                                  f"{policy.floor_replicas} replicas.", messages.SUCCESS)  # fmt: skip

    @admin.action(description="Emergency mode off", permissions=["change"])
    def emergency_off(self, request: HttpRequest, queryset: QuerySet[ScalingPolicy]) -> None:
        for policy in queryset.select_related("service", "emergency_alert_rule"):
            was, by_hand = policy.emergency_mode, policy.emergency_manual
            services.emergency_mode_set(policy, on=False)
            if by_hand:
                self.log_change(request, policy, "Emergency mode off by hand.")
            if policy.emergency_mode:
                rule = ("an alert rule you cannot see" if self._rule_hidden_from(request, policy)
                        else f"alert rule {policy.emergency_alert_rule}")  # fmt: skip
                self.message_user(request, f"{policy}: stays in emergency mode while {rule} fires.", messages.WARNING)
            elif was:
                self.message_user(request, f"{policy}: emergency mode off, the minimum back to "
                                  f"{policy.floor_replicas} replicas.", messages.SUCCESS)  # fmt: skip
            else:
                self.message_user(request, f"{policy}: emergency mode was already off.", messages.INFO)


@admin.register(WorkloadForecast)
class WorkloadForecastAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    list_display = ["service", "metric", "model", "source", "history_hours", "created_at"]
    show_full_result_count = False  # hourly forecasts per service and metric
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_filter = ["metric", "model", "source", ("service", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["service__name", "service__slug"]
    readonly_fields = [
        "service",
        "metric",
        "model",
        "source",
        "history_hours",
        "created_at",
        "chart",
        "scores",
        "patterns",
    ]
    exclude = ["points", "recent"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Forecast")
    def chart(self, forecast: WorkloadForecast) -> str:
        return charts.forecast_svg(forecast.recent, forecast.points)


@admin.register(ScalingRecommendation)
class ScalingRecommendationAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    list_display = ["service", "min_replicas", "peak_replicas", "emergency", "created_at"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_filter = [("service", admin.RelatedOnlyFieldListFilter), "emergency"]
    search_fields = ["service__name", "service__slug"]
    readonly_fields = [
        "service",
        "forecast",
        "created_at",
        "min_replicas",
        "peak_replicas",
        "emergency",
        "plan",
        "reasons",
    ]
    exclude = ["hours"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Replicas per hour")
    def plan(self, recommendation: ScalingRecommendation) -> str:
        return charts.replicas_svg(recommendation.hours)
