"""Review h, round 2: an empty panel's version follows a member retracted outside the services (PostgreSQL's
statement trigger, migration 0006); `$everything?_since` cuts later pages at the highest stamp the first page
counted, not at a clock reading; SQLite's millisecond stamps from before 0005 are padded (0006); the previous
release's 7-value `$everything` cursor pages on."""

import importlib
import sqlite3
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock
from urllib.parse import parse_qs, quote, urlparse

import pytest
from django.db import connection
from django.http import QueryDict
from django.utils import timezone

from apps.caching.stack import default_stack
from apps.clinical import services
from apps.clinical.codes import BP_PANEL, VITAL_PANEL
from apps.clinical.fhir import views as fhir_views
from apps.clinical.fhir.params import decode_cursor, encode_cursor, search_binding
from apps.clinical.models import CachedClinicalModel, Observation

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's trigger (migration 0006)")


def _instant(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _walk(clinician, url: str) -> tuple[int, list[str]]:
    first = clinician.get(url).json()
    served = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in first.get("entry", [])]
    following = next((link["url"] for link in first.get("link", []) if link["relation"] == "next"), None)
    while following:
        page = clinician.get(following.replace("http://testserver", "")).json()
        served += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in page.get("entry", [])]
        following = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
    return first["total"], served


@pytest.fixture
def panel(patient):
    """An empty vital-signs panel and two members, an hour ago."""
    at = timezone.now() - timedelta(hours=1)
    row = Observation.objects.create(patient=patient, category="vital-signs", code=VITAL_PANEL, value=None, unit="",
                                     effective_at=at, status="final")  # fmt: skip
    heart = services.observation_record(patient=patient, code="8867-4", value=70, effective_at=at)
    temperature = services.observation_record(patient=patient, code="8310-5", value=36.6, unit="Cel", effective_at=at)
    default_stack().clear_local()
    return row, heart, temperature


def _changed(clinician, row, write, elsewhere):
    """The panel read before and after `write`; the old ETag's conditional read."""
    first = clinician.get(f"/fhir/Observation/{row.pk}")
    elsewhere(write)
    again = clinician.get(f"/fhir/Observation/{row.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    return first, again


@postgresql_only
def test_a_bulk_update_retraction_moves_its_panels_version(clinician, panel, elsewhere):
    row, heart, temperature = panel
    _, again = _changed(
        clinician, row, lambda: Observation.objects.filter(pk=heart.pk).update(status="entered-in-error"), elsewhere
    )
    assert again.status_code == 200  # was 304: the old hasMember confirmed as current
    assert again.json()["hasMember"] == [{"reference": f"Observation/{temperature.pk}"}]


@postgresql_only
def test_a_raw_sql_retraction_moves_its_panels_version(clinician, panel, elsewhere):
    row, _, temperature = panel

    def raw() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE clinical_observation SET status = 'entered-in-error' WHERE id = %s", [temperature.pk]
            )

    before = Observation.objects.get(pk=row.pk).updated_at
    _, again = _changed(clinician, row, raw, elsewhere)
    assert again.status_code == 200
    assert Observation.objects.get(pk=row.pk).updated_at > before


@postgresql_only
def test_an_older_releases_retraction_moves_its_panels_version(clinician, panel, elsewhere):
    row, heart, _ = panel

    def old_retract() -> None:  # the previous release: save(update_fields=["status"]), no _panels_touched
        member = Observation.objects.get(pk=heart.pk)
        member.status = "entered-in-error"
        CachedClinicalModel.save(member, update_fields=["status"])

    _, again = _changed(clinician, row, old_retract, elsewhere)
    assert again.status_code == 200


@postgresql_only
def test_the_trigger_stamps_only_the_panels_of_the_changed_members(patient, panel):
    row, heart, _ = panel
    at = heart.effective_at
    blood_pressure = Observation.objects.create(patient=patient, category="vital-signs", code=BP_PANEL, value=None,
                                                unit="", effective_at=at, status="final")  # fmt: skip
    elsewhere_panel = Observation.objects.create(patient=patient, category="vital-signs", code=VITAL_PANEL,
                                                 value=None, unit="", effective_at=at - timedelta(minutes=5),
                                                 status="final")  # fmt: skip
    stamps = dict(Observation.objects.filter(pk__in=[row.pk, blood_pressure.pk, elsewhere_panel.pk])
                  .values_list("pk", "updated_at"))  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clinical_observation SET value = 71 WHERE id = %s", [heart.pk])  # status unchanged
    assert Observation.objects.get(pk=row.pk).updated_at == stamps[row.pk]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clinical_observation SET status = 'amended' WHERE id = %s", [heart.pk])
    after = dict(Observation.objects.filter(pk__in=stamps).values_list("pk", "updated_at"))
    assert after[row.pk] > stamps[row.pk]  # the vital-signs panel holds a heart rate
    assert after[blood_pressure.pk] == stamps[blood_pressure.pk]  # the blood pressure panel does not
    assert after[elsewhere_panel.pk] == stamps[elsewhere_panel.pk]  # another instant


@pytest.mark.parametrize("behind", [0, 5])
def test_since_pages_serve_every_counted_row_whatever_this_hosts_clock(clinician, patient, vitals, elsewhere, behind):
    """This app host's clock `behind` seconds behind the database's, which stamped the rows (`.update()`: Now())."""
    since = timezone.now()
    elsewhere(lambda: Observation.objects.filter(pk__in=[v.pk for v in vitals[:3]]).update(status="amended"))
    real_now = timezone.now
    url = f"/fhir/Patient/{patient.pk}/$everything?_since={quote(_instant(since))}&_count=2&_type=Observation"
    with mock.patch.object(fhir_views.timezone, "now", lambda: real_now() - timedelta(seconds=behind)):
        total, served = _walk(clinician, url)
    assert total == 4 and len(served) == 4  # was 2 of 4 with the clock 5 s behind


def test_since_pages_serve_a_row_stamped_by_a_host_ahead(clinician, patient, vitals, elsewhere):
    """Another app host, its clock 30 s ahead, stamped the rows (auto_now writes its own clock)."""
    since = timezone.now()
    ahead = timezone.now() + timedelta(seconds=30)
    changed = Observation.objects.filter(pk__in=[v.pk for v in vitals[:3]])
    elsewhere(lambda: changed.update(status="amended", updated_at=ahead))
    url = f"/fhir/Patient/{patient.pk}/$everything?_since={quote(_instant(since))}&_count=2&_type=Observation"
    total, served = _walk(clinician, url)
    assert total == 4 and len(served) == 4  # was 2 of 4


def test_the_previous_releases_everything_cursor_pages_on(clinician, patient, vitals):
    url = f"/fhir/Patient/{patient.pk}/$everything?_count=2"
    first = clinician.get(url).json()
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    params = {name: values[0] for name, values in parse_qs(urlparse(following).query).items()}
    query = QueryDict(mutable=True)
    query.update(params)
    operation = f"Patient/{patient.pk}/$everything"
    binding = search_binding(operation, query) or operation
    values = decode_cursor(params["_cursor"], 8, binding)
    old = encode_cursor(values[:7], binding)  # the previous release's: no 8th value
    path = following.replace("http://testserver", "")
    current = clinician.get(path)
    previous = clinician.get(path.replace(params["_cursor"], old))
    assert previous.status_code == 200  # was 400 "not a cursor this server issued"
    assert [e["resource"]["id"] for e in previous.json()["entry"]] == [e["resource"]["id"]
                                                                       for e in current.json()["entry"]]  # fmt: skip


@pytest.mark.django_db(False)
def test_sqlite_millisecond_stamps_are_padded():
    """A SQLite database at 0004 (`make run`'s): Now()'s millisecond text sorts below Django's six digits for the same
    instant. The migration's forward step on a real SQLite database (the suite's is PostgreSQL)."""
    migration = importlib.import_module("apps.clinical.migrations.0006_clinical_panels_stamped_by_member_updates")
    database = sqlite3.connect(":memory:")
    for table in migration.TABLES:
        database.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, updated_at text)")
        database.execute(
            f"INSERT INTO {table} (updated_at) VALUES (?), (?)",  # noqa: S608 - the migration's table names
            ("2026-01-02 03:04:05.678", "2026-01-02 03:04:05.678901"),
        )
    editor = SimpleNamespace(connection=SimpleNamespace(vendor="sqlite"), execute=database.execute)
    migration.forward(None, editor)
    for table in migration.TABLES:
        stamps = [row[0] for row in database.execute(f"SELECT updated_at FROM {table} ORDER BY id")]  # noqa: S608
        assert stamps == ["2026-01-02 03:04:05.678000", "2026-01-02 03:04:05.678901"]
