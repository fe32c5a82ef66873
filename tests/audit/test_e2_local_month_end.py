"""A guard (passed when written): the audit trail's monthly partitions are UTC months whatever TIME_ZONE says, so
a record written at 23:30 on a month's last evening in New York (04:30Z the next day) is in the next month's
partition, and `audit archive --before` takes whole UTC months. The bounds are written with their offset: a
session on the hospital's zone would not move them."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.services import AuditEntry, audit_partitions_ensure, audit_record

pytestmark = pytest.mark.django_db


def _partition_of(event: AuditEvent) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT tableoid::regclass::text FROM "{AuditEvent._meta.db_table}" WHERE id = %s', [event.pk])  # noqa: S608
        return cursor.fetchone()[0]


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_a_record_on_a_months_last_local_evening_is_in_its_utc_month(settings, zone):
    settings.TIME_ZONE = zone
    with connection.cursor() as cursor:
        # The session on the hospital's clock (rolled back with the test): the bounds keep UTC.
        cursor.execute("SELECT set_config('TimeZone', %s, false)", [zone])
    table = AuditEvent._meta.db_table
    created = audit_partitions_ensure(months_ahead=1, today=date(2030, 1, 1))
    assert created == [f"{table}_y2030m01", f"{table}_y2030m02"]  # made under the session's zone
    late = datetime(2030, 1, 31, 23, 30, tzinfo=ZoneInfo(zone))  # 04:30Z on 1 February in New York
    early = datetime(2030, 2, 1, 0, 30, tzinfo=ZoneInfo(zone))  # 15:30Z on 31 January in Tokyo
    events = {}
    for at in (late, early):
        entry = AuditEntry(actor_type="system", actor_id=None, actor_name="e2", action="read", resource_type="E2")
        entry.recorded_at = at
        events[at] = audit_record(entry)
    for at, event in events.items():
        month = at.astimezone(UTC)
        assert _partition_of(event) == f"{table}_y{month.year}m{month.month:02d}", (zone, at)
