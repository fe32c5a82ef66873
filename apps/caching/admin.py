from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from apps.caching import selectors, services
from apps.caching.defaults import DEFAULT_POLICIES
from apps.caching.models import CachePolicy
from apps.core.admin_lookups import PlainLookupsAdmin
from apps.services.admin import ListRowFormAdmin

COLUMNS = ("hits", "misses", "stale_serves", "evictions", "errors", "entries", "bytes")


@admin.register(CachePolicy)
class CachePolicyAdmin(PlainLookupsAdmin, ListRowFormAdmin):
    list_display = ["namespace", "enabled", "ttl_seconds", "stale_while_revalidate_seconds", "l1_enabled",
                    "l2_enabled", "l3_enabled", "encrypt", "hit_rate", "updated_at"]  # fmt: skip
    list_editable = ["enabled", "ttl_seconds"]
    readonly_fields = ["generation", "updated_at", "statistics"]
    actions = ["clear_namespaces"]
    fieldsets = [
        (None, {"fields": ["namespace", "description", "enabled", "contains_phi"]}),
        ("Tiers", {"fields": ["l1_enabled", "l2_enabled", "l3_enabled", "l1_max_entries"]}),
        ("Freshness", {"fields": ["ttl_seconds", "max_ttl_seconds", "stale_while_revalidate_seconds"]}),
        ("At rest", {"fields": ["encrypt"]}),
        ("Statistics (all processes)", {"fields": ["statistics", "generation", "updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The code names its namespaces: a renamed policy governs nothing, and the old name is seeded again with
        # the defaults, the admin's TTLs lost.
        return [*self.readonly_fields, "namespace"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        warning = selectors.unknown_namespace_warning(obj.namespace)
        if warning:
            messages.warning(request, warning)

    def has_delete_permission(self, request, obj=None) -> bool:
        """A namespace the code reads keeps its policy: deleted, the next read created it again with the defaults
        (enabled, the brief's TTL, every tier), the admin's settings lost without a word. Edit it instead; *Clear*
        empties it."""
        if obj is not None and obj.namespace in DEFAULT_POLICIES:
            return False
        return super().has_delete_permission(request, obj)

    def get_queryset(self, request):
        self._stats = selectors.cache_stats()
        return super().get_queryset(request)

    @admin.display(description="hit rate")
    def hit_rate(self, policy: CachePolicy) -> str:
        rate = getattr(self, "_stats", {}).get(policy.namespace, {}).get("hit_rate")
        return "-" if rate is None else f"{rate:.1%}"

    @admin.display(description="per tier")
    def statistics(self, policy: CachePolicy) -> str:
        summary = selectors.cache_stats(namespace=policy.namespace).get(policy.namespace)
        if not summary:
            return "No reads yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((tier, *(t.get(name, 0) for name in COLUMNS)) for tier, t in sorted(summary["tiers"].items())),
        )
        mean = summary["mean_load_ms"]
        return format_html(
            "<p>{} reads, hit rate {}, {} stale serves, mean load {}</p>"
            "<table><tr><th>tier</th><th>hits</th><th>misses</th><th>stale</th><th>evictions</th><th>errors</th>"
            "<th>entries (L1)</th><th>bytes</th></tr>{}</table>",
            summary["requests"],
            "-" if summary["hit_rate"] is None else f"{summary['hit_rate']:.1%}",
            summary["stale_serves"],
            "-" if mean is None else f"{mean} ms",
            rows,
        )

    # Only for those who may edit policies: a Viewer could otherwise empty every PHI namespace at once, and
    # every clinician's next read would go to the database together.
    @admin.action(description="Clear the selected namespaces (every tier, every process)", permissions=["change"])
    def clear_namespaces(self, request, queryset) -> None:
        for policy in queryset:
            services.cache_namespace_clear(namespace=policy.namespace)
        messages.success(request, f"Cleared {queryset.count()} namespace(s).")
