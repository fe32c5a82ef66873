from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin_lookups import PlainLookupsAdmin
from apps.core.admin_paginator import EstimatedCountPaginator
from apps.metrics.models import Alert, AlertNotification, AlertRule
from apps.metrics.selectors import alerts_visible, rules_visible
from apps.metrics.services import _webhook_origin, alert_rule_scope_check
from apps.services.admin import ListRowForm, ServiceVisibilityAdmin
from apps.services.selectors import visible_service_ids


def alert_rules_visible_to(user) -> QuerySet[AlertRule]:
    """The alert rules this staff user may see and choose."""
    return rules_visible(AlertRule.objects.all(), visible_service_ids(user))


class AlertRuleRowForm(ListRowForm):
    """A row left as it was is not saved: a rule set wrong outside admin never blocks saving the others."""

    def add_error(self, field: str | None, error) -> None:
        if self.has_changed():
            super().add_error(field, error)


def scope_checked(form: type[forms.ModelForm], visible_services: frozenset[int] | None) -> type[forms.ModelForm]:
    """`form`, refusing what alert_rule_scope_check refuses a viewer who sees `visible_services`, its error on
    the metric field. The fields the form lacks (a list row's) are the rule's own."""

    class ScopeCheckedForm(form):
        def clean(self) -> dict:
            cleaned = super().clean()
            if "service" in self.errors or ("metric" in self.fields and not cleaned.get("metric")):
                return cleaned  # a hidden service chosen, or no metric: those fields' own errors
            service = cleaned.get("service") if "service" in self.fields else self.instance.service
            metric = cleaned["metric"] if "metric" in self.fields else self.instance.metric
            try:
                alert_rule_scope_check(service_id=service.pk if service else None, metric=metric,
                                       visible_services=visible_services)  # fmt: skip
            except ValidationError as error:
                self.add_error(None, error)
            return cleaned

    return ScopeCheckedForm


class AlertVisibilityAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    """Rules and alerts as the API shows them (rules_visible): of the services the user sees, host and cache
    rules of no service, and other rules of no service for viewers who see all traffic."""

    rule_path = ""  # the path from this model to its alert rule

    def get_queryset(self, request: HttpRequest):
        # Past ServiceVisibilityAdmin's filter, which lets rows of no service through all or none.
        rows = super(ServiceVisibilityAdmin, self).get_queryset(request)
        return rules_visible(rows, visible_service_ids(request.user), self.rule_path)


def may_see_webhook_urls(request: HttpRequest) -> bool:
    """A webhook's path is its secret (a chat webhook's: whoever has it posts into the channel), as the logs
    treat it (services._webhook_origin): shown whole to those who may change the rules (Operators,
    Administrators), to Viewers only as its origin. Viewers read it whole on the rule's page and in each
    alert's deliveries."""
    return request.user.has_perm("metrics.change_alertrule")


def webhook_shown(url: str) -> str:
    """A webhook as a user who may not see its path reads it: its scheme and host."""
    return _webhook_origin(url) if url else ""


class NotificationInline(admin.TabularInline):
    model = AlertNotification
    extra = 0
    max_num = 0
    can_delete = False
    readonly_fields = ["at", "event", "channel", "target", "delivered", "detail"]

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        if may_see_webhook_urls(request):
            return self.readonly_fields
        return [name if name != "target" else "target_shown" for name in self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return self.get_fields(request, obj)

    @admin.display(description="target")
    def target_shown(self, notification: AlertNotification) -> str:
        return webhook_shown(notification.target) if notification.channel == "webhook" else notification.target


@admin.register(AlertRule)
class AlertRuleAdmin(AlertVisibilityAdmin):
    list_select_related = ["service"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # a webhook without a scheme
    list_display = ["name", "enabled", "metric", "operator", "threshold", "service", "for_seconds", "severity",
                    "last_value", "last_evaluated_at", "last_error"]  # fmt: skip
    list_editable = ["enabled", "threshold"]
    readonly_fields = ["pending_since", "no_data_since", "last_value", "last_evaluated_at", "last_error",
                       "last_error_at"]  # fmt: skip

    def get_changelist_form(self, request, **kwargs):
        form = super().get_changelist_form(request, form=AlertRuleRowForm, **kwargs)
        return scope_checked(form, visible_service_ids(request.user))

    def get_form(self, request: HttpRequest, obj: AlertRule | None = None, change: bool = False, **kwargs):
        """The rule of who may keep a rule of no service is the service layer's (alert_rule_scope_check)."""
        form = super().get_form(request, obj, change=change, **kwargs)
        return scope_checked(form, visible_service_ids(request.user))

    def get_fields(self, request: HttpRequest, obj: AlertRule | None = None) -> list[str]:
        fields = [name for name in super().get_fields(request, obj) if name != "webhook_url_shown"]
        if may_see_webhook_urls(request):
            return fields
        return [name if name != "webhook_url" else "webhook_url_shown" for name in fields]

    def get_readonly_fields(self, request: HttpRequest, obj: AlertRule | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields if may_see_webhook_urls(request) else [*fields, "webhook_url_shown"]

    @admin.display(description="webhook URL")
    def webhook_url_shown(self, rule: AlertRule) -> str:
        return webhook_shown(rule.webhook_url)

    def get_deleted_objects(self, objs, request):
        """A rule's alerts and their deliveries stay when it goes (Alert.rule is SET_NULL), so no permission on
        them is asked; kept should a cascade to them come back, as no one deletes an alert on its own."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        history = {Alert._meta.verbose_name, AlertNotification._meta.verbose_name}
        return deleted, model_count, perms_needed - history, protected


class RuleSeverityFilter(admin.SimpleListFilter):
    """The severities a rule can have: a plain `rule_severity` filter listed its choices with a SELECT DISTINCT
    over every alert kept (resolved ones for HISTORY_KEEP_DAYS), each time the list was opened."""

    title = "rule severity"
    parameter_name = "rule_severity__exact"  # what the plain filter's links named: bookmarks keep working

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return AlertRule.Severity.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        return queryset.filter(rule_severity=self.value()) if self.value() else queryset


@admin.register(Alert)
class AlertAdmin(AlertVisibilityAdmin):
    """Each alert as it fired: the rule's name, metric, threshold and service when it did (kept when the rule
    or its service is deleted: the rule's link then reads "-")."""

    service_field = "service_pk"
    list_display = ["rule_name", "service_name", "state", "started_at", "resolved_at", "value", "last_value",
                    "message"]  # fmt: skip
    show_full_result_count = False  # alerts only accumulate: a filtered list counts its own rows only
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_filter = ["state", RuleSeverityFilter]
    inlines = [NotificationInline]
    readonly_fields = ["rule", "rule_name", "rule_severity", "rule_metric", "rule_operator", "rule_threshold",
                       "service_name", "state", "started_at", "resolved_at", "value", "last_value",
                       "message"]  # fmt: skip

    def get_queryset(self, request: HttpRequest):
        """Judged by the service each alert fired on (its snapshot; alerts_visible), not its rule's service now."""
        rows = super(ServiceVisibilityAdmin, self).get_queryset(request)
        return alerts_visible(rows, visible_service_ids(request.user))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        """An alert is the record of what paged whom and when (an incident review reads it): an Administrator
        could delete one, its deliveries with it. Alerts go only with their rule."""
        return False
