from django.contrib import admin

from apps.ratelimits import services
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy

ADAPTIVE_FIELDS = ["adaptive", "service", "cpu_threshold_pct", "p95_threshold_ms", "tighten_factor", "min_factor",
                   "recover_below", "current_factor", "last_step_at"]  # fmt: skip


class AdjustmentInline(admin.TabularInline):
    model = RateLimitAdjustment
    extra = 0
    can_delete = False
    max_num = 0
    fields = ["at", "direction", "old_factor", "new_factor", "reason", "cpu_pct", "p95_ms"]
    readonly_fields = fields
    ordering = ["-at"]


@admin.register(RateLimitPolicy)
class RateLimitPolicyAdmin(admin.ModelAdmin):
    list_display = ["scope", "enabled", "requests", "period_seconds", "burst_per_second", "effective",
                    "fail_open", "priority", "adaptive", "updated_at"]  # fmt: skip
    list_editable = ["enabled", "requests"]
    readonly_fields = ["current_factor", "last_step_at", "updated_at"]
    inlines = [AdjustmentInline]
    fieldsets = [
        (None, {"fields": ["scope", "description", "enabled", "priority"]}),
        ("Limit (per client token)", {"fields": ["requests", "period_seconds", "burst_per_second", "fail_open"]}),
        ("Adaptive", {"fields": ADAPTIVE_FIELDS}),
        (None, {"fields": ["updated_at"]}),
    ]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        services.ratelimit_policy_settle(policy_id=obj.pk)  # adaptive off: the configured limit, now

    @admin.display(description="in force")
    def effective(self, policy: RateLimitPolicy) -> str:
        return f"{policy.effective_requests}/{policy.period_seconds}s"


@admin.register(RateLimitAdjustment)
class RateLimitAdjustmentAdmin(admin.ModelAdmin):
    list_display = ["at", "policy", "direction", "old_factor", "new_factor", "reason"]
    list_filter = ["direction", "policy"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
