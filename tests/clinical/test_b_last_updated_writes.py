"""`updated_at` on Encounter, Observation and MedicationRequest (FHIR meta.lastUpdated, `_lastUpdated`, `$everything
?_since`): every write moves it, whatever wrote it (services, a save of some fields, a row read without it, a bulk
update in a shell, bulk_update); a writer that leaves it out (the loader's COPY, an older release's INSERT during a
rolling upgrade) gets the database's default; and the migration adds it without rewriting a table (PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.clinical.models import Encounter, MedicationRequest, Observation
from apps.clinical.services import observation_record, observation_retract
from tests.clinical.backdate import backdate

pytestmark = pytest.mark.django_db
OLD = datetime(2001, 6, 15, 12, tzinfo=UTC)


@pytest.fixture
def rows(patient):
    """One row of each type, all last updated long ago."""
    now = timezone.now()
    encounter = Encounter.objects.create(patient=patient, encounter_class="AMB", status="in-progress",
                                         period_start=now - timedelta(hours=3))  # fmt: skip
    observation = observation_record(patient=patient, code="8867-4", value=72, effective_at=now - timedelta(hours=1))
    request = MedicationRequest.objects.create(patient=patient, encounter=encounter, rxnorm_code="197361",
                                               display="Amlodipine 5 MG Oral Tablet", authored_at=now)  # fmt: skip
    found = {Encounter: encounter, Observation: observation, MedicationRequest: request}
    for model, row in found.items():
        backdate(model.objects.filter(pk=row.pk), OLD)  # a data repair's, with the trigger off (0009)
        assert model.objects.get(pk=row.pk).updated_at == OLD
    return found


NEXT_STATUS = {Encounter: "finished", Observation: "amended", MedicationRequest: "stopped"}
MODELS = list(NEXT_STATUS)


def _moved(model, pk, since: datetime) -> bool:
    return model.objects.get(pk=pk).updated_at >= since


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_save_of_some_fields_moves_it(rows, model):
    started = timezone.now()
    row = model.objects.get(pk=rows[model].pk)
    row.status = NEXT_STATUS[model]
    row.save(update_fields=["status"])
    assert _moved(model, row.pk, started)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_save_of_a_row_read_without_it_moves_it(rows, model):
    started = timezone.now()
    row = model.objects.only("status").get(pk=rows[model].pk)  # updated_at deferred: Django would not write it
    row.status = NEXT_STATUS[model]
    row.save()
    assert _moved(model, row.pk, started)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_bulk_update_in_a_shell_moves_it(rows, model):
    started = timezone.now()
    assert model.objects.filter(pk=rows[model].pk).update(status=NEXT_STATUS[model]) == 1
    assert _moved(model, rows[model].pk, started)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_bulk_update_moves_it(rows, model):
    started = timezone.now()
    row = model.objects.get(pk=rows[model].pk)
    row.status = NEXT_STATUS[model]
    model.objects.bulk_update([row], ["status"])
    assert _moved(model, row.pk, started)


def test_the_services_writes_set_it(patient, rows):
    started = timezone.now()
    recorded = observation_record(patient=patient, code="8867-4", value=70, effective_at=started)
    assert recorded.updated_at >= started and _moved(Observation, recorded.pk, started)
    observation_retract(patient=patient, observation_id=rows[Observation].pk)  # save(update_fields=["status"])
    assert _moved(Observation, rows[Observation].pk, started)


def test_the_loaders_copy_and_an_older_releases_insert_get_the_database_default(patient, loaded):
    started = timezone.now() - timedelta(minutes=1)  # the database's clock, not this process's
    for model in MODELS:
        assert model.objects.exists()
        assert not model.objects.filter(updated_at__isnull=True).exists()
        assert not model.objects.filter(updated_at__lt=started).exists(), model  # COPY named no updated_at
    with connection.cursor() as cursor:  # as a release before the column writes an encounter: without it
        cursor.execute(
            "INSERT INTO clinical_encounter (patient_id, encounter_class, status, period_start) "
            "VALUES (%s, 'AMB', 'finished', now()) RETURNING updated_at",
            [patient.pk],
        )
        [(stamp,)] = cursor.fetchall()
    assert stamp is not None and stamp >= started


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's table rewrite")
def test_adding_the_column_rewrites_no_table():
    """The migration's own statement, run on a table with rows: its file (the storage) stays the same, and every
    row reads the default stored once as the column's missing value. A volatile default (clock_timestamp()) would
    rewrite the table: minutes of an exclusive lock on 10M observations."""
    executor = MigrationExecutor(connection)
    migration = executor.loader.get_migration("clinical", "0004_clinical_rows_updated_at")
    statements = executor.loader.collect_sql([(migration, False)])
    [statement] = [sql for sql in statements if sql.startswith('ALTER TABLE "clinical_observation" ADD COLUMN')]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE b_rewrite_probe (id bigint) ON COMMIT DROP")
        cursor.execute("INSERT INTO b_rewrite_probe SELECT generate_series(1, 20000)")
        cursor.execute("SELECT pg_relation_filenode('b_rewrite_probe')")
        [(before,)] = cursor.fetchall()
        cursor.execute(statement.replace('"clinical_observation"', "b_rewrite_probe"))
        cursor.execute("SELECT pg_relation_filenode('b_rewrite_probe')")
        [(after,)] = cursor.fetchall()
        cursor.execute("SELECT atthasmissing FROM pg_attribute WHERE attrelid = 'b_rewrite_probe'::regclass "
                       "AND attname = 'updated_at'")  # fmt: skip
        [(missing,)] = cursor.fetchall()
        cursor.execute(
            "SELECT count(*) FILTER (WHERE updated_at IS NULL), count(DISTINCT updated_at) FROM b_rewrite_probe"
        )
        [(nulls, distinct)] = cursor.fetchall()
    assert after == before and missing is True
    assert (nulls, distinct) == (0, 1)
