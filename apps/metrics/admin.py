from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin_lookups import PlainLookupsAdmin
from apps.metrics.models import Alert, AlertNotification, AlertRule
from apps.metrics.selectors import SHARED_ALERT_METRICS, rules_visible
from apps.services.admin import ListRowForm, ServiceVisibilityAdmin
from apps.services.selectors import sees_all_traffic, visible_service_ids


def alert_rules_visible_to(user) -> QuerySet[AlertRule]:
    """The alert rules this staff user may see and choose."""
    return rules_visible(AlertRule.objects.all(), visible_service_ids(user))


class AlertRuleRowForm(ListRowForm):
    """A row left as it was is not saved: a rule set wrong outside admin never blocks saving the others."""

    def add_error(self, field: str | None, error) -> None:
        if self.has_changed():
            super().add_error(field, error)


class AlertVisibilityAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    """Rules and alerts as the API shows them (rules_visible): of the services the user sees, host and cache
    rules of no service, and other rules of no service for viewers who see all traffic."""

    rule_path = ""  # the path from this model to its alert rule

    def get_queryset(self, request: HttpRequest):
        # Past ServiceVisibilityAdmin's filter, which lets rows of no service through all or none.
        rows = super(ServiceVisibilityAdmin, self).get_queryset(request)
        return rules_visible(rows, visible_service_ids(request.user), self.rule_path)


class NotificationInline(admin.TabularInline):
    model = AlertNotification
    extra = 0
    max_num = 0
    can_delete = False
    readonly_fields = ["at", "event", "channel", "target", "delivered", "detail"]


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
        return super().get_changelist_form(request, form=AlertRuleRowForm, **kwargs)

    def get_form(self, request: HttpRequest, obj: AlertRule | None = None, change: bool = False, **kwargs):
        """A viewer from whom a service is hidden may keep a rule of no service only on a host or cache figure
        (SHARED_ALERT_METRICS): an Operator turned the shared CPU rule into an error-rate rule over every route,
        which summed the hidden services' traffic, posted it to their webhook and left their view."""
        form = super().get_form(request, obj, change=change, **kwargs)
        if sees_all_traffic(visible_service_ids(request.user)):
            return form

        class SharedRuleForm(form):
            def clean(self) -> dict:
                cleaned = super().clean()
                metric = cleaned.get("metric")
                unassigned = not cleaned.get("service") and "service" not in self.errors  # not a hidden one chosen
                if unassigned and metric and metric not in SHARED_ALERT_METRICS:
                    self.add_error("metric", "A rule of no service sums every service's traffic, some hidden from "
                                             "you: choose a service, or a host or cache metric.")  # fmt: skip
                return cleaned

        return SharedRuleForm

    def get_deleted_objects(self, objs, request):
        """A rule goes with its alerts and their deliveries, though no one deletes an alert on its own (see
        AlertAdmin): without this, a rule that had ever fired (and so its service) could not be deleted."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        history = {Alert._meta.verbose_name, AlertNotification._meta.verbose_name}
        return deleted, model_count, perms_needed - history, protected


@admin.register(Alert)
class AlertAdmin(AlertVisibilityAdmin):
    service_field = "rule__service"
    rule_path = "rule"
    list_display = ["rule", "state", "started_at", "resolved_at", "value", "last_value", "message"]
    list_select_related = ["rule"]
    show_full_result_count = False  # alerts only accumulate: a filtered list counts its own rows only
    list_filter = ["state", "rule__severity"]
    inlines = [NotificationInline]
    readonly_fields = ["rule", "state", "started_at", "resolved_at", "value", "last_value", "message"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        """An alert is the record of what paged whom and when (an incident review reads it): an Administrator
        could delete one, its deliveries with it. Alerts go only with their rule."""
        return False
