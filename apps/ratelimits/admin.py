from django.contrib import admin, messages
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, QuerySet, Window
from django.db.models.functions import Now, RowNumber

from apps.core.admin_lookups import PlainLookupsAdmin
from apps.core.admin_paginator import EstimatedCountPaginator
from apps.ratelimits import services
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy
from apps.ratelimits.selectors import route_scopes, unknown_scope_warning
from apps.services.admin import ListRowForm, ListRowFormAdmin
from apps.services.selectors import sees_every_service, visible_service_ids

ADAPTIVE_FIELDS = ["adaptive", "service", "cpu_threshold_pct", "p95_threshold_ms", "tighten_factor", "min_factor",
                   "recover_below", "current_factor", "last_step_at", "signal_read_at"]  # fmt: skip


class AdjustmentInline(admin.TabularInline):
    model = RateLimitAdjustment
    extra = 0
    can_delete = False
    max_num = 0
    fields = ["at", "direction", "old_factor", "new_factor", "reason", "cpu_pct", "p95_ms"]
    readonly_fields = fields
    ordering = ["-at", "-id"]
    shown = 50  # the whole history is the *Rate limit adjustments* list, filtered by policy

    def get_queryset(self, request) -> QuerySet:
        """The latest `shown` changes: a policy's history only grows, and its page must not render all of it."""
        latest = (
            RateLimitAdjustment.objects.annotate(
                rank=Window(RowNumber(), partition_by=F("policy_id"), order_by=[F("at").desc(), F("id").desc()])
            )
            .filter(rank__lte=self.shown)
            .values("pk")
        )
        return super().get_queryset(request).filter(pk__in=latest)


@admin.register(RateLimitPolicy)
class RateLimitPolicyAdmin(PlainLookupsAdmin, ListRowFormAdmin):
    list_display = ["scope", "enabled", "requests", "period_seconds", "burst_per_second", "effective",
                    "fail_open", "priority", "adaptive", "updated_at"]  # fmt: skip
    list_editable = ["enabled", "requests"]
    # The page's form too: the model's rules may name a field the page shows read-only (the watched service, to
    # those who do not see every service), which a plain form turns into a 500; this one shows it, named.
    form = ListRowForm
    readonly_fields = ["current_factor", "last_step_at", "signal_read_at", "updated_at"]
    inlines = [AdjustmentInline]
    fieldsets = [
        (None, {"fields": ["scope", "description", "enabled", "priority"]}),
        ("Limit (per client token)", {"fields": ["requests", "period_seconds", "burst_per_second", "fail_open"]}),
        ("Adaptive", {"fields": ADAPTIVE_FIELDS}),
        (None, {"fields": ["updated_at"]}),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        """A number's model cap checked by its form field too, with the model's message: refused only by
        full_clean, a 309-digit limit was left on the instance, and the page's re-render overflowed on it."""
        cap = next((v for v in db_field.validators if isinstance(v, MaxValueValidator)), None)
        if cap is not None and isinstance(db_field, models.IntegerField | models.FloatField):
            kwargs.setdefault("max_value", cap.limit_value)
            kwargs.setdefault("error_messages", {"max_value": cap.message})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        if change:  # the controller's fields are left as the row has them now, not as this request read them
            edited = [f.name for f in obj._meta.concrete_fields if f.editable and not f.primary_key]
            services.ratelimit_policy_edit_save(policy=obj, fields=[*edited, "updated_at"])  # a new limit recorded
        else:
            super().save_model(request, obj, form, change)
        services.ratelimit_policy_settle(policy_id=obj.pk)  # adaptive off: the configured limit, now
        warning = unknown_scope_warning(obj.scope)
        if warning:
            messages.warning(request, warning)

    def has_delete_permission(self, request, obj=None) -> bool:
        """A scope the API's views throttle by keeps its policy: deleted, the limiter finds none and lets every
        request through (the brief's 100/min on patient data gone without a word). Untick "enabled" to lift it."""
        if obj is not None and obj.scope in set(route_scopes().values()):
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(self.readonly_fields)
        if obj is not None and obj.scope in set(route_scopes().values()):
            readonly.append("scope")  # renamed, it is deleted for the views that throttle by it
        # A policy is every service's, so its watched service is chosen by those who see every service: the list
        # named services hidden from an Operator, and narrowing it would clear a hidden one on their next save.
        if not sees_every_service(request.user):
            readonly.append("service")
        if self._service_hidden_from(request, obj):
            readonly.append("service_hidden")
        return readonly

    @staticmethod
    def _service_hidden_from(request, policy: RateLimitPolicy | None) -> bool:
        """Whether the policy watches a service this user may not see."""
        service_id = policy.service_id if policy is not None else None
        visible = visible_service_ids(request.user) if service_id is not None else None
        return visible is not None and service_id not in visible

    def get_fieldsets(self, request, obj=None):
        """A watched service hidden from the user is shown as one, not by its name and link (a Viewer read the
        hidden service's name on the page), as the scaling admin shows a hidden alert rule."""
        fieldsets = super().get_fieldsets(request, obj)
        if not self._service_hidden_from(request, obj):
            return fieldsets
        return [
            (name, {**options, "fields": ["service_hidden" if f == "service" else f for f in options["fields"]]})
            for name, options in fieldsets
        ]

    @admin.display(description="Service")
    def service_hidden(self, policy: RateLimitPolicy) -> str:
        return "A service hidden from you: an administrator changes it."

    def get_queryset(self, request) -> QuerySet:
        # The database's clock, which the limiter judges a lapse by: a host whose clock ran ahead showed the
        # configured limit here while the limiter still enforced the tightening.
        return super().get_queryset(request).annotate(database_now=Now())

    @admin.display(description="in force")
    def effective(self, policy: RateLimitPolicy) -> str:
        return f"{policy.requests_in_force(getattr(policy, 'database_now', None))}/{policy.period_seconds}s"


@admin.register(RateLimitAdjustment)
class RateLimitAdjustmentAdmin(PlainLookupsAdmin, admin.ModelAdmin):
    """The record of every adaptive change (the issue: "every change is recorded and visible in admin"): read,
    never edited or deleted here; the retention task prunes it."""

    list_display = ["at", "policy", "direction", "old_factor", "new_factor", "reason"]
    list_filter = ["direction", "policy"]
    list_select_related = ["policy"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
