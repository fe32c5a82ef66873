import math

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models

from apps.caching.models import CachePolicy
from apps.metrics.models import Alert, AlertNotification, AlertRule
from apps.services.admin import ListRowForm, ServiceVisibilityAdmin
from apps.services.selectors import sees_all_traffic

PERCENT_METRICS = {AlertRule.Metric.ERROR_RATE_PCT, AlertRule.Metric.CPU_PCT, AlertRule.Metric.MEMORY_PCT,
                   AlertRule.Metric.CACHE_HIT_RATE_PCT}  # fmt: skip


def threshold_problem(metric: str, operator: str, threshold: float) -> str | None:
    """A threshold the metric can never cross: the rule then never fires (CPU above 150%, a hit rate below 0)
    or always does (a p95 above -1 ms), and nothing says so until the emergency it was meant to catch."""
    if not math.isfinite(threshold):
        return None  # the model's own check says "A finite number."
    low, high = (0.0, 100.0) if metric in PERCENT_METRICS else (0.0, math.inf)
    if not low <= threshold <= high:
        return f"This metric is {'a percentage, 0 to 100' if high == 100 else 'never negative'}."
    if operator == AlertRule.Operator.ABOVE and threshold == high:
        return "The metric can never be above 100%: the rule would never fire."
    if operator == AlertRule.Operator.BELOW and threshold == low:
        return "The metric can never be below 0: the rule would never fire."
    return None


class AlertRuleFormMixin:
    checks_unchanged_threshold = True

    def clean(self):
        cleaned = super().clean()
        if not self.checks_unchanged_threshold and "threshold" not in self.changed_data:
            return cleaned
        threshold = cleaned.get("threshold")
        metric = cleaned.get("metric", self.instance.metric)
        operator = cleaned.get("operator", self.instance.operator)
        if threshold is not None and metric and operator:
            problem = threshold_problem(metric, operator, threshold)
            if problem:
                self.add_error("threshold", ValidationError(problem))
        return cleaned


class AlertRuleForm(AlertRuleFormMixin, forms.ModelForm):
    def clean_cache_namespace(self) -> str:
        """A namespace no policy names has no reads: the rule would say "no data" forever, a typo unnoticed."""
        namespace = self.cleaned_data.get("cache_namespace", "").strip()
        if namespace and not CachePolicy.objects.filter(namespace=namespace).exists():
            known = ", ".join(CachePolicy.objects.values_list("namespace", flat=True))
            raise ValidationError(f"No cache namespace is called {namespace!r}: one of {known}, or empty for all.")
        return namespace


class AlertRuleRowForm(AlertRuleFormMixin, ListRowForm):
    checks_unchanged_threshold = False  # a row left as it was never blocks saving the others


class AlertVisibilityAdmin(ServiceVisibilityAdmin):
    """A rule of no service watches every route, so it and its alerts are for viewers who see all traffic."""

    def unassigned_visible_to(self, visible_services: frozenset[int] | None) -> bool:
        return sees_all_traffic(visible_services)


class NotificationInline(admin.TabularInline):
    model = AlertNotification
    extra = 0
    max_num = 0
    can_delete = False
    readonly_fields = ["at", "event", "channel", "target", "delivered", "detail"]


@admin.register(AlertRule)
class AlertRuleAdmin(AlertVisibilityAdmin):
    form = AlertRuleForm
    list_select_related = ["service"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # a webhook without a scheme
    list_display = ["name", "enabled", "metric", "operator", "threshold", "service", "for_seconds", "severity",
                    "last_value", "last_evaluated_at", "last_error"]  # fmt: skip
    list_editable = ["enabled", "threshold"]
    readonly_fields = ["pending_since", "no_data_since", "last_value", "last_evaluated_at", "last_error",
                       "last_error_at"]  # fmt: skip

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=AlertRuleRowForm, **kwargs)


@admin.register(Alert)
class AlertAdmin(AlertVisibilityAdmin):
    service_field = "rule__service"
    list_display = ["rule", "state", "started_at", "resolved_at", "value", "last_value", "message"]
    list_select_related = ["rule"]
    show_full_result_count = False  # alerts only accumulate: a filtered list counts its own rows only
    list_filter = ["state", "rule__severity"]
    inlines = [NotificationInline]
    readonly_fields = ["rule", "state", "started_at", "resolved_at", "value", "last_value", "message"]

    def has_add_permission(self, request) -> bool:
        return False
