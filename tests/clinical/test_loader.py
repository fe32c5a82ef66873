"""`load_synthetic`: deterministic, realistic, fast (COPY), refusing to load the same patients twice."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.clinical.codes import OBSERVATION_CODES, VITAL_SIGNS
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient
from apps.clinical.synthetic import generate_patient

END = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_generation_is_deterministic():
    first = generate_patient(seed=3, index=41, end=END, days=2, rounds_per_day=4)
    again = generate_patient(seed=3, index=41, end=END, days=2, rounds_per_day=4)
    other = generate_patient(seed=4, index=41, end=END, days=2, rounds_per_day=4)
    assert first == again
    assert first != other


def test_values_are_plausible_and_units_are_ucum():
    for index in range(200):
        record = generate_patient(seed=1, index=index, end=END, days=2, rounds_per_day=4)
        for observation in record.observations:
            known = OBSERVATION_CODES[observation.code]
            assert observation.unit == known.unit
            assert observation.effective_at <= END
            if observation.value is not None:
                assert known.low <= observation.value <= known.high, (observation.code, observation.value)


def test_ages_follow_a_general_hospitals_mix():
    ages = [
        (END.date() - generate_patient(seed=1, index=i, end=END, days=1, rounds_per_day=1).patient.birth_date).days
        / 365.25
        for i in range(2000)
    ]
    shares = [
        sum(low <= age < high for age in ages) / len(ages) for low, high in ((0, 3), (3, 18), (18, 65), (65, 101))
    ]
    assert shares == pytest.approx([0.10, 0.06, 0.44, 0.40], abs=0.03)
    assert min(ages) > 0 and max(ages) <= 100.01


def test_infants_get_every_vital_sign_code():
    infants = (
        record
        for index in range(400)
        if (record := generate_patient(seed=1, index=index, end=END, days=1, rounds_per_day=2)).patient.birth_date
        > END.date().replace(year=END.year - 3)
    )
    assert {o.code for o in next(infants).observations if o.category == "vital-signs"} == set(VITAL_SIGNS)


@pytest.mark.django_db
def test_command_loads_with_copy_and_reports_rate():
    out = StringIO()
    call_command("load_synthetic", "--patients", "40", "--days", "1", "--seed", "9", "--no-progress",
                 "--batch-size", "15", stdout=out)  # fmt: skip
    assert Patient.objects.count() == 40 and Encounter.objects.count() == 40
    observations = Observation.objects.count()
    assert observations > 40 * 40
    assert MedicationRequest.objects.exists()
    assert f"{observations:,} observations" in out.getvalue()
    assert "observation rows/s" in out.getvalue()
    with pytest.raises(CommandError, match="already loaded"):
        call_command("load_synthetic", "--patients", "40", "--seed", "9", "--no-progress", stdout=StringIO())
    call_command("load_synthetic", "--patients", "5", "--seed", "9", "--first-index", "40", "--no-progress",
                 stdout=StringIO())  # fmt: skip
    assert Patient.objects.count() == 45


@pytest.mark.django_db
def test_a_load_over_an_earlier_loads_middle_is_refused_before_it_writes():
    """Indexes 0-59 after 20-29: neither end was loaded, so only the ends' check let it start, and it stopped
    on a unique violation (an IntegrityError traceback) after committing its first batches."""
    call_command("load_synthetic", "--patients", "10", "--days", "1", "--seed", "9", "--first-index", "20",
                 "--no-progress", stdout=StringIO())  # fmt: skip
    before = (Patient.objects.count(), Observation.objects.count())
    with pytest.raises(CommandError, match="already loaded, in whole or in part") as refused:
        call_command("load_synthetic", "--patients", "60", "--days", "1", "--seed", "9", "--batch-size", "10",
                     "--no-progress", stdout=StringIO())  # fmt: skip
    # It names the first free index, not an MRN it found (no identifier in what ends up in logs).
    assert "--first-index 30 " in str(refused.value) and "S009-" not in str(refused.value)
    assert (Patient.objects.count(), Observation.objects.count()) == before
    # Another seed's range, or the same seed's next one, loads.
    call_command("load_synthetic", "--patients", "20", "--days", "1", "--seed", "9", "--no-progress",
                 stdout=StringIO())  # fmt: skip
    assert Patient.objects.count() == before[0] + 20


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args", [["--patients", "0"], ["--patients", "5", "--seed", "5000"], ["--patients", "5", "--days", "0"]]
)
def test_command_rejects_bad_arguments(args):
    with pytest.raises(CommandError):
        call_command("load_synthetic", *args, "--no-progress", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_parallel_workers_load_disjoint_ranges():
    out = StringIO()
    call_command("load_synthetic", "--patients", "60", "--days", "1", "--seed", "11", "--workers", "2",
                 "--batch-size", "10", "--no-progress", stdout=out)  # fmt: skip
    mrns = list(Patient.objects.values_list("mrn", flat=True))
    assert len(mrns) == len(set(mrns)) == 60
    assert sorted(mrns)[0] == "S011-0000000" and sorted(mrns)[-1] == "S011-0000059"
    assert Encounter.objects.count() == 60
    assert Observation.objects.values("patient_id").distinct().count() == 60


@pytest.mark.django_db
def test_a_load_skips_foreign_key_checks_only_for_its_own_rows():
    """The COPY batches switch trigger checks off (their parents are written first, in the same transaction)
    and back on: the caller's transaction keeps its checks, and every loaded row has its parents."""
    from django.db import IntegrityError, connection, transaction

    call_command("load_synthetic", "--patients", "12", "--days", "1", "--seed", "12", "--no-progress",
                 "--batch-size", "5", stdout=StringIO())  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('session_replication_role')")
        assert cursor.fetchone()[0] == "origin"
        cursor.execute(
            "SELECT count(*) FROM clinical_observation o LEFT JOIN clinical_patient p ON p.id = o.patient_id "
            "LEFT JOIN clinical_encounter e ON e.id = o.encounter_id WHERE p.id IS NULL OR e.id IS NULL"
        )
        assert cursor.fetchone()[0] == 0
    observation = Observation.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Observation.objects.filter(pk=observation.pk).update(patient_id=10**12)  # no such patient
        connection.check_constraints()  # the deferred check, now rather than at commit


def _loaded_rows() -> list[tuple]:
    """Every loaded row by content (not by id), in a stable order."""
    observations = Observation.objects.order_by("patient__mrn", "effective_at", "code").values_list(
        "patient__mrn", "encounter__period_start", "category", "code", "value", "unit", "components",
        "effective_at", "status",
    )  # fmt: skip
    medications = MedicationRequest.objects.order_by("patient__mrn", "authored_at", "rxnorm_code").values_list(
        "patient__mrn", "rxnorm_code", "display", "status", "intent", "authored_at", "dosage_text"
    )
    patients = Patient.objects.order_by("mrn").values_list("mrn", "family_name", "given_name", "birth_date", "sex")
    return [*patients, *observations, *medications]


@pytest.mark.django_db
def test_the_embedded_databases_writer_stores_what_copy_stores(monkeypatch):
    """SQLite (`make run`) loads through plain INSERTs; on PostgreSQL, forced, they must store the same rows."""
    from apps.clinical import loader

    load = ("load_synthetic", "--patients", "6", "--days", "1", "--seed", "13", "--end", END.isoformat(),
            "--no-progress")  # fmt: skip
    call_command(*load, stdout=StringIO())
    copied = _loaded_rows()
    for model in (Observation, MedicationRequest, Encounter, Patient):
        model.objects.all().delete()
    monkeypatch.setattr(loader, "_copy_batch", loader._insert_batch)
    call_command(*load, stdout=StringIO())
    inserted = _loaded_rows()
    assert len(copied) > 6 * 40
    assert any(len(row) == 9 and row[6] for row in copied)  # blood pressure's components, through both writers
    assert inserted == copied


# Run on SQLite in a process of its own: each loaded observation's stored text is what Django's fields
# would have written (so the ORM, JSON lookups and the compiled searches read it as before).
_SQLITE_STORAGE_CHECK = """
from django.db import connection
from apps.clinical.models import Observation
columns = ("components", "effective_at")
fields = [Observation._meta.get_field(name) for name in columns]
loaded = Observation.objects.in_bulk()
with connection.cursor() as cursor:
    # CAST: the raw text, past the sqlite3 converters Django registers for declared column types
    cursor.execute("SELECT id, CAST(components AS TEXT), CAST(effective_at AS TEXT) FROM clinical_observation")
    stored = cursor.fetchall()
wrong = [
    (pk, name, text, field.get_db_prep_save(getattr(loaded[pk], field.attname), connection))
    for pk, *texts in stored
    for name, field, text in zip(columns, fields, texts)
    if text != field.get_db_prep_save(getattr(loaded[pk], field.attname), connection)
]
panels = Observation.objects.filter(code="85354-9").count()
with_systolic = Observation.objects.filter(components__has_key="8480-6").count()
print("rows", len(stored), "panels", panels, "with_systolic", with_systolic)
print("wrong", wrong[:3])
"""


def test_sqlite_stores_loaded_observations_as_djangos_fields_would(tmp_path):
    from tests.helpers import embedded_env, manage

    env = embedded_env(tmp_path)
    for command in (
        ("migrate", "--noinput", "-v0"),
        ("load_synthetic", "--patients", "3", "--days", "1", "--no-progress"),
    ):
        done = manage(*command, env=env)
        assert done.returncode == 0, done.stderr
    check = manage("shell", "-c", _SQLITE_STORAGE_CHECK, env=env)
    assert check.returncode == 0, check.stderr
    rows, panels, with_systolic = (int(word) for word in check.stdout.split("\n")[-3].split()[1::2])
    assert rows > 3 * 30 and panels > 0 and with_systolic == panels
    assert check.stdout.splitlines()[-1] == "wrong []"
