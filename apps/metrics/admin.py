from django.contrib import admin
from django.db import models

from apps.metrics.models import Alert, AlertNotification, AlertRule
from apps.services.admin import ServiceVisibilityAdmin


class NotificationInline(admin.TabularInline):
    model = AlertNotification
    extra = 0
    max_num = 0
    can_delete = False
    readonly_fields = ["at", "event", "channel", "target", "delivered", "detail"]


@admin.register(AlertRule)
class AlertRuleAdmin(ServiceVisibilityAdmin):
    unassigned_visible = True
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # a webhook without a scheme
    list_display = ["name", "enabled", "metric", "operator", "threshold", "service", "for_seconds", "severity",
                    "last_value", "last_evaluated_at"]  # fmt: skip
    list_editable = ["enabled", "threshold"]
    readonly_fields = ["pending_since", "last_value", "last_evaluated_at"]


@admin.register(Alert)
class AlertAdmin(ServiceVisibilityAdmin):
    service_field, unassigned_visible = "rule__service", True
    list_display = ["rule", "state", "started_at", "resolved_at", "value", "last_value", "message"]
    list_filter = ["state", "rule__severity"]
    inlines = [NotificationInline]
    readonly_fields = ["rule", "state", "started_at", "resolved_at", "value", "last_value", "message"]

    def has_add_permission(self, request) -> bool:
        return False
