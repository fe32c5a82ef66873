from django.core.validators import URLValidator
from django.db import models
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from apps.core.api.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictSlugField,
    StrictURLField,
)
from apps.core.api.numbers import StrictFloatField, StrictIntegerField
from apps.core.api.params import refuse_non_ascii_numbers
from apps.services.models import BaseURLField, BaseURLValidator, Service

VISIBILITY_NOT_HERE = (
    "Who sees a service is set in admin (Services, Access) by an administrator; this API does not change it, "
    "so it refuses the field rather than ignore it."
)


class StrictBaseURLField(StrictURLField):
    """A base URL that must arrive as text, checked by BaseURLValidator (a one-label host such as
    controlplane-api is a host): DRF's URLField adds Django's URLValidator, which refused it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [
            BaseURLValidator(message=self.error_messages["invalid"]) if type(validator) is URLValidator else validator
            for validator in self.validators
        ]


class ServiceSerializer(serializers.ModelSerializer):
    # Why the stored base URL is unusable (null when it is fine): a row stored before its rules, which
    # benchmarks refuse with this reason until the URL is edited.
    base_url_error = serializers.CharField(read_only=True, allow_null=True)

    # A JSON number for a text field (slug, route_prefix...) was stored as its digits, `true` as the
    # throughput 1.0 and "300" as the p95 target 300: the wrong JSON type is a 400 on the field.
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.SlugField: StrictSlugField,
        models.URLField: StrictURLField,
        BaseURLField: StrictBaseURLField,
        models.FloatField: StrictFloatField,
        models.IntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,  # the SLO targets in ms
        models.BooleanField: StrictBooleanField,  # is_active
    }

    def to_internal_value(self, data):
        if hasattr(data, "keys") and "visible_to" in data:
            # It was dropped unread like any unknown key: a client restricting a service was answered 200 and
            # the service stayed open to every staff role.
            raise serializers.ValidationError({"visible_to": [VISIBILITY_NOT_HERE]})
        refuse_non_ascii_numbers(self, data)  # "٢٥٠" was stored as 250, as the clinical API once did
        return super().to_internal_value(data)

    class Meta:
        model = Service
        fields = [
            "id",
            "name",
            "slug",
            "kind",
            "base_url",
            "base_url_error",
            "route_prefix",
            "owner_team",
            "description",
            "is_active",
            "slo_p95_ms",
            "slo_p99_ms",
            "slo_avg_ms",
            "slo_min_rps",
            "slo_error_rate_pct",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "base_url_error", "created_at", "updated_at"]
        # The service layer checks the prefix (the same message as admin, and a hidden service's prefix
        # refused as an overlap, not named) and holds the race; DRF's own check from the constraint would
        # answer before it, in other words.
        extra_kwargs = {"route_prefix": {"validators": []}}

    def get_fields(self):
        """Name and slug without DRF's unique check: "service with this slug already exists." confirmed a
        service hidden from the caller; the service layer's check (name_and_slug_check) says "not available"
        of a hidden one, and holds the case and look-alike rules too. The model's other validators stay."""
        fields = super().get_fields()
        for name in ("name", "slug"):
            field = fields[name]
            field.validators = [v for v in field.validators if not isinstance(v, UniqueValidator)]
        return fields
