"""Review d: `$everything?_since` pages are cut at the Bundle's meta.lastUpdated and the next sync from it serves
what changed after it; an empty panel's version follows every change of its membership (migration 0007); every
stamp is the database's clock, never going back; the panel codes migrations 0006 and 0007 hard-code are codes.py's."""

import importlib
import re
from datetime import timedelta
from unittest import mock
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.caching.stack import default_stack
from apps.clinical import selectors, services
from apps.clinical.codes import BP_PANEL, PANEL_CODES, PANEL_MEMBER_CODES, VITAL_PANEL, VITAL_SIGNS
from apps.clinical.models import Observation, Patient
from tests.helpers import in_thread, wait_for

pytestmark = pytest.mark.django_db


def _instant(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _walk(clinician, url: str, first: dict | None = None) -> tuple[int, list[str], list[dict]]:
    """Every page of a search (from its `first` page where given): its total, the ids served, the pages."""
    pages = [first or clinician.get(url).json()]
    following = next((link["url"] for link in pages[0]["link"] if link["relation"] == "next"), None)
    while following:
        pages.append(clinician.get(following.replace("http://testserver", "")).json())
        following = next((link["url"] for link in pages[-1]["link"] if link["relation"] == "next"), None)
    served = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for page in pages for e in page.get("entry", [])]
    return pages[0]["total"], served, pages


def _since_url(patient, since: str) -> str:
    return f"/fhir/Patient/{patient.pk}/$everything?_since={quote(since)}&_count=2&_type=Observation"


def test_a_row_changed_between_pages_is_served_by_the_next_sync_from_the_bundles_last_updated(
    clinician, patient, vitals, elsewhere
):
    since = timezone.now()
    changed = [v.pk for v in vitals[:4]]
    elsewhere(lambda: Observation.objects.filter(pk__in=changed).update(status="amended"))
    url = _since_url(patient, _instant(since))
    first = clinician.get(url).json()
    cut = first["meta"]["lastUpdated"]
    served = {e["resource"]["id"] for e in first["entry"]}
    not_yet = next(pk for pk in changed if str(pk) not in served)
    elsewhere(lambda: Observation.objects.filter(pk=not_yet).update(status="corrected"))  # before its page
    total, ids, pages = _walk(clinician, url, first)
    assert {page["meta"]["lastUpdated"] for page in pages} == {cut}  # every page names the cut it uses
    assert f"Observation/{not_yet}" not in ids  # changed after the cut: not this sync's
    assert total == 5 and len(ids) == 4
    # A client following the rule: the next `_since` is the Bundle's meta.lastUpdated. Was lost for good.
    _, again, _ = _walk(clinician, _since_url(patient, cut))
    assert f"Observation/{not_yet}" in again
    # Nothing changed meanwhile: the pages hold exactly `total`, each row once.
    total, ids, _ = _walk(clinician, _since_url(patient, _instant(since)))
    assert len(ids) == len(set(ids)) == total == 5


@pytest.mark.django_db(transaction=True)
def test_a_write_open_while_the_first_page_counts_is_in_the_next_sync(clinician, patient, vitals):
    """A transaction that stamped its row before the first page read and committed after it: the cut is no later
    than that transaction's start, so the next sync from the cut serves the row."""
    since = timezone.now()
    writer = _connect()
    try:
        with writer.cursor() as cursor:
            cursor.execute(
                "UPDATE clinical_observation SET status = 'amended' WHERE id = %s RETURNING updated_at", [vitals[0].pk]
            )
            (stamped,) = cursor.fetchone()
        first = clinician.get(_since_url(patient, _instant(since))).json()
        cut = first["meta"]["lastUpdated"]
        assert f"{vitals[0].pk}" not in {e["resource"]["id"] for e in first.get("entry", [])}
        assert cut <= _instant(stamped)
        writer.commit()
    finally:
        writer.close()
    default_stack().clear_local()
    _, ids, _ = _walk(clinician, _since_url(patient, cut))
    assert f"Observation/{vitals[0].pk}" in ids  # a cut at the latest stamp counted, or the clock, lost it


@pytest.fixture
def panel(patient):
    at = timezone.now() - timedelta(hours=1)
    row = Observation.objects.create(patient=patient, category="vital-signs", code=VITAL_PANEL, value=None, unit="",
                                     effective_at=at, status="final")  # fmt: skip
    heart = services.observation_record(patient=patient, code="8867-4", value=70, effective_at=at)
    services.observation_record(patient=patient, code="8310-5", value=36.6, unit="Cel", effective_at=at)
    pressure = Observation.objects.create(patient=patient, category="vital-signs", code=BP_PANEL, value=None, unit="",
                                          effective_at=at, status="final")  # fmt: skip
    systolic = services.observation_record(patient=patient, code="8480-6", value=120, effective_at=at)
    default_stack().clear_local()
    return row, heart, pressure, systolic


def _raw(sql: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


MEMBERSHIP_CHANGES = {
    "orm_delete": lambda heart, other: Observation.objects.filter(pk=heart.pk).delete(),
    "raw_delete": lambda heart, other: _raw("DELETE FROM clinical_observation WHERE id = %s", heart.pk),
    "orm_moved_instant": lambda heart, other: Observation.objects.filter(pk=heart.pk).update(
        effective_at=heart.effective_at + timedelta(minutes=1)
    ),
    "raw_moved_instant": lambda heart, other: _raw(
        "UPDATE clinical_observation SET effective_at = effective_at + interval '1 minute' WHERE id = %s", heart.pk
    ),
    "raw_moved_patient": lambda heart, other: _raw(
        "UPDATE clinical_observation SET patient_id = %s WHERE id = %s", other.pk, heart.pk
    ),
    "raw_moved_code": lambda systolic, other: _raw(
        "UPDATE clinical_observation SET code = '8867-4' WHERE id = %s", systolic.pk
    ),
    "raw_moved_category": lambda heart, other: _raw(
        "UPDATE clinical_observation SET category = 'laboratory' WHERE id = %s", heart.pk
    ),
}


@pytest.mark.parametrize("how", list(MEMBERSHIP_CHANGES))
def test_an_empty_panels_version_follows_every_membership_change(clinician, panel, elsewhere, how):
    row, heart, pressure, systolic = panel
    if how == "raw_moved_code":  # out of the blood pressure panel (the vital-signs one holds every code)
        row, heart = pressure, systolic
    other = services.patient_create(mrn="MRN-000999", family_name="Other", given_name="Ola",
                                    birth_date=heart.patient.birth_date)  # fmt: skip
    first = clinician.get(f"/fhir/Observation/{row.pk}")
    elsewhere(lambda: MEMBERSHIP_CHANGES[how](heart, other))
    again = clinician.get(f"/fhir/Observation/{row.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    fresh = clinician.get(f"/fhir/Observation/{row.pk}").json()
    assert fresh.get("hasMember") != first.json()["hasMember"]  # the resource did change
    assert again.status_code == 200  # was 304: the stale hasMember told current
    assert fresh["meta"]["lastUpdated"] > first.json()["meta"]["lastUpdated"]


def test_a_retraction_on_postgresql_writes_one_update_and_the_trigger_stamps_the_panel(clinician, panel, patient):
    row, heart, _, _ = panel
    before = Observation.objects.get(pk=row.pk).updated_at
    with CaptureQueriesContext(connection) as queries:
        services.observation_retract(patient=patient, observation_id=heart.pk)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1  # the member's; was 2, the services stamping the panel the trigger had stamped
    assert Observation.objects.get(pk=row.pk).updated_at > before


def test_last_updated_never_goes_back_across_clocks(clinician, patient, vitals, elsewhere):
    """The reviewer's repro: the app host 2 s behind the database saves after a bulk fix."""
    row = vitals[0]
    elsewhere(lambda: Observation.objects.filter(pk=row.pk).update(status="amended"))  # the database's clock
    seen = clinician.get(f"/fhir/Observation/{row.pk}").json()["meta"]["lastUpdated"]
    real_now = timezone.now
    with mock.patch("django.utils.timezone.now", lambda: real_now() - timedelta(seconds=2)):
        elsewhere(lambda: services.observation_retract(patient=patient, observation_id=row.pk))
    assert clinician.get(f"/fhir/Observation/{row.pk}").json()["meta"]["lastUpdated"] > seen  # was 2 s before
    sync = clinician.get(f"/fhir/Observation?patient={patient.pk}&status=entered-in-error"
                         f"&_lastUpdated=gt{quote(seen)}").json()  # fmt: skip
    assert [e["resource"]["id"] for e in sync.get("entry", [])] == [str(row.pk)]


def test_every_insert_and_save_is_stamped_by_the_database_and_the_instance_holds_it(patient):
    real_now = timezone.now
    with mock.patch("django.utils.timezone.now", lambda: real_now() - timedelta(hours=1)):
        recorded = services.observation_record(
            patient=patient, code="8867-4", value=70, effective_at=real_now() - timedelta(hours=2)
        )
        patient.given_name = "Anne"
        patient.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (database_now,) = cursor.fetchone()
    for model, instance in ((Observation, recorded), (Patient, patient)):
        stored = model.objects.values_list("updated_at", flat=True).get(pk=instance.pk)
        assert instance.updated_at == stored  # the response's meta is the row's
        assert database_now - stored < timedelta(minutes=10)  # not this host's clock, an hour behind
    _raw("INSERT INTO clinical_observation (patient_id, category, code, value, unit, effective_at, status,"
         " updated_at) VALUES (%s, 'vital-signs', '8867-4', 71, '/min', now(), 'final', '2001-01-01')",
         patient.pk)  # fmt: skip
    assert Observation.objects.order_by("-pk").values_list("updated_at", flat=True)[0].year > 2001


def test_a_stamp_never_goes_below_the_rows_last_one(patient):
    """A stamp written ahead of the database's clock (before migration 0007 by an app host's clock ahead, or a data
    repair's explicit value, which is kept): the next write moves the version on by a microsecond, not back."""
    row = services.observation_record(patient=patient, code="8867-4", value=70, effective_at=timezone.now())
    ahead = timezone.now() + timedelta(hours=1)
    Observation.objects.filter(pk=row.pk).update(updated_at=ahead)
    assert Observation.objects.get(pk=row.pk).updated_at == ahead
    Observation.objects.filter(pk=row.pk).update(status="amended")
    assert Observation.objects.get(pk=row.pk).updated_at == ahead + timedelta(microseconds=1)
    row.refresh_from_db()
    row.status = "corrected"
    row.save()
    assert row.updated_at == ahead + timedelta(microseconds=2) == Observation.objects.get(pk=row.pk).updated_at


def _connect():
    settings = connection.settings_dict
    return psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                           dbname=settings["NAME"], password=settings["PASSWORD"] or None)  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_writer_blocked_on_the_row_lock_never_stamps_it_back(patient, vitals):
    """B's statement starts, then waits for A's lock; A stamps the row later and commits; B's statement_timestamp()
    is below A's stamp (was written as is: the version went back, and `_lastUpdated=gt<A's>` missed B's write)."""
    row = vitals[0].pk
    first, second = _connect(), _connect()
    try:
        first.execute("SELECT id FROM clinical_observation WHERE id = %s FOR UPDATE", [row])
        blocked = in_thread(lambda: second.execute("UPDATE clinical_observation SET status = 'corrected' WHERE id = %s",
                                                   [row]))  # fmt: skip
        pid = second.info.backend_pid
        with _connect() as watcher:  # autocommit: pg_stat_activity is read once a transaction
            watcher.autocommit = True
            query = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
            wait_for(lambda: watcher.execute(query, [pid]).fetchone()[0] == "Lock", 120, "B waiting on A's lock")
        (stamped,) = first.execute(
            "UPDATE clinical_observation SET status = 'amended' WHERE id = %s RETURNING updated_at", [row]
        ).fetchone()
        first.commit()
        blocked.join(timeout=120)
        second.commit()
    finally:
        first.close()
        second.close()
    assert Observation.objects.get(pk=row).updated_at > stamped


def _migration(name: str):
    return importlib.import_module(f"apps.clinical.migrations.{name}")


def test_the_panel_codes_in_the_migrations_are_codes_pys():
    """0006 and 0007 write PANEL_MEMBER_CODES and EMPTY_PANEL into SQL: a code added to a panel there must come
    with a migration that replaces the trigger's function."""
    assert set(PANEL_MEMBER_CODES) == PANEL_CODES == {VITAL_PANEL, BP_PANEL}
    assert PANEL_MEMBER_CODES[VITAL_PANEL] is None  # "every vital sign but the panel": `code <> '<panel>'`
    members = PANEL_MEMBER_CODES[BP_PANEL]
    latest = _migration("0007_clinical_one_clock_and_panel_membership")
    assert (latest.VITAL_PANEL, latest.BP_PANEL, set(latest.BP_MEMBERS)) == (VITAL_PANEL, BP_PANEL, members)
    assert members <= set(VITAL_SIGNS)
    # EMPTY_PANEL: a panel code, no value, components null or empty ([] or {}).
    empty = str(selectors.EMPTY_PANEL)
    assert "value__isnull" in empty and "('components', [])" in empty and "('components', {})" in empty
    assert set(latest.EMPTY_COMPONENTS) == {"null", "[]", "{}"}
    # 0006's SQL spells the same codes.
    sql = _migration("0006_clinical_panels_stamped_by_member_updates").CREATE
    assert re.search(r"code <> '([^']+)'", sql).group(1) == VITAL_PANEL
    assert set(re.findall(r"'([0-9-]+)'", re.search(r"code IN \(([^)]*)\)", sql).group(1))) == members
    assert re.findall(r"panel\.code = '([^']+)'", sql) == [VITAL_PANEL, BP_PANEL]
    for module in (_migration("0006_clinical_panels_stamped_by_member_updates"), latest):
        source = module.__doc__ + "".join(v for v in vars(module).values() if isinstance(v, str))
        assert set(re.findall(r"'(\d{4,5}-\d)'", source)) <= {VITAL_PANEL, BP_PANEL, *members}


_SQLITE_SYNC = """
from datetime import timedelta
from urllib.parse import quote
from django.utils import timezone
from rest_framework.test import APIClient
from apps.accounts.services import api_client_create
from apps.clinical import services
from apps.clinical.models import Observation
token = api_client_create(name="sqlite-probe", scopes=["patient:read", "clinical:read"]).token
client = APIClient()
client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
client.defaults["SERVER_NAME"] = "localhost"
patient = services.patient_create(mrn="S-1", family_name="Lite", given_name="Sue", birth_date=timezone.localdate()
                                  - timedelta(days=9000))
since = timezone.now().isoformat().replace("+00:00", "Z")
row = services.observation_record(patient=patient, code="8867-4", value=70, effective_at=timezone.now())
url = f"/fhir/Patient/{patient.pk}/$everything?_type=Observation&_since="
first = client.get(url + quote(since)).json()
print("first", [e["resource"]["id"] for e in first["entry"]] == [str(patient.pk), str(row.pk)], first["total"])
Observation.objects.filter(pk=row.pk).update(status="amended")
again = client.get(url + quote(first["meta"]["lastUpdated"])).json()
print("next", [e["resource"]["id"] for e in again["entry"]] == [str(patient.pk), str(row.pk)])
"""


@pytest.mark.slow
def test_sqlite_since_pages_carry_the_cut_and_the_next_sync_serves_a_change(tmp_path):
    """`make run`'s database: no trigger, the cut is this host's clock."""
    from tests.helpers import embedded_env, manage

    env = embedded_env(tmp_path)
    done = manage("migrate", "--noinput", "-v0", env=env)
    assert done.returncode == 0, done.stderr
    check = manage("shell", "-c", _SQLITE_SYNC, env=env)
    assert check.returncode == 0, check.stderr
    assert [line for line in check.stdout.splitlines() if line.startswith(("first", "next"))] == [
        "first True 2",
        "next True",
    ]
