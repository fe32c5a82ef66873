from django.contrib import admin
from django.http import HttpResponseRedirect

from apps.core.admin_lookups import PlainLookupsAdmin, date_hierarchy_range
from apps.core.admin_paginator import EstimatedCountPaginator
from apps.resources.models import ResourceRecommendation, ResourceSample, ResourceThreshold
from apps.services.admin import ListRowFormAdmin


@admin.register(ResourceThreshold)
class ResourceThresholdAdmin(PlainLookupsAdmin, ListRowFormAdmin):
    """One row per kind, seeded: edited, never added or removed (the monitor knows these kinds only)."""

    list_display = ["kind", "pct", "updated_at"]
    list_editable = ["pct"]
    fields = ["kind", "pct", "updated_at"]
    readonly_fields = ["kind", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ResourceRecommendation)
class ResourceRecommendationAdmin(PlainLookupsAdmin, admin.ModelAdmin):
    """Opened and resolved by the monitor's samples only: a status set here would be undone by the next sample,
    and a reopened one collided with the open one of the same kind and host (a 500)."""

    list_display = ["kind", "host", "status", "value", "threshold", "occurrences", "last_seen", "message"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_filter = ["status", "kind", "host"]
    readonly_fields = ["kind", "host", "metric", "value", "threshold", "message", "occurrences", "calm_samples",
                       "first_seen", "last_seen", "resolved_at"]  # fmt: skip

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A deleted open one is opened anew by the next sample, its first sighting and count lost; resolved
        # ones are the history, pruned by the monitor after services.RESOLVED_KEEP_DAYS.
        return False


@admin.register(ResourceSample)
class ResourceSampleAdmin(PlainLookupsAdmin, admin.ModelAdmin):
    """What the monitor measured: history, read-only (pruned by the monitor after 30 days)."""

    list_display = ["at", "host", "cpu_pct", "cpu_source", "memory_pct", "memory_source", "disk_pct", "pool_pct",
                    "db_connections_pct", "redis_memory_bytes", "l1_cache_bytes"]  # fmt: skip
    # Not a date hierarchy: its year, month and day links are a SELECT DISTINCT over every sample the list
    # holds (the 30 days kept: 1.7M rows for 20 hosts, about a second) each time the list is opened.
    list_filter = [("at", admin.DateFieldListFilter)]
    show_full_result_count = False  # a sample per host per minute: a filtered list counts its own rows only
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it

    def changelist_view(self, request, extra_context=None):
        # Links and bookmarks from when `at` was a date hierarchy (?at__year=&at__month=&at__day=), refused as
        # lookups since (a 400): sent to the same days as the date filter's range.
        day_range = date_hierarchy_range("at", request.GET)
        if day_range is not None:
            query = request.GET.copy()
            for part in ("year", "month", "day"):
                query.pop(f"at__{part}", None)
            query.update(day_range)
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
