"""Reads of the resources app."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.db.models import DateTimeField, Func
from django.db.models.functions import Now
from django.utils import timezone

from apps.resources.models import ResourceSample, ResourceThreshold


class DatabaseClock(Func):
    """The database's clock when the statement runs (PostgreSQL's clock_timestamp(): not the transaction's
    start, so two samples of one transaction keep their order); the one clock every host shares."""

    function = "clock_timestamp"
    template = "clock_timestamp()"
    output_field = DateTimeField()

    def as_sqlite(self, compiler, connection, **extra):
        return Now().as_sql(compiler, connection)  # one file on one host: its clock is everyone's


def database_now() -> datetime:
    """The database's clock now. Samples are stamped with it (services.resources_sample), so windows over them
    are taken on it: a worker whose clock ran minutes ahead read no recent sample at all, one behind read old ones."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def thresholds_current() -> dict[str, float]:
    """The thresholds as edited in admin; the RESOURCE_*_PCT settings for a kind with no row (deleted)."""
    return {**settings.RESOURCE_THRESHOLDS, **dict(ResourceThreshold.objects.values_list("kind", "pct"))}


def latest_samples_by_host(
    *, within: timedelta = timedelta(minutes=5), now: datetime | None = None
) -> dict[str, ResourceSample]:
    """Each host's latest sample, of the hosts that sampled within `within` (a gone pod drops out). On the
    database's clock, which stamped them: a reader whose clock ran behind it saw no fresh sample at all."""
    now = now or database_now()
    latest: dict[str, ResourceSample] = {}
    for sample in ResourceSample.objects.filter(at__gte=now - within, at__lte=now).order_by("-at"):
        latest.setdefault(sample.host, sample)
    return latest
