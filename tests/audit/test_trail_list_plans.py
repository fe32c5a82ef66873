"""The audit trail's list (/api/v1/audit/) at millions of records: a filter's page reads that filter's records,
never the trail backwards from its newest record. Plan checks on what was executed, not timings.

`actor_id` without `actor_type`: the actor index is (actor_type, actor_id, recorded_at), and a filter on the id
alone could not seek in it, so the page (newest first, by id) walked the trail backwards testing each record
until it had 51 of that actor's: 2M records, a client with 234 of them, 11,800 pages read (570 ms) against
505 (18 ms) with the type spelled out.

`patient_id`: ordered by the id itself, the planner could take the same walk whenever it overestimated the
patient's share (jsonb containment is estimated at 0.1% of the trail, more for a patient the sample made a
common value): patient 19999 of 20,000, 500,000 records read for a first page (460-550 ms, the others 5-20 ms).
The page is now ordered by an id no index yields in order, so the patient's records are found by their indexes
and sorted, whatever the estimate.

`action`, `resource_type` (the dashboard's audit page filters by both): no index at all, so a value rarely
recorded (a delete, an AuditChain record) or never recorded scanned the whole trail: 2M records, 410-440 ms.
Migration 0010 adds (action, id) and (resource_type, id), on every partition."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_event_list
from apps.audit.services import AuditEntry, audit_record_batch

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan is PostgreSQL's"),
]

BUSY, RARE = 1, 2
RECHECKED = "Rows Removed by Index Recheck"


def _trail() -> None:
    """A rare client's few records, old, under many newer ones of a busy client, written as the API writes them."""
    start = timezone.now() - timedelta(hours=2)

    def entry(actor_id: int, minute: float) -> AuditEntry:
        return AuditEntry(actor_type="client", actor_id=actor_id, actor_name=f"client-{actor_id}", action="read",
                          resource_type="Patient", recorded_at=start + timedelta(minutes=minute))  # fmt: skip

    audit_record_batch([entry(RARE, i / 100) for i in range(5)])
    audit_record_batch([entry(BUSY, 1 + i / 100) for i in range(4000)])
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{AuditEvent._meta.db_table}"')


def _scans(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _scans(child)


def _assert_found_by_index(page, *columns: str) -> None:
    """Every scan of the trail that met rows found them by an index condition on `columns`, and discarded none."""
    sql, params = page.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    met = [
        node for node in _scans(plan[0]["Plan"])
        if node.get("Relation Name", node.get("Index Name", "")).startswith("audit_auditevent")
        and sum(node.get(rows, 0) for rows in ("Actual Rows", "Rows Removed by Filter", RECHECKED))
    ]  # fmt: skip
    assert met, plan
    for node in met:
        assert not node.get("Rows Removed by Filter"), node
        if node["Node Type"] != "Bitmap Heap Scan":  # its Bitmap Index Scan below says how it found them
            condition = node.get("Index Cond", "")
            assert all(column in condition for column in columns), node


def test_an_actor_id_alone_is_found_by_the_actor_index():
    _trail()
    page = audit_event_list(actor_id=RARE).order_by("-id")[:51]  # the API's first page (keyset on -id)
    assert [event.actor_id for event in page] == [RARE] * 5
    _assert_found_by_index(page, "actor_type", "actor_id")


def test_an_actor_id_alone_still_finds_every_type_of_actor():
    at = timezone.now()
    audit_record_batch([
        AuditEntry(actor_type=kind, actor_id=7, actor_name=kind, action="read", resource_type="Patient", recorded_at=at)
        for kind in ("client", "user")
    ])  # fmt: skip
    assert sorted(event.actor_type for event in audit_event_list(actor_id=7)) == ["client", "user"]
    assert [event.actor_type for event in audit_event_list(actor_type="user", actor_id=7)] == ["user"]


def _disclosures(patient_id: int) -> list[int]:
    """Five records about the patient (two reads, three searches naming it), older than 3,000 about others."""
    start = timezone.now() - timedelta(hours=2)

    def entry(minute: float, **about) -> AuditEntry:
        return AuditEntry(actor_type="client", actor_id=BUSY, actor_name="client", action="read",
                          resource_type="Patient", recorded_at=start + timedelta(minutes=minute), **about)  # fmt: skip

    mine = audit_record_batch(
        [entry(0, patient_id=patient_id), entry(0.1, patient_ids=[patient_id, 9]), entry(0.2, patient_id=patient_id),
         entry(0.3, patient_ids=[8, patient_id]), entry(0.4, patient_ids=[patient_id, 7, 6])]
    )  # fmt: skip
    audit_record_batch([entry(1 + i / 100, patient_id=1000 + i % 50) for i in range(3000)])
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{AuditEvent._meta.db_table}"')
    return sorted((event.pk for event in mine), reverse=True)


def test_a_patients_page_is_never_an_ordered_walk_of_the_trail():
    expected = _disclosures(4242)
    page = audit_event_list(patient_id=4242).order_by("-page_id")[:51]  # the API's first page
    assert [event.pk for event in page] == expected
    sql, params = page.query.sql_with_params()
    with connection.cursor() as cursor:
        # Sorting made dear, as an overestimate of the patient's share makes it look: ordered by the id itself,
        # the plan then reads the primary key backwards, which here it cannot.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    ordered = [node for node in _scans(plan[0]["Plan"]) if node.get("Index Name", "").endswith("_pkey")]
    assert not ordered, plan


def test_a_patients_records_page_by_cursor_newest_first(api, issue_token):
    expected = _disclosures(4343)
    auditor = issue_token("audit:read")
    seen, url = [], "/api/v1/audit/?patient_id=4343&page_size=2"
    while url:
        response = api.get(url, HTTP_AUTHORIZATION=f"Bearer {auditor}")
        assert response.status_code == 200, response.content
        seen += [row["id"] for row in response.json()["results"] if row["resource_type"] != "AuditEvent"]
        url = response.json()["next"]
    assert seen == expected


@pytest.mark.parametrize(("query", "column"), [({"action": "delete"}, "action"),
                                               ({"resource_type": "AuditChain"}, "resource_type")])  # fmt: skip
def test_an_action_or_a_resource_type_rarely_recorded_is_read_from_its_index(query, column):
    start = timezone.now() - timedelta(hours=2)
    rare = [
        AuditEntry(actor_type="user", actor_id=3, actor_name="admin", action="delete", resource_type="AuditChain",
                   recorded_at=start + timedelta(seconds=i))
        for i in range(3)
    ]  # fmt: skip
    audit_record_batch(rare)
    _trail()  # 4,005 reads of patients, all newer
    page = audit_event_list(**query).order_by("-page_id")[:51]  # the API's first page
    assert len(page) == 3
    _assert_found_by_index(page, column)


def test_the_indexes_are_valid_on_the_parent_and_every_partition():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", [AuditEvent._meta.db_table])
        partitions = cursor.fetchone()[0]
        for index in ("audit_event_action", "audit_event_resource", "audit_event_patient_page"):
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [index])
            assert cursor.fetchone() == (True,), index
            cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%s)", [index])
            assert cursor.fetchone()[0] == partitions >= 5, index  # a copy on each partition
