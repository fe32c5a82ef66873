from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from apps.ratelimits import services
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy

ADAPTIVE_FIELDS = ["adaptive", "service", "cpu_threshold_pct", "p95_threshold_ms", "tighten_factor", "min_factor",
                   "recover_below", "current_factor", "last_step_at"]  # fmt: skip


class PolicyRowForm(forms.ModelForm):
    """A row of the list's editable columns (`enabled`, `requests`). The model's cross-field rules name fields
    the row lacks (a limit lowered under the burst cap names `burst_per_second`), which a form cannot hold:
    Django raises ValueError, a 500. The row shows them as its own errors, named; a row left as it was keeps
    them out of the way (every row is validated, and one set wrong outside admin would block every save)."""

    def add_error(self, field: str | None, error) -> None:
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            kept: dict[str, list] = {}
            for name, errors in error.error_dict.items():
                if name in self.fields or name == NON_FIELD_ERRORS:
                    kept.setdefault(name, []).extend(errors)
                elif self.has_changed():
                    label = self._meta.model._meta.get_field(name).verbose_name
                    kept.setdefault(NON_FIELD_ERRORS, []).extend(
                        ValidationError(f"{label.capitalize()}: {message}") for e in errors for message in e
                    )
            if not kept:
                return
            error = ValidationError(kept)
        super().add_error(field, error)


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

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=PolicyRowForm, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        if change:  # the controller's fields are left as the row has them now, not as this request read them
            edited = [f.name for f in obj._meta.concrete_fields if f.editable and not f.primary_key]
            obj.save(update_fields=[*edited, "updated_at"])
        else:
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
