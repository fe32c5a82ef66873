"""Documentation only: the shape `apps.caching.selectors.namespace_overview` answers with."""

from __future__ import annotations

from rest_framework import serializers


class CacheNamespaceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    namespace = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    enabled = serializers.BooleanField()
    contains_phi = serializers.BooleanField()
    encrypt = serializers.BooleanField()
    tiers_enabled = serializers.ListField(child=serializers.ChoiceField(choices=["l1", "l2", "l3"]))
    ttl_seconds = serializers.IntegerField()
    max_ttl_seconds = serializers.IntegerField()
    stale_while_revalidate_seconds = serializers.IntegerField()
    l1_max_entries = serializers.IntegerField()
    hit_rate_1h = serializers.FloatField(allow_null=True, help_text="0-1 over the last hour; null without reads.")
    tiers = serializers.DictField(
        child=serializers.DictField(child=serializers.FloatField(allow_null=True)),
        help_text="Counters per tier (l1, l2, l3, source): requests, hits, misses, loads, ... and hit_rate.",
    )
    requests = serializers.IntegerField()
    hit_rate = serializers.FloatField(allow_null=True, help_text="0-1 since the counters began.")
    stale_serves = serializers.IntegerField()
    mean_load_ms = serializers.FloatField(allow_null=True)


class CacheOverviewOutputSerializer(serializers.Serializer):
    results = CacheNamespaceOutputSerializer(many=True, help_text="By namespace.")
