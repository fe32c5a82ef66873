"""`updated_at` (FHIR's meta.versionId, lastUpdated, ETag, `_lastUpdated`, `$everything?_since`) follows every write
that changes what FHIR serves (review h): an empty panel's hasMember when a member is recorded or retracted, an
upsert, an older release's save of some fields, raw SQL (PostgreSQL's trigger, migration 0005); SQLite's stored
instants compare with the row's own lastUpdated; `$lastn`'s cache key moved with its answers' meta; a later
`$everything?_since` page serves only what the first page counted."""

from datetime import timedelta
from urllib.parse import quote, urlencode

import pytest
from django.db import connection
from django.utils import timezone

from apps.caching.stack import default_stack, get_or_load
from apps.clinical import services
from apps.clinical.codes import VITAL_PANEL
from apps.clinical.models import CachedClinicalModel, Observation, Patient
from apps.clinical.services import patient_scope

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's trigger (migration 0005)")


def _instant(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def panel(patient):
    """An empty vital-signs panel and its two members, an hour ago (as the loader writes a round of vitals)."""
    at = timezone.now() - timedelta(hours=1)
    row = Observation.objects.create(patient=patient, category="vital-signs", code=VITAL_PANEL, value=None, unit="",
                                     effective_at=at, status="final")  # fmt: skip
    heart = services.observation_record(patient=patient, code="8867-4", value=70, effective_at=at)
    temperature = services.observation_record(patient=patient, code="8310-5", value=36.6, unit="Cel", effective_at=at)
    return row, heart, temperature


def test_retracting_a_member_moves_its_panels_version(clinician, patient, panel, elsewhere):
    row, heart, temperature = panel
    default_stack().clear_local()
    first = clinician.get(f"/fhir/Observation/{row.pk}")
    assert [m["reference"] for m in first.json()["hasMember"]] == [f"Observation/{heart.pk}",
                                                                   f"Observation/{temperature.pk}"]  # fmt: skip
    since = timezone.now()
    elsewhere(lambda: services.observation_retract(patient=patient, observation_id=heart.pk))

    fresh = clinician.get(f"/fhir/Observation/{row.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert fresh.status_code == 200  # was 304: the old hasMember confirmed as current
    assert fresh.json()["hasMember"] == [{"reference": f"Observation/{temperature.pk}"}]
    assert fresh["ETag"] != first["ETag"]
    assert fresh.json()["meta"]["versionId"] != first.json()["meta"]["versionId"]

    query = urlencode({"patient": patient.pk, "_lastUpdated": f"gt{_instant(since)}"})
    found = clinician.get(f"/fhir/Observation?{query}&status=final,entered-in-error").json()
    assert {e["resource"]["id"] for e in found["entry"]} == {str(row.pk), str(heart.pk)}

    synced = clinician.get(f"/fhir/Patient/{patient.pk}/$everything?_since={quote(_instant(since))}").json()
    served = {(e["resource"]["resourceType"], e["resource"]["id"]): e["resource"] for e in synced["entry"]}
    assert set(served) == {("Patient", str(patient.pk)), ("Observation", str(row.pk)), ("Observation", str(heart.pk))}
    assert served["Observation", str(heart.pk)]["status"] == "entered-in-error"  # the client learns of it
    assert synced["total"] == 3


def test_recording_a_member_moves_its_panels_version(clinician, patient, panel, elsewhere):
    row, heart, _ = panel
    first = clinician.get(f"/fhir/Observation/{row.pk}")
    elsewhere(
        lambda: services.observation_record(patient=patient, code="9279-1", value=16, effective_at=heart.effective_at)
    )
    fresh = clinician.get(f"/fhir/Observation/{row.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert fresh.status_code == 200 and len(fresh.json()["hasMember"]) == 3


def test_a_reading_at_another_instant_leaves_the_panel_alone(clinician, patient, panel, elsewhere):
    row, heart, _ = panel
    before = Observation.objects.get(pk=row.pk).updated_at
    later = heart.effective_at + timedelta(minutes=5)
    elsewhere(lambda: services.observation_record(patient=patient, code="8867-4", value=72, effective_at=later))
    assert Observation.objects.get(pk=row.pk).updated_at == before


def test_an_upsert_moves_the_version(clinician, patient, elsewhere):
    default_stack().clear_local()
    first = clinician.get(f"/fhir/Patient/{patient.pk}")
    before = Patient.objects.get(pk=patient.pk).updated_at

    def upsert():
        Patient.objects.bulk_create(
            [Patient(identifier_system=patient.identifier_system, mrn=patient.mrn, family_name="Schmidt",
                     given_name="Anna", family_search="schmidt", given_search="anna", birth_date=patient.birth_date,
                     sex=patient.sex)],
            update_conflicts=True, unique_fields=["identifier_system", "mrn"],
            update_fields=["family_name", "family_search"],
        )  # fmt: skip

    elsewhere(upsert)
    row = Patient.objects.get(pk=patient.pk)
    assert row.family_name == "Schmidt" and row.updated_at > before
    fresh = clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert fresh.status_code == 200 and fresh.json()["name"][0]["family"] == "Schmidt"


@postgresql_only
def test_an_older_releases_save_of_some_fields_moves_the_version(clinician, patient, vitals, elsewhere):
    row = vitals[0]
    first = clinician.get(f"/fhir/Observation/{row.pk}")

    def old_release_retract():  # the previous release's observation_retract, during a rolling upgrade
        obs = Observation.objects.get(pk=row.pk)
        obs.status = "entered-in-error"
        CachedClinicalModel.save(obs, update_fields=["status"])  # no updated_at in it

    elsewhere(old_release_retract)
    fresh = clinician.get(f"/fhir/Observation/{row.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert fresh.status_code == 200 and fresh.json()["status"] == "entered-in-error"


@postgresql_only
def test_raw_sql_moves_the_version_and_a_no_op_does_not(clinician, patient, vitals, elsewhere):
    row = vitals[1]
    first = clinician.get(f"/fhir/Observation/{row.pk}")
    before = Observation.objects.get(pk=row.pk).updated_at

    def raw(sql):
        def write():
            with connection.cursor() as cursor:
                cursor.execute(sql, [row.pk])  # a read by id is not cached: nothing stale to drop

        return write

    elsewhere(raw("UPDATE clinical_observation SET status = status WHERE id = %s"))  # changes nothing
    assert Observation.objects.get(pk=row.pk).updated_at == before
    elsewhere(raw("UPDATE clinical_observation SET value = 99 WHERE id = %s"))
    assert Observation.objects.get(pk=row.pk).updated_at > before
    fresh = clinician.get(f"/fhir/Observation/{row.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert fresh.status_code == 200 and fresh.json()["valueQuantity"]["value"] == 99
    # A write that sets it itself keeps what it set (the ORM's), if later than the row's (0009: never back).
    now = Observation.objects.get(pk=row.pk).updated_at
    kept = now + timedelta(days=1)
    Observation.objects.filter(pk=row.pk).update(value=98, updated_at=kept)
    assert Observation.objects.get(pk=row.pk).updated_at == kept


def test_lastn_answers_cached_by_the_previous_release_are_not_served(clinician, patient, vitals):
    default_stack().clear_local()
    # What the previous release cached for this request, under its key: resources without meta.
    without_meta = [{"resourceType": "Observation", "id": str(vitals[-1].pk), "status": "final"}]
    key = ["lastn-1", patient.pk, ["vital-signs"], [], [], 1]
    get_or_load("vital_signs", key, lambda: without_meta, scope=patient_scope(patient.pk))
    default_stack().clear_local()  # another process: only the shared tier
    served = clinician.get(f"/fhir/Observation/$lastn?patient={patient.pk}&category=vital-signs").json()
    assert served["entry"] and all("meta" in entry["resource"] for entry in served["entry"])


def test_a_later_since_page_serves_only_what_the_first_counted(clinician, patient, vitals, elsewhere):
    since = timezone.now()
    elsewhere(lambda: Observation.objects.filter(pk__in=[vitals[-1].pk, vitals[-2].pk]).update(status="amended"))
    url = f"/fhir/Patient/{patient.pk}/$everything?_since={quote(_instant(since))}&_count=2&_type=Observation"
    first = clinician.get(url).json()
    assert first["total"] == 3  # the Patient and the two changed since
    served = [e["resource"]["id"] for e in first["entry"]]
    elsewhere(lambda: Observation.objects.filter(pk=vitals[0].pk).update(status="amended"))  # between pages
    following = next((link["url"] for link in first["link"] if link["relation"] == "next"), None)
    while following:
        page = clinician.get(following.replace("http://testserver", "")).json()
        served += [e["resource"]["id"] for e in page.get("entry", [])]
        following = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
    assert len(served) == first["total"]  # was 4 served of a total of 3
    assert str(vitals[0].pk) not in served  # the next sync, from this one's instant, finds it


_SQLITE_OWN_INSTANT = """
from urllib.parse import quote
from django.core.management import call_command
from rest_framework.test import APIClient
from apps.accounts.services import api_client_create
from apps.clinical.models import Encounter, Observation
token = api_client_create(name="sqlite-probe", scopes=["patient:read", "clinical:read"]).token
client = APIClient()
client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
client.defaults["SERVER_NAME"] = "localhost"
call_command("load_synthetic", "--patients", "2", "--days", "1", "--no-progress")  # in this shell: one start less
encounter = Encounter.objects.order_by("id").first()
Encounter.objects.filter(pk=encounter.pk).update(status="finished")  # a bulk fix: StampedQuerySet.update
for model, row in ((Observation, Observation.objects.order_by("id").first()), (Encounter, encounter)):
    name = model.__name__
    last_updated = client.get(f"/fhir/{name}/{row.pk}").json()["meta"]["lastUpdated"]
    for prefix in ("eq", "ge", "le"):
        url = f"/fhir/{name}?patient={row.patient_id}&_lastUpdated={prefix}{quote(last_updated)}&_count=500"
        ids = [entry["resource"]["id"] for entry in client.get(url).json().get("entry", [])]
        print(name, prefix, str(row.pk) in ids)
"""


@pytest.mark.slow
def test_sqlite_finds_a_row_by_its_own_last_updated(tmp_path):
    """`make run`'s database: a loader row (the database default) and a bulk fix's (`.update()`) are found by
    `_lastUpdated=eq|ge|le<their own meta.lastUpdated>` (eq and ge missed both: millisecond text sorted below)."""
    from tests.helpers import embedded_env, manage

    env = embedded_env(tmp_path)
    done = manage("migrate", "--noinput", "-v0", env=env)
    assert done.returncode == 0, done.stderr
    check = manage("shell", "-c", _SQLITE_OWN_INSTANT, env=env)
    assert check.returncode == 0, check.stderr
    found = [line for line in check.stdout.splitlines() if line.startswith(("Observation ", "Encounter "))]
    assert found == [f"{name} {prefix} True" for name in ("Observation", "Encounter") for prefix in ("eq", "ge", "le")]
