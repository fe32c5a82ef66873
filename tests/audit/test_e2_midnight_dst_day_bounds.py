"""A bare date as `since`/`until` on /api/v1/ (audit, vitals, encounters) is the start of that day on the hospital's
clock. Where the clocks change at midnight (Cairo, Beirut and Santiago go forward at 00:00, Havana goes back at
01:00 to 00:00) that midnight is skipped or repeated; DRF reads it with fold=0 (the offset before the change), which
is the day's first instant, the one FHIR's `date` starts at. A guard: these passed before this test was written
(a midnight in the gap compares unequal to any UTC time, PEP 495, so instants are compared by timestamp)."""

from datetime import UTC, datetime

import pytest

from apps.audit.services import AuditEntry, audit_record
from apps.clinical.fhir.params import parse_date
from apps.core.api.params import InstantField

pytestmark = pytest.mark.django_db

# zone, day, the day's first instant (UTC): the clocks' change is at its midnight.
DAYS = [
    ("Africa/Cairo", "2026-04-24", datetime(2026, 4, 23, 22, tzinfo=UTC)),  # 00:00 EET -> 01:00 EEST
    ("Asia/Beirut", "2026-03-29", datetime(2026, 3, 28, 22, tzinfo=UTC)),  # 00:00 EET -> 01:00 EEST
    ("America/Santiago", "2026-09-06", datetime(2026, 9, 6, 4, tzinfo=UTC)),  # 00:00 -04 -> 01:00 -03
    ("America/Havana", "2026-11-01", datetime(2026, 11, 1, 4, tzinfo=UTC)),  # 00:00-01:00 CDT, then again CST
    ("America/New_York", "2026-11-01", datetime(2026, 11, 1, 4, tzinfo=UTC)),  # a guard: the change is at 02:00
]
RESOURCE = "E2DayBound"


@pytest.mark.parametrize(("zone", "day", "first_instant"), DAYS)
def test_a_bare_date_is_its_first_instant(settings, zone, day, first_instant):
    settings.TIME_ZONE = zone
    assert InstantField(day_starts=True).to_internal_value(day).timestamp() == first_instant.timestamp()
    assert parse_date("date", day)[1] == first_instant  # FHIR's date, the same start


@pytest.mark.parametrize(("zone", "day", "first_instant"), DAYS)
def test_audit_since_a_day_the_clocks_change_at_midnight(settings, api, issue_token, zone, day, first_instant):
    settings.TIME_ZONE = zone
    for minutes in (-30, 30):  # the day before's last half hour, the day's first
        at = datetime.fromtimestamp(first_instant.timestamp() + minutes * 60, UTC)
        audit_record(AuditEntry(actor_type="system", actor_id=None, actor_name="e2", action="read",
                                resource_type=RESOURCE, resource_id=str(minutes), recorded_at=at))  # fmt: skip
    token = issue_token("audit:read")
    response = api.get(
        "/api/v1/audit/", {"since": day, "resource_type": RESOURCE}, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200, response.content[:300]
    assert [row["resource_id"] for row in response.json()["results"]] == ["30"]
