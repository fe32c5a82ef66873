from django.contrib import admin
from django.db import models

from apps.metrics.models import Alert, AlertNotification, AlertRule
from apps.services.admin import ServiceVisibilityAdmin
from apps.services.selectors import sees_all_traffic


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
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # a webhook without a scheme
    list_display = ["name", "enabled", "metric", "operator", "threshold", "service", "for_seconds", "severity",
                    "last_value", "last_evaluated_at", "last_error"]  # fmt: skip
    list_editable = ["enabled", "threshold"]
    readonly_fields = ["pending_since", "no_data_since", "last_value", "last_evaluated_at", "last_error",
                       "last_error_at"]  # fmt: skip


@admin.register(Alert)
class AlertAdmin(AlertVisibilityAdmin):
    service_field = "rule__service"
    list_display = ["rule", "state", "started_at", "resolved_at", "value", "last_value", "message"]
    list_filter = ["state", "rule__severity"]
    inlines = [NotificationInline]
    readonly_fields = ["rule", "state", "started_at", "resolved_at", "value", "last_value", "message"]

    def has_add_permission(self, request) -> bool:
        return False
