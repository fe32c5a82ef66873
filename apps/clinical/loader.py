"""Bulk loading of synthetic patients: COPY on PostgreSQL, batched INSERTs elsewhere (SQLite)."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Max

from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient
from apps.clinical.services import search_form
from apps.clinical.synthetic import SyntheticPatient, generate_patients, synthetic_mrn


@dataclass
class LoadReport:
    patients: int = 0
    encounters: int = 0
    observations: int = 0
    medications: int = 0
    seconds: float = 0.0

    @property
    def observations_per_second(self) -> float:
        return self.observations / self.seconds if self.seconds else 0.0


class AlreadyLoaded(Exception):
    pass


def synthetic_ranges_missing(*, seed: int, count: int) -> list[tuple[int, int]]:
    """(first index, length) of each run of the seed's first `count` synthetic patients not loaded. A load
    stopped half-way leaves a hole in each of its processes' ranges, so a count of patients says nothing of
    where to resume."""
    if count <= 0:
        return []
    prefix = synthetic_mrn(seed, 0)[:5]  # "S001-": the MRN carries the index
    span = (synthetic_mrn(seed, 0), synthetic_mrn(seed, count - 1))
    mrns = Patient.objects.filter(identifier_system=settings.MRN_SYSTEM, mrn__range=span).values_list("mrn", flat=True)
    loaded = {int(mrn[len(prefix) :]) for mrn in mrns.iterator() if mrn[len(prefix) :].isdigit()}
    ranges: list[tuple[int, int]] = []
    for index in range(count):
        if index in loaded:
            continue
        if ranges and sum(ranges[-1]) == index:
            ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
        else:
            ranges.append((index, 1))
    return ranges


def synthetic_range_refuse_loaded(*, seed: int, first_index: int, patients: int) -> None:
    """AlreadyLoaded if any of the seed's patients `first_index` to `first_index + patients - 1` is stored: a
    caller may ask before it starts anything (the command, before drawing its progress bar); the load asks again."""
    first_mrn, last_mrn = synthetic_mrn(seed, first_index), synthetic_mrn(seed, first_index + patients - 1)
    # Any of the range, not only its ends: a load over an earlier one's middle (indexes 0-99 after 40-59)
    # otherwise stopped on a unique violation after committing its first batches. The MRNs of a seed are
    # fixed-width, so the range is one scan of the (system, MRN) index.
    synthetic = Patient.objects.filter(identifier_system=settings.MRN_SYSTEM, mrn__regex=r"^S[0-9]{3}-[0-9]{7}$")
    if synthetic.filter(mrn__range=(first_mrn, last_mrn)).exists():
        # The message names indexes, not MRNs (no patient identifier in output that ends up in logs), and the
        # first free index after this seed's loads, which is what the caller needs next (`make run` loads seed
        # 1's first DEMO_PATIENTS).
        seed_span = (synthetic_mrn(seed, 0), synthetic_mrn(seed, 9_999_999))
        highest = synthetic.filter(mrn__range=seed_span).aggregate(Max("mrn"))["mrn__max"]
        raise AlreadyLoaded(
            f"Synthetic patients of seed {seed} from index {first_index} to {first_index + patients - 1} are already "
            f"loaded, in whole or in part; use another --seed, or --first-index {int(highest[-7:]) + 1} (after the "
            f"highest index of seed {seed} loaded)."
        )


def synthetic_patients_load(
    *,
    patients: int,
    days: int,
    seed: int,
    end: datetime,
    rounds_per_day: int = 4,
    first_index: int = 0,
    batch_size: int = 1000,
    workers: int = 1,
    on_batch: Callable[[int, int], None] | None = None,
) -> LoadReport:
    """Generate and store `patients` synthetic patients, each batch one transaction.

    On PostgreSQL `workers` processes load disjoint index ranges over their own connections, so the
    generator and the database's index maintenance use every core. `on_batch(patients, observations)`
    reports progress as batches commit.
    """
    synthetic_range_refuse_loaded(seed=seed, first_index=first_index, patients=patients)
    options = {"days": days, "seed": seed, "end": end, "rounds_per_day": rounds_per_day, "batch_size": batch_size}
    started = time.perf_counter()
    # Worker processes commit on their own connections: not possible inside a caller's transaction.
    parallel = workers > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block
    if not parallel or patients < 2 * batch_size:
        report = _load_range(first_index=first_index, count=patients, on_batch=on_batch, **options)
    else:
        report = _load_in_processes(workers, first_index, patients, on_batch, options)
    report.seconds = time.perf_counter() - started
    return report


def _load_range(*, first_index: int, count: int, on_batch, **options) -> LoadReport:
    report = LoadReport()
    writer = _copy_batch if connection.vendor == "postgresql" else _insert_batch
    batch_size = options.pop("batch_size")
    generated = generate_patients(first_index=first_index, count=count, **options)
    while batch := list(itertools.islice(generated, batch_size)):
        before = report.observations
        try:
            with transaction.atomic():
                writer(batch, report)
        except Exception as exc:  # a unique violation: Django's IntegrityError, or psycopg's from COPY (unwrapped)
            _raise_if_overtaken(batch, options["seed"], exc)
            raise
        if on_batch:
            on_batch(len(batch), report.observations - before)
    return report


def _raise_if_overtaken(batch: list[SyntheticPatient], seed: int, exc: Exception) -> None:
    """AlreadyLoaded where another load, started after this one checked its range, stored some of the batch's
    patients first: the refusal a load over an earlier one gets, not the unique violation's traceback."""
    mrns = [record.patient.mrn for record in batch]
    try:
        overtaken = Patient.objects.filter(identifier_system=settings.MRN_SYSTEM, mrn__in=mrns).exists()
    except Exception:  # noqa: BLE001 - the connection is gone too: the original error says more
        return
    if overtaken:
        first, last = batch[0].patient.index, batch[-1].patient.index
        raise AlreadyLoaded(
            f"Another load stored synthetic patients of seed {seed} between index {first} and {last} meanwhile; "
            f"the batches committed before stay whole. Use another --seed or --first-index."
        ) from exc


def _worker(queue, first_index: int, count: int, options: dict) -> None:
    try:
        report = _load_range(
            first_index=first_index, count=count, on_batch=lambda p, o: queue.put(("batch", p, o)), **options
        )
        queue.put(("done", report.__dict__, None))
    except AlreadyLoaded as exc:
        queue.put(("already", None, str(exc)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the load
        queue.put(("error", None, f"{type(exc).__name__}: {exc}"))
    finally:
        connections.close_all()


def _load_in_processes(workers: int, first_index: int, patients: int, on_batch, options: dict) -> LoadReport:
    # Forked children must not share the parent's sockets: close the pool before forking.
    for conn in connections.all():
        if hasattr(conn, "close_pool"):
            conn.close_pool()
        conn.close()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    share, extra = divmod(patients, workers)
    processes, start = [], first_index
    for number in range(workers):
        count = share + (1 if number < extra else 0)
        processes.append(context.Process(target=_worker, args=(queue, start, count, options)))
        start += count
    for process in processes:
        process.start()
    report, finished, errors = LoadReport(), 0, []
    while finished < workers:
        kind, first, second = queue.get()
        if kind == "batch" and on_batch:
            on_batch(first, second)
        elif kind == "done":
            finished += 1
            for key in ("patients", "encounters", "observations", "medications"):
                setattr(report, key, getattr(report, key) + first[key])
        elif kind in ("error", "already"):
            finished += 1
            errors.append((kind, second))
    for process in processes:
        process.join()
    if errors:
        message = "; ".join(text for _, text in errors)
        raise AlreadyLoaded(message) if all(kind == "already" for kind, _ in errors) else RuntimeError(message)
    return report


def _reserve_ids(cursor, table: str, count: int) -> list[int]:
    cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count])
    return [row[0] for row in cursor.fetchall()]


def _copy(cursor, table: str, columns: Iterable[str], rows: Iterable[tuple]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _foreign_key_checks_off(cursor) -> str | None:
    """Switch this transaction's trigger-based checks off where the role may; the setting to restore.

    A batch writes its patients and encounters (ids reserved from their sequences) before the rows that
    refer to them, in one transaction, so every foreign key holds by construction. PostgreSQL would
    still look each parent up for every observation, twice (patient and encounter): about a third of
    a load's CPU on this machine. `session_replication_role = replica` skips those checks; only a
    superuser, or a role granted SET on it (PostgreSQL 15+), may use it: others keep the checks.
    """
    may_set = (
        "has_parameter_privilege('session_replication_role', 'SET')"
        if connection.pg_version >= 150000
        else "current_setting('is_superuser') = 'on'"
    )
    cursor.execute(f"SELECT current_setting('session_replication_role'), {may_set}")
    previous, allowed = cursor.fetchone()
    if not allowed:
        return None
    cursor.execute("SELECT set_config('session_replication_role', 'replica', true)")
    return previous


# The columns both writers give an observation, in the order of their rows.
_OBSERVATION_COLUMNS = (
    "patient_id", "encounter_id", "category", "code", "value", "unit", "components", "effective_at", "status",
)  # fmt: skip


def _copy_batch(batch: list[SyntheticPatient], report: LoadReport) -> None:
    now = datetime.now().astimezone()
    system = settings.MRN_SYSTEM
    with connection.cursor() as cursor:
        previous_role = _foreign_key_checks_off(cursor)
        patient_ids = _reserve_ids(cursor, Patient._meta.db_table, len(batch))
        encounter_ids = _reserve_ids(cursor, Encounter._meta.db_table, len(batch))
        _copy(
            cursor,
            Patient._meta.db_table,
            (
                "id",
                "identifier_system",
                "mrn",
                "family_name",
                "given_name",
                "family_search",
                "given_search",
                "birth_date",
                "sex",
                "is_deleted",
                "created_at",
            ),  # no updated_at: the column's default, the database's clock, as the observations' (migration 0008)
            (
                (
                    pid,
                    system,
                    r.patient.mrn,
                    r.patient.family_name,
                    r.patient.given_name,
                    search_form(r.patient.family_name),
                    search_form(r.patient.given_name),
                    r.patient.birth_date,
                    r.patient.sex,
                    False,
                    now,
                )
                for pid, r in zip(patient_ids, batch, strict=True)
            ),
        )
        _copy(
            cursor,
            Encounter._meta.db_table,
            ("id", "patient_id", "encounter_class", "status", "period_start", "period_end"),
            (
                (
                    eid,
                    pid,
                    r.encounter.encounter_class,
                    r.encounter.status,
                    r.encounter.period_start,
                    r.encounter.period_end,
                )
                for eid, pid, r in zip(encounter_ids, patient_ids, batch, strict=True)
            ),
        )
        observations = 0
        with cursor.copy(f"COPY {Observation._meta.db_table} ({', '.join(_OBSERVATION_COLUMNS)}) FROM STDIN") as copy:
            write = copy.write_row
            for pid, eid, r in zip(patient_ids, encounter_ids, batch, strict=True):
                for o in r.observations:
                    write((pid, eid, o.category, o.code, o.value, o.unit, o.components, o.effective_at, o.status))
                observations += len(r.observations)
        medications = [
            (pid, eid, m.rxnorm_code, m.display, m.status, m.intent, m.authored_at, m.dosage_text)
            for pid, eid, r in zip(patient_ids, encounter_ids, batch, strict=True)
            for m in r.medications
        ]
        _copy(
            cursor,
            MedicationRequest._meta.db_table,
            ("patient_id", "encounter_id", "rxnorm_code", "display", "status", "intent", "authored_at", "dosage_text"),
            medications,
        )
        if previous_role is not None:
            # Back on for the rest of the transaction (a caller's, in tests): the batch's rows were never
            # queued for checking. On an error the rollback restores it.
            cursor.execute("SELECT set_config('session_replication_role', %s, true)", [previous_role])
    report.patients += len(batch)
    report.encounters += len(batch)
    report.observations += observations
    report.medications += len(medications)


_OBSERVATION_INSERT_SQL = (  # only the model's table and the fixed column names are interpolated
    f"INSERT INTO {Observation._meta.db_table} ({', '.join(_OBSERVATION_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_OBSERVATION_COLUMNS))})"
)


def _insert_batch(batch: list[SyntheticPatient], report: LoadReport) -> None:
    """A batch through INSERTs, for databases without COPY (SQLite): the ORM returns the parents' ids."""
    system = settings.MRN_SYSTEM
    patients = Patient.objects.bulk_create(
        Patient(
            identifier_system=system,
            mrn=r.patient.mrn,
            family_name=r.patient.family_name,
            given_name=r.patient.given_name,
            family_search=search_form(r.patient.family_name),
            given_search=search_form(r.patient.given_name),
            birth_date=r.patient.birth_date,
            sex=r.patient.sex,
        )
        for r in batch
    )
    encounters = Encounter.objects.bulk_create(
        Encounter(
            patient=p,
            encounter_class=r.encounter.encounter_class,
            status=r.encounter.status,
            period_start=r.encounter.period_start,
            period_end=r.encounter.period_end,
        )
        for p, r in zip(patients, batch, strict=True)
    )
    # Nearly every row of a load: one prepared INSERT over plain tuples, the COPY path's columns and
    # values, instead of a model instance and per-field preparation each (3-4x the rate on SQLite).
    adapt_datetime = connection.ops.adapt_datetimefield_value
    observations = [
        (p.pk, e.pk, o.category, o.code, o.value, o.unit, o.components, adapt_datetime(o.effective_at), o.status)
        for p, e, r in zip(patients, encounters, batch, strict=True)
        for o in r.observations
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_OBSERVATION_INSERT_SQL, observations)
    medications = [
        MedicationRequest(
            patient=p,
            encounter=e,
            rxnorm_code=m.rxnorm_code,
            display=m.display,
            status=m.status,
            intent=m.intent,
            authored_at=m.authored_at,
            dosage_text=m.dosage_text,
        )
        for p, e, r in zip(patients, encounters, batch, strict=True)
        for m in r.medications
    ]
    MedicationRequest.objects.bulk_create(medications)
    report.patients += len(batch)
    report.encounters += len(batch)
    report.observations += len(observations)
    report.medications += len(medications)
