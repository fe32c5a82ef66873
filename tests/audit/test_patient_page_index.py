"""`/api/v1/audit/?patient_id=` for a patient in 5% of the trail: a55c76d's `id + 0` ordering (kept from walking
the trail backwards) made the page find every one of the patient's records and sort them, which for a frequently
audited patient meant scanning the whole partition (400k records, patient in 5%: 7,038 pages, 44 ms, against 36
pages, 0.4 ms before; 172 ms at 50%). The API now pages the patient's own records from (patient_id, id DESC)
(migration 0011) and the searches naming the patient from the GIN index, each stopped at a page, merged by id.
Plan checks of what the API executed (EXPLAIN ANALYZE), not timings; and the same records, in the same order,
as the trail's filter gives them."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_event_list
from apps.audit.services import AuditEntry, audit_record_batch

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan is PostgreSQL's"),
]

HOT, RECORDS, PAGE = 1, 20_000, 50
TRAIL = AuditEvent._meta.db_table


def _trail() -> None:
    """20,000 reads, one in 20 about the HOT patient (written by SQL: the list reads rows, not seals), and three
    searches naming HOT among others, written as the API writes them."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO "{TRAIL}" (chain_id, seq, recorded_at, actor_type, actor_id, actor_name, action,
                resource_type, resource_id, patient_id, outcome, purpose_of_use, request_id, query_digest,
                served_from_cache, prev_hash, hash)
            SELECT 999, g, now() - interval '1 hour' + g * interval '10 ms', 'client', 1 + g %% 20, 'c', 'read',
                'Observation', '', CASE WHEN g %% 20 = 0 THEN %s ELSE 2 + g %% 2000 END, 'success', 'TREAT', '', '',
                false, '', ''
            FROM generate_series(1, %s) g""",  # noqa: S608
            [HOT, RECORDS],
        )
    audit_record_batch([
        AuditEntry(actor_type="client", actor_id=1, actor_name="c", action="search", resource_type="Patient",
                   patient_ids=[HOT, 7 + i])
        for i in range(3)
    ])  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{TRAIL}"')


def _scans(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _scans(child)


def test_a_frequently_audited_patients_pages_read_a_page_not_all_their_records(api, issue_token):
    _trail()
    expected = list(audit_event_list(patient_id=HOT).order_by("-id").values_list("id", flat=True))
    assert len(expected) == RECORDS // 20 + 3
    auditor = issue_token("audit:read")
    seen, url, pages = [], f"/api/v1/audit/?patient_id={HOT}&page_size={PAGE}", 0
    while url and pages < 3:  # the first page and two by cursor
        with CaptureQueriesContext(connection) as queries:
            response = api.get(url, HTTP_AUTHORIZATION=f"Bearer {auditor}")
        assert response.status_code == 200, response.content
        seen += [row["id"] for row in response.json()["results"]]
        url, pages = response.json()["next"], pages + 1
        reads = [q["sql"] for q in queries if f'FROM "{TRAIL}"' in q["sql"] and "ORDER BY" in q["sql"]]
        assert reads
        for sql in reads:
            with connection.cursor() as cursor:  # the statement as executed, its parameters inlined by Django
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
                plan = cursor.fetchone()[0]
            plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
            for node in _scans(plan):
                read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                assert not (node["Node Type"] == "Seq Scan" and read), plan  # (an empty month's is free)
                if node.get("Relation Name", node.get("Index Name", "")).startswith(TRAIL):
                    assert node["Actual Rows"] <= PAGE + 1, plan  # a page (and one to tell there is more)
    assert seen == expected[: len(seen)] and len(seen) == 3 * PAGE
    back = api.get(response.json()["previous"], HTTP_AUTHORIZATION=f"Bearer {auditor}")  # the cursor backwards
    assert [row["id"] for row in back.json()["results"]] == expected[PAGE : 2 * PAGE]


@pytest.mark.django_db(transaction=True)
def test_migration_0011_reruns_over_a_build_cut_short():
    """An invalid copy (a cancelled concurrent build, marked so by hand) is dropped and built again."""
    from django.core.management import call_command

    call_command("migrate", "audit", "0010", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE INDEX "audit_event_patient_page" ON ONLY "{TRAIL}" ("patient_id", "id" DESC)')
        cursor.execute(
            f'CREATE INDEX "{TRAIL}_default_patient_id_id_idx" ON "{TRAIL}_default" ("patient_id", "id" DESC)'
        )
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)",
            [f"{TRAIL}_default_patient_id_id_idx"],
        )
    call_command("migrate", "audit", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT x.indisvalid FROM pg_index x WHERE x.indexrelid = to_regclass('audit_event_patient_page') OR "
            "x.indexrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_event_patient_page'::regclass)"
        )
        valid = [row[0] for row in cursor.fetchall()]
    assert len(valid) >= 6 and all(valid), valid  # the parent's and each partition's copy
