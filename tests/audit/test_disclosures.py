"""Accounting of disclosures: every patient a response disclosed is findable in the trail, searches that
span patients included, and the list of them is sealed in the hash chain."""

import hashlib
import hmac
import importlib
import os
import subprocess
import sys
from datetime import date

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify, audit_event_list
from apps.audit.services import audit_record, audit_record_batch
from apps.clinical.services import patient_create
from apps.metrics.recorder import recorder
from tests.audit.helpers import run_verify, ward_app_entry
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def smiths(db):
    """Three patients one name search finds, and one it does not."""
    born = date(1980, 1, 2)
    found = [
        patient_create(mrn=f"MRN-00070{i}", family_name="Smithson", given_name=given, birth_date=born, sex="female")
        for i, given in enumerate(["Ada", "Bea", "Cy"])
    ]
    patient_create(mrn="MRN-000799", family_name="Jones", given_name="Dee", birth_date=born, sex="male")
    return found


def _search(api, how: str):
    if how == "rest":
        return api.get("/api/v1/patients/", {"name": "Smiths"})
    if how == "window":
        return api.get("/api/v1/patients/window/", {"family": "Smiths"})
    if how == "fhir":
        return api.get("/fhir/Patient", {"name": "Smiths"})
    if how == "fhir-birthdate":
        return api.get("/fhir/Patient", {"birthdate": "1980-01-02", "family": "Smiths"})
    return api.post("/fhir/Patient/_search", "name=Smiths", content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("how", ["rest", "window", "fhir", "fhir-birthdate", "fhir-post"])
def test_a_search_disclosing_three_patients_is_found_by_each_ones_filter(api, issue_token, smiths, how):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    response = _search(api, how)
    assert response.status_code == 200, response.content
    search = AuditEvent.objects.order_by("-id").first()
    assert search.action == "search" and search.result_count == 3 and search.patient_id is None
    assert search.patient_ids == sorted(patient.pk for patient in smiths)

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('audit:read')}")
    for patient in smiths:
        listed = api.get("/api/v1/audit/", {"patient_id": patient.pk}).json()["results"]
        assert search.pk in [event["id"] for event in listed], (how, patient.pk)
    jones = api.get("/api/v1/audit/", {"patient_id": smiths[-1].pk + 1}).json()["results"]
    assert search.pk not in [event["id"] for event in jones]


@pytest.mark.parametrize("how", ["rest", "window", "fhir", "fhir-post"])
def test_a_search_disclosing_one_patient_records_it_as_a_read_does(api, issue_token, smiths, how):
    """One disclosure, one shape whichever view writes it: REST kept a one-row search as a list of one,
    FHIR as patient_id, and anything reading patient_id alone saw only the FHIR one."""
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    search = {"rest": lambda: api.get("/api/v1/patients/", {"family": "Smithson", "given": "Ada"}),
              "window": lambda: api.get("/api/v1/patients/window/", {"family": "Smithson", "given": "Ada"}),
              "fhir": lambda: api.get("/fhir/Patient", {"family": "Smithson", "given": "Ada"}),
              "fhir-post": lambda: api.post("/fhir/Patient/_search", "family=Smithson&given=Ada",
                                            content_type="application/x-www-form-urlencoded")}[how]  # fmt: skip
    assert search().status_code == 200
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.result_count, record.patient_id, record.patient_ids) == (1, smiths[0].pk, None)


def test_a_refused_search_naming_one_patient_twice_names_it_once(api, issue_token, smiths):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('audit:read')}")  # no patient:read
    pk = smiths[0].pk
    assert api.get("/fhir/Patient", {"_id": f"{pk},{pk}"}).status_code == 403
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.outcome, record.patient_id, record.patient_ids) == ("denied", pk, None)


def test_the_patient_filter_finds_single_reads_and_searches_alike(smiths):
    read, search, other = audit_record_batch(
        [
            ward_app_entry(patient_id=smiths[0].pk),
            ward_app_entry(action="search", patient_ids=[smiths[2].pk, smiths[0].pk]),
            ward_app_entry(action="search", patient_ids=[smiths[1].pk, smiths[2].pk]),
        ]
    )
    assert list(audit_event_list(patient_id=smiths[0].pk)) == [search, read]
    assert list(audit_event_list(patient_id=smiths[2].pk)) == [other, search]


@pytest.mark.parametrize(
    "edited",
    ["[1, 2]", "[1, 2, 3, 4]", "[3, 2, 1]", None, '["1", "2", "3"]', "[1.0, 2, 3]", "5", '{"1": 1}', "{}", "[]",
     '"1,2,3"', "true"],
)  # fmt: skip
def test_an_edited_list_of_disclosed_patients_fails_verify(edited):
    audit_record_batch([ward_app_entry(action="search", patient_ids=[3, 1, 2]), ward_app_entry(patient_id=5)])
    assert run_verify()[0] == 0
    with connection.cursor() as cursor:  # an attacker with database access, trigger off
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("UPDATE audit_auditevent SET patient_ids = %s::jsonb WHERE seq = 1", [edited])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    status, output = run_verify()
    assert status == 1 and "EDITED   record #1 of chain primary" in output, output


@pytest.mark.parametrize("added", ["[6]", '["6"]', "6", "{}", "false", '""'])
def test_a_list_added_to_a_single_read_fails_verify(added):
    audit_record_batch([ward_app_entry(patient_id=5)])
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("UPDATE audit_auditevent SET patient_ids = %s::jsonb WHERE seq = 1", [added])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    status, output = run_verify()
    assert status == 1 and "EDITED   record #1 of chain primary" in output, output


def test_records_sealed_before_the_list_existed_still_verify():
    """A record without a list hashes exactly as every record did before `patient_ids` was added (and, since
    migration 0012, the id of its key after the fields)."""
    (event,) = audit_record_batch([ward_app_entry(patient_id=5, result_count=1)])
    old_fields = ("chain_id", "seq", "recorded_at", "actor_type", "actor_id", "actor_name", "action",
                  "resource_type", "resource_id", "patient_id", "outcome", "source_ip", "purpose_of_use",
                  "request_id", "query_digest", "result_count", "served_from_cache", "prev_hash")  # fmt: skip
    row = AuditEvent.objects.values(*old_fields).get(pk=event.pk)
    canonical = {None: "", True: "1", False: "0"}
    parts = [
        row[name].isoformat(timespec="microseconds") if name == "recorded_at"
        else canonical[row[name]] if row[name] is None or isinstance(row[name], bool)
        else str(row[name])
        for name in old_fields
    ]  # fmt: skip
    parts.append(f"key:{event.key_id}")
    old_hash = hmac.new(settings.AUDIT_CHAIN_KEY.encode(), "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()
    assert event.hash == old_hash and run_verify()[0] == 0


@pytest.mark.parametrize("url", ["/api/v1/patients/{id}/", "/fhir/Patient/{id}"])
def test_a_single_read_costs_no_more_queries_and_keeps_no_list(api, issue_token, smiths, url):
    """Exactly the audit statements a cached single read made before the list existed (inside the test's
    transaction: the chain head, the INSERT, the head's update), and the same total as then (those with their
    savepoint and release; the token's lookup, when its cache entry is gone, is not the audit's)."""
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    api.get(url.format(id=smiths[0].pk))  # warm: the token and the card are cached from here on
    recorder.flush()
    with CaptureQueriesContext(connection) as queries:
        response = api.get(url.format(id=smiths[0].pk))
    assert response.status_code == 200
    statements = [query["sql"] for query in queries if "accounts_apiclient" not in query["sql"]]
    assert len(statements) == 5, [sql[:80] for sql in statements]
    assert sum("audit_" in sql for sql in statements) == 3
    event = AuditEvent.objects.order_by("-id").first()
    assert event.patient_id == smiths[0].pk and event.patient_ids is None


@pytest.mark.django_db(transaction=True)
def test_the_group_commit_writer_stores_and_seals_the_list():
    """The writer's own one-statement append (outside any transaction) keeps the list too."""
    event = audit_record(ward_app_entry(action="search", patient_ids=[9, 8, 9]))
    assert AuditEvent.objects.get(pk=event.pk).patient_ids == [8, 9]
    assert list(audit_event_list(patient_id=8)) == [AuditEvent.objects.get(pk=event.pk)]
    assert audit_chain_verify().ok


def test_the_migration_is_not_reversed_over_sealed_lists():
    """Reversing 0004 would drop lists the seals cover: refused once a record has one."""
    from django.apps import apps

    migration = importlib.import_module("apps.audit.migrations.0004_patient_ids")
    migration.refuse_to_drop_sealed_lists(apps, None)  # none yet: reversible
    audit_record_batch([ward_app_entry(action="search", patient_ids=[1, 2])])
    with pytest.raises(RuntimeError, match="patient_ids"):
        migration.refuse_to_drop_sealed_lists(apps, None)


def test_sqlite_keeps_and_finds_the_list(tmp_path):
    """The embedded default (`make run`) migrates and filters without GIN or jsonb."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_REPLICA_URL")}
    env["VAR_DIR"] = str(tmp_path)
    script = (
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from apps.audit.services import AuditEntry, audit_record_batch;"
        "from apps.audit.selectors import audit_event_list, audit_chain_verify;"
        "e = dict(actor_type='client', actor_id=1, actor_name='a', action='search', resource_type='Patient');"
        "audit_record_batch([AuditEntry(**e, patient_ids=[12, 3]), AuditEntry(**e, patient_id=3),"
        " AuditEntry(**e, patient_ids=[123])]);"
        "print(sorted(x.seq for x in audit_event_list(patient_id=3)), audit_chain_verify().ok)"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[1, 2] True"


def test_the_schema_says_the_list_is_of_patient_ids():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    field = schema["components"]["schemas"]["AuditEventOutput"]["properties"]["patient_ids"]
    assert field["type"] == "array" and field["items"]["type"] == "integer" and field["nullable"] is True


_FORM = "application/x-www-form-urlencoded"


def _count_only(api, how: str, resource: str, query: str):
    """One count-only search: GET with `_summary=count` or `_count=0`, or the same posted to `_search`."""
    count = "_count=0" if how.endswith("count0") else "_summary=count"
    if how.startswith("post"):
        return api.post(f"/fhir/{resource}/_search", f"{query}&{count}", content_type=_FORM)
    return api.get(f"/fhir/{resource}?{query}&{count}")


def _found_by_each(api, issue_token, record: AuditEvent, patients) -> None:
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('audit:read')}")
    for patient in patients:
        listed = api.get("/api/v1/audit/", {"patient_id": patient.pk}).json()["results"]
        assert record.pk in [event["id"] for event in listed], patient.pk


@pytest.mark.parametrize("how", ["get-summary", "get-count0", "post-summary", "post-count0"])
def test_a_count_only_patient_search_names_the_patients_its_total_counts(api, issue_token, smiths, how):
    """`Patient?family=..&birthdate=..&_summary=count` answers "are these people patients here?": its record
    said result_count 0 and named nobody, so no patient's accounting of disclosures found it."""
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    response = _count_only(api, how, "Patient", "family=Smiths&birthdate=1980-01-02")
    assert response.status_code == 200 and response.json()["total"] == 3 and "entry" not in response.json()
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.action, record.result_count, record.patient_id) == ("search", 3, None)
    assert record.patient_ids == sorted(patient.pk for patient in smiths)
    _found_by_each(api, issue_token, record, smiths)


@pytest.mark.parametrize("how", ["get-summary", "post-count0"])
def test_a_count_only_search_matching_one_patient_records_it_as_a_read_does(api, issue_token, smiths, how):
    """ "Is Ada Smithson, born 1980-01-02, a patient here?": total 1, recorded as that patient's disclosure."""
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    response = _count_only(api, how, "Patient", "family=Smithson&given=Ada&birthdate=1980-01-02")
    assert response.json()["total"] == 1
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.result_count, record.patient_id, record.patient_ids) == (1, smiths[0].pk, None)
    _found_by_each(api, issue_token, record, smiths[:1])


def test_a_count_only_search_matching_none_names_nobody(api, issue_token, smiths):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    assert _count_only(api, "get-summary", "Patient", "family=Nobody").json()["total"] == 0
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.result_count, record.patient_id, record.patient_ids) == (0, None, None)


def test_a_count_only_search_past_the_cap_names_the_first_patients_and_the_whole_total(
    api, issue_token, smiths, monkeypatch
):
    """A large total names the lowest ids up to the cap (a page's most, 1000; 2 here); the record's
    result_count, larger than its list, says the list is partial."""
    from apps.clinical.fhir import views

    monkeypatch.setattr(views, "COUNT_NAMES_AT_MOST", 2)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    assert _count_only(api, "get-summary", "Patient", "family=Smiths").json()["total"] == 3
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.result_count, record.patient_id) == (3, None)
    assert record.patient_ids == sorted(patient.pk for patient in smiths)[:2]


def test_the_count_cap_is_a_pages_most():
    from apps.clinical.fhir.params import MAX_COUNT
    from apps.clinical.fhir.views import COUNT_NAMES_AT_MOST

    assert COUNT_NAMES_AT_MOST == MAX_COUNT == 1000


@pytest.mark.parametrize("how", ["get-summary", "get-count0", "post-summary", "post-count0"])
def test_a_count_only_search_of_one_patients_observations_names_that_patient(api, issue_token, smiths, how):
    """ "How many heart rates has this patient had" names the patient, and keeps the total it disclosed."""
    from datetime import UTC, datetime, timedelta

    from apps.clinical.services import observation_record

    ada = smiths[0]
    now = datetime.now(UTC)
    for hours in (1, 2, 3):
        observation_record(patient=ada, code="8867-4", value=70 + hours, effective_at=now - timedelta(hours=hours))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read')}")
    response = _count_only(api, how, "Observation", f"patient={ada.pk}&code=8867-4")
    assert response.status_code == 200 and response.json()["total"] == 3
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.action, record.resource_type, record.result_count) == ("search", "Observation", 3)
    assert (record.patient_id, record.patient_ids) == (ada.pk, None)
    _found_by_each(api, issue_token, record, [ada])


def test_a_count_only_patient_search_costs_one_query_for_its_ids_and_total(api, issue_token, smiths):
    """Within the cap the ids are the total: the count-only path reads the patients once, no COUNT after."""
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    _count_only(api, "get-summary", "Patient", "family=Smiths")  # warm: the token is cached from here on
    with CaptureQueriesContext(connection) as queries:
        assert _count_only(api, "get-summary", "Patient", "family=Smiths").json()["total"] == 3
    reads = [query["sql"] for query in queries if 'FROM "clinical_patient"' in query["sql"]]
    assert len(reads) == 1 and "COUNT(" not in reads[0], reads


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_patient_window_past_the_end_of_its_matches_names_the_patients_its_count_counts(
    api, issue_token, smiths, method
):
    """`/api/v1/patients/window/` with an offset past its matches answers their count alone (`count: 3`,
    no rows), the same probe as FHIR's _summary=count: its record said result_count 0 and named nobody."""
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    search = {"family": "Smiths", "birth_date": "1980-01-02", "offset": 1000}
    if method == "post":
        response = api.post("/api/v1/patients/window/", search, format="json")
    else:
        response = api.get("/api/v1/patients/window/", search)
    assert response.status_code == 200 and response.json()["count"] == 3 and response.json()["results"] == []
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.action, record.result_count, record.patient_id) == ("search", 3, None)
    assert record.patient_ids == sorted(patient.pk for patient in smiths)
    _found_by_each(api, issue_token, record, smiths)


def test_a_patient_window_within_its_matches_still_names_its_rows_alone(api, issue_token, smiths):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    response = api.get("/api/v1/patients/window/", {"family": "Smiths", "offset": 1, "limit": 1})
    assert response.json()["count"] == 3
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.result_count, record.patient_id, record.patient_ids) == (1, smiths[1].pk, None)
