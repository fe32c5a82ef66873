"""Every read of patient data. Each query here is one the indexes in models.py were designed for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import RawSQL
from rest_framework import status
from rest_framework.exceptions import APIException

from apps.caching.stack import get_or_load
from apps.clinical.api.representations import observation_json, patient_json
from apps.clinical.codes import PANEL_CODES, PANEL_MEMBER_CODES
from apps.clinical.identifiers import normalize_system
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient
from apps.clinical.services import identifier_scope, patient_scope, search_form
from apps.core.compiled import BOUND, CompiledLookup, CompiledQuery, CompiledShapes

# The lookup every patient read by id starts with, compiled once (apps/core/compiled.py), reading
# the columns of a patient card, which the REST and FHIR reads are built from (the rest stay deferred).
PATIENT_CARD_COLUMNS = ["identifier_system", "mrn", "family_name", "given_name", "birth_date", "sex", "updated_at"]
_active_patients = Patient.objects.filter(is_deleted=False)
_active_patient_by_pk = CompiledLookup(_active_patients, ["pk"], columns=PATIENT_CARD_COLUMNS)
# A card's load reads the row whatever its state: one that finds a deleted patient says so (FHIR's 410) without
# asking the database again.
_patient_by_pk = CompiledLookup(Patient.objects.all(), ["pk"], columns=[*PATIENT_CARD_COLUMNS, "is_deleted"])


def patient_get(*, patient_id: int) -> Patient | None:
    return _active_patient_by_pk.get(pk=patient_id)


class AmbiguousIdentifier(APIException):
    """More than one active patient has this MRN in spellings of one system: rows migration 0002/0003 left
    as they were because their normal spellings collide. Answering with either could be the wrong patient."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = (
        "More than one patient is registered under this identifier (its system in different spellings): "
        "it is ambiguous until their records are resolved."
    )
    default_code = "ambiguous_identifier"


# The active patients with one MRN in any stored system: a loose index scan walks the distinct systems of the
# unique (identifier_system, mrn) index (one descent each, a handful of systems) and probes (system, mrn) in each
# (LIMIT 1 keeps the probe from being flattened into a join the planner could hash over a scan of the table). A
# row left in an older spelling (migrations 0002/0003, where normalising it would collide) is found whatever
# spelling is typed, with no sequential scan; Python keeps those whose system normalises to the one asked for
# (SQL cannot normalise a URI). Index scans only, 0.16 ms on a small table (EXPLAIN ANALYZE).
_PATIENTS_WITH_MRN = """
WITH RECURSIVE systems(s) AS (
    (SELECT identifier_system FROM {table} ORDER BY identifier_system LIMIT 1)
  UNION ALL
    SELECT (SELECT p.identifier_system FROM {table} p WHERE p.identifier_system > systems.s
            ORDER BY p.identifier_system LIMIT 1)
    FROM systems WHERE systems.s IS NOT NULL
)
SELECT p.* FROM systems CROSS JOIN LATERAL (
    SELECT id, {columns} FROM {table} WHERE identifier_system = systems.s AND mrn = %s {active} LIMIT 1
) p ORDER BY p.id
"""


def patients_by_identifier(*, value: str, system: str | None = None, deleted: bool = False) -> list[Patient]:
    """Every active patient with this MRN whose stored system is any spelling of `system` (normally one:
    rows are stored normalised, but one left in an older spelling beside a colliding row is found too).
    `deleted`: the soft-deleted ones too, as the (system, MRN) constraint counts them (a registration's check)."""
    normal = normalize_system(system or settings.MRN_SYSTEM)
    if connection.vendor != "postgresql":
        found = Patient.objects.filter(mrn=value).only(*PATIENT_CARD_COLUMNS, "is_deleted").order_by("pk")
        found = found if deleted else found.filter(is_deleted=False)
    else:
        sql = _PATIENTS_WITH_MRN.format(
            table=Patient._meta.db_table,
            columns=", ".join([*PATIENT_CARD_COLUMNS, "is_deleted"]),
            active="" if deleted else "AND NOT is_deleted",
        )
        found = Patient.objects.raw(sql, [value])
    return [patient for patient in found if normalize_system(patient.identifier_system) == normal]


def identifier_system_spellings(*, value: str, system: str | None = None) -> list[str]:
    """The stored spellings of `system` that active patients with this MRN are under (the normal spelling where
    none is): what a FHIR `identifier=system|value` search matches, so every patient in a colliding spelling is
    in its searchset and the client sees the ambiguity. One query (patients_by_identifier's)."""
    stored = sorted({patient.identifier_system for patient in patients_by_identifier(value=value, system=system)})
    return stored or [normalize_system(system or settings.MRN_SYSTEM)]


def patient_by_identifier(*, value: str, system: str | None = None) -> Patient | None:
    """Look a patient up by MRN in any spelling of its system; AmbiguousIdentifier (409) where more than one
    patient matches: the first of them was the wrong patient as often as not."""
    found = patients_by_identifier(value=value, system=system)
    if len(found) > 1:
        raise AmbiguousIdentifier()
    return found[0] if found else None


def patient_was_deleted(*, patient_id: int) -> bool:
    """Whether this id names a soft-deleted patient: FHIR answers its read 410 Gone, not 404. Asked only when
    no active patient has the id, so the hot path never pays for it."""
    return Patient.objects.filter(pk=patient_id, is_deleted=True).exists()


def patient_card(*, patient_id: int) -> dict | None:
    """An active patient as JSON, through the `patient_data` cache (None when there is none)."""
    return _card(patient_id, [])


def patient_card_or_deleted(*, patient_id: int) -> tuple[dict | None, bool]:
    """A FHIR read's patient: (its card, False) if active, else (None, whether a deleted patient has the id:
    410, not 404). A miss is one query: the load that found no active patient read the row whatever its state;
    only where another request's load answered for this one is the deletion asked after."""
    deleted: list[bool] = []
    card = _card(patient_id, deleted)
    if card is not None:
        return card, False
    return None, deleted[-1] if deleted else patient_was_deleted(patient_id=patient_id)


def _card(patient_id: int, deleted: list[bool]) -> dict | None:
    """`patient_card`; a load appends to `deleted` whether the row it read is a deleted patient's."""

    def load() -> dict | None:
        patient = _patient_by_pk.get(pk=patient_id)
        deleted.append(patient is not None and patient.is_deleted)
        return patient_json(patient) if patient is not None and not patient.is_deleted else None

    # "card-2": cards carry updated_at since; one stored before (without it) is never read back as one.
    return get_or_load("patient_data", ["card-2", patient_id], load, scope=patient_scope(patient_id))


def patient_id_by_identifier(*, value: str, system: str | None = None) -> int | None:
    """The id of the active patient with this MRN, through the `patient_data` cache (keys are HMACs). The system
    is normalised first: each spelling of it is one cache entry and one scope, which a deletion invalidates.
    Raises AmbiguousIdentifier (409) where patients in colliding spellings share the MRN."""
    system = normalize_system(system or settings.MRN_SYSTEM)

    def load() -> int | None:
        patient = patient_by_identifier(value=value, system=system)
        return patient.pk if patient else None

    # "mrn-2": an id cached before colliding spellings were all matched may be the wrong one of them; an
    # ambiguous MRN raises in load(), so nothing is cached for it (every spelling of the system, one answer).
    return get_or_load("patient_data", ["mrn-2", system, value], load, scope=identifier_scope(system, value))


def vital_signs_cards(
    *,
    patient_id: int,
    codes: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    latest: bool = False,
    limit: int = 100,
) -> list[dict]:
    """A patient's vital signs as JSON (the latest of each code, or the newest `limit`), cached in `vital_signs`."""
    window = {"codes": codes, "since": since, "until": until}

    def load() -> list[dict]:
        if latest:
            rows = latest_observations(patient_id=patient_id, category="vital-signs", **window)
        else:
            rows = newest_observations(patient_id=patient_id, category="vital-signs", limit=limit, **window)
        members = panel_members([o for o in rows if is_empty_panel(o)])  # no query without an empty panel
        return [observation_json(o, members=members.get(o.pk)) for o in rows]

    # "vitals-4": rows say `panel` and an empty panel's `members` since ("vitals-3": the newest `limit` skip
    # retracted readings); a list cached before, without them or with a retracted reading, is not read.
    key = ["vitals-4", patient_id, sorted(codes or []), str(since or ""), str(until or ""), latest, limit]
    return get_or_load("vital_signs", key, load, scope=patient_scope(patient_id))


def _prefixes(value: str | list[str]) -> list[str]:
    return [search_form(term) for term in ([value] if isinstance(value, str) else value)]


# A total's audit record names at most this many of the patients it counts (the lowest ids): as many as the
# largest page of a FHIR search names, so no record's list outgrows an ordinary one.
COUNT_NAMES_AT_MOST = 1000


def patients_counted(patients: QuerySet[Patient], *, at_most: int = COUNT_NAMES_AT_MOST) -> tuple[int, list[int]]:
    """How many patients match and the ids of the first `at_most` by id, for the audit record of an answer
    that discloses the total alone ("is Jane Doe, born 1970-01-01, a patient here?"). One query within the
    cap (the ids are the total), a COUNT after it for a larger one; a total past the list says it is partial."""
    ids = list(patients.order_by("pk").values_list("pk", flat=True)[: at_most + 1])
    if len(ids) <= at_most:
        return len(ids), ids
    return patients.count(), ids[:at_most]


def patient_search(
    *,
    name: str | list[str] | None = None,
    family: str | list[str] | None = None,
    given: str | list[str] | None = None,
    birth_date=None,
) -> QuerySet[Patient]:
    """Active patients by name prefix and birth date, in id order: the order the APIs page in, by keyset.

    A list of prefixes is any of them (FHIR's `name=smith,jones`)."""
    patients = Patient.objects.filter(is_deleted=False)
    for value, fields in ((family, ["family_search"]), (given, ["given_search"]),
                          (name, ["family_search", "given_search"])):  # fmt: skip
        if value:
            either = Q()
            for term in _prefixes(value):
                for field in fields:
                    either |= Q(**{f"{field}__startswith": term})
            patients = patients.filter(either)
    if birth_date:
        patients = patients.filter(birth_date=birth_date)
    return patients.order_by("id")


# A panel (85353-1 as the synthetic loader writes it beside each round of vitals, or 85354-9 without its
# components) with no value and no components: SQL NULL, JSON null, [] or {} alike. It is no latest value (a
# `latest=true` answer listed it with value null); FHIR gives it hasMember, REST `members`. The one definition
# both APIs use: REST tested `components IS NULL` and FHIR `not components`, so `[]` was a panel on one only.
EMPTY_PANEL = Q(code__in=PANEL_CODES, value__isnull=True) & (
    Q(components__isnull=True) | Q(components=None) | Q(components=[]) | Q(components={})
)


def is_empty_panel(observation: Observation) -> bool:
    """EMPTY_PANEL, for a row in hand."""
    return observation.code in PANEL_CODES and observation.value is None and not observation.components


def observation_list(
    *,
    patient_id: int,
    category: str | None = None,
    codes: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Observation]:
    """A patient's observations, newest first (ties broken by id, for stable keyset paging)."""
    observations = Observation.objects.filter(patient_id=patient_id)
    if category:
        observations = observations.filter(category=category)
    codes = list(codes or [])
    if len(codes) == 1:
        observations = observations.filter(code=codes[0])
    elif codes:
        observations = observations.filter(code__in=codes)
    if since:
        observations = observations.filter(effective_at__gte=since)
    if until:
        observations = observations.filter(effective_at__lte=until)
    return observations.order_by("-effective_at", "-id")


def latest_observations_query(*, patient_id: int, **window) -> QuerySet[Observation]:
    """PostgreSQL: the newest reading of each code, DISTINCT ON over the (patient, code, effective) index. One
    entered in error or cancelled is no reading (Observation.NOT_READINGS): the one before it is the latest."""
    readings = observation_readings(patient_id=patient_id, **window).exclude(EMPTY_PANEL)  # no value: no latest
    return readings.order_by("code", "-effective_at", "-id").distinct("code")


# A patient's observations in a window (the newest `limit`, or the latest of each code), compiled once
# per shape: which filters are present, how many codes, whether limited (the limit itself is bound). The
# ORM writing these queries was most of their CPU. More codes than a panel holds, or more shapes than the
# table keeps: plain ORM.
_COMPILED_CODES_AT_MOST = 16
_SLOT_FIELDS = {"patient_id": "patient", "category": "category", "since": "effective_at", "until": "effective_at"}
window_queries = CompiledShapes(at_most=512)


def _window_query(shape: tuple[str, ...], *, latest: bool, limited: bool) -> CompiledQuery[Observation]:
    codes = sorted((slot for slot in shape if slot.startswith("code_")), key=lambda slot: int(slot[5:]))

    def build(**slots) -> QuerySet[Observation]:
        window = {name: slots.get(name) for name in ("category", "since", "until")}
        window["codes"] = [slots[code] for code in codes]
        if latest:
            return latest_observations_query(patient_id=slots["patient_id"], **window)
        return observation_readings(patient_id=slots["patient_id"], **window)

    fields = {slot: _SLOT_FIELDS.get(slot, "code") for slot in shape}
    return CompiledQuery(Observation, build, fields, limit=BOUND if limited else None)


def _compiled_window(patient_id: int, window: dict, *, latest: bool, limit: int | None) -> list[Observation] | None:
    """The window through its compiled query; None where the plain ORM must run it."""
    if len(window["codes"]) > _COMPILED_CODES_AT_MOST:
        return None
    # The slots observation_list filters on (it skips empty ones), then one per code.
    values = {
        "patient_id": patient_id,
        **{slot: window[slot] for slot in ("category", "since", "until") if window[slot]},
    }
    values.update((f"code_{i}", code) for i, code in enumerate(window["codes"]))
    shape = tuple(sorted(values))
    limited = limit is not None
    query = window_queries.get((shape, latest, limited), lambda: _window_query(shape, latest=latest, limited=limited))
    return None if query is None else query.rows(limit=limit, **values)


def observation_readings(*, patient_id: int, **window) -> QuerySet[Observation]:
    """observation_list less what is no reading (Observation.NOT_READINGS): a reading retracted as entered in
    error, or cancelled, is left out of every read that does not ask for it by status."""
    return observation_list(patient_id=patient_id, **window).exclude(status__in=Observation.NOT_READINGS)


def newest_observations(
    *,
    patient_id: int,
    category: str | None = None,
    codes: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    statuses: Iterable[str] | None = None,
    limit: int,
) -> list[Observation]:
    """The newest `limit` readings in the window, newest first. Without `statuses`, none entered in error or
    cancelled: a retracted 300/min was listed (and charted) as the patient's heart rate. With it, those
    statuses only (entered-in-error included, when asked for)."""
    window = {"category": category, "codes": list(codes or []), "since": since, "until": until}
    if statuses is not None:  # rare (an audit of retractions): plain ORM
        observations = observation_list(patient_id=patient_id, **window).filter(status__in=list(statuses))
        return list(observations[:limit])
    found = _compiled_window(patient_id, window, latest=False, limit=limit)
    return list(observation_readings(patient_id=patient_id, **window)[:limit]) if found is None else found


def latest_observations(
    *,
    patient_id: int,
    category: str | None = None,
    codes: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Observation]:
    """The newest reading of each code in the window (none entered in error or cancelled)."""
    window = {"category": category, "codes": list(codes or []), "since": since, "until": until}
    if connection.vendor == "postgresql":  # DISTINCT ON
        found = _compiled_window(patient_id, window, latest=True, limit=None)
        return list(latest_observations_query(patient_id=patient_id, **window)) if found is None else found
    observations = observation_readings(patient_id=patient_id, **window).exclude(EMPTY_PANEL)
    latest: dict[str, Observation] = {}
    for observation in observations:
        latest.setdefault(observation.code, observation)
    return sorted(latest.values(), key=lambda o: o.code)


def encounter_list(
    *,
    patient_id: int,
    status: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> QuerySet[Encounter]:
    """A patient's encounters, newest first; a date range keeps those whose period overlaps it."""
    encounters = Encounter.objects.filter(patient_id=patient_id)
    if status:
        encounters = encounters.filter(status=status)
    if date_from:
        encounters = encounters.filter(Q(period_end__isnull=True) | Q(period_end__gte=date_from))
    if date_to:
        encounters = encounters.filter(period_start__lte=date_to)
    return encounters.order_by("-period_start", "-id")


def medication_request_list(
    *, patient_id: int, status: str | None = None, intent: str | None = None
) -> QuerySet[MedicationRequest]:
    requests = MedicationRequest.objects.filter(patient_id=patient_id)
    if status:
        requests = requests.filter(status=status)
    if intent:
        requests = requests.filter(intent=intent)
    return requests.order_by("-authored_at", "-id")


def panel_members(panels: list[Observation]) -> dict[int, list[int]]:
    """Each empty panel's members (`is_empty_panel`): its patient's vital-sign readings of the panel's member
    codes (PANEL_MEMBER_CODES) taken at the panel's instant (the loader writes a round of vitals and its panels
    at one instant), by panel id; one query for a page, none without a panel."""
    if not panels:
        return {}
    members = (
        Observation.objects.filter(
            patient_id__in={panel.patient_id for panel in panels},
            effective_at__in={panel.effective_at for panel in panels},
            category=Observation.Category.VITAL_SIGNS,
        )
        .exclude(status__in=Observation.NOT_READINGS)
        .order_by("id")
        .values_list("patient_id", "effective_at", "code", "id")
    )
    by_instant: dict[tuple, list[tuple[str, int]]] = {}
    for patient_id, effective_at, code, member_id in members:
        by_instant.setdefault((patient_id, effective_at), []).append((code, member_id))

    def of(panel: Observation) -> list[int]:
        codes = PANEL_MEMBER_CODES.get(panel.code)
        taken = by_instant.get((panel.patient_id, panel.effective_at), [])
        return [i for code, i in taken if code != panel.code and (codes is None or code in codes)]

    return {panel.pk: of(panel) for panel in panels}


def patient_reading(*, patient_id: int, observation_id: int) -> dict | None:
    """One of the patient's vital-sign readings as the vitals list writes it (an empty panel with its members),
    whatever its status: what a reading's 201 names in Location. None when the patient has no vital-sign reading
    with this id (a laboratory result is not one, as for the reading's PATCH)."""
    reading = Observation.objects.filter(
        pk=observation_id, patient_id=patient_id, category=Observation.Category.VITAL_SIGNS
    ).first()
    if reading is None:
        return None
    members = panel_members([reading] if is_empty_panel(reading) else [])
    return observation_json(reading, members=members.get(reading.pk))


def clinical_row(model: type, row_id: int) -> tuple[object | None, int | None]:
    """A FHIR read's Observation, Encounter or MedicationRequest: the row if its patient is active, else the id
    of its deleted patient if it is there (410, as the patient's read; its audit record names that patient, so
    the patient's access report shows the attempt). One query, whichever it is: the row comes with its
    patient's state."""
    row = model.objects.filter(pk=row_id).annotate(patient_deleted=F("patient__is_deleted")).first()
    if row is None:
        return None, None
    if row.patient_deleted:
        return None, row.patient_id
    return row, None


# FHIR `Observation/$lastn`: the newest `per_code` readings of each code, in one statement. Each code is one
# LATERAL probe of the (patient, code, effective DESC) index that stops after `per_code` rows, so a patient's years of
# history are never read to find this morning's vitals (DISTINCT ON, or a window function, reads every row of the
# patient). Without codes asked for, the patient's codes come from a loose index scan of the same index (one descent
# each), so a code no registry lists is found too.
_PATIENT_CODES = """
WITH RECURSIVE lastn_codes(code) AS (
    (SELECT code FROM {table} WHERE patient_id = %s ORDER BY code LIMIT 1)
  UNION ALL
    SELECT (SELECT o.code FROM {table} o WHERE o.patient_id = %s AND o.code > lastn_codes.code
            ORDER BY o.code LIMIT 1)
    FROM lastn_codes WHERE lastn_codes.code IS NOT NULL
)
"""
_ASKED_CODES = "WITH lastn_codes(code) AS (SELECT DISTINCT unnest(%s::text[]))"
_LASTN = """{codes}
SELECT lastn.* FROM lastn_codes CROSS JOIN LATERAL ({newest}) lastn
WHERE lastn_codes.code IS NOT NULL ORDER BY lastn.code, lastn.effective_at DESC, lastn.id DESC
"""


def lastn_readings(
    *, patient_id: int, categories: Iterable[str] = (), codes: Iterable[str] = (), when: Q | None = None
) -> QuerySet[Observation]:
    """What `$lastn` chooses from: the Observation search's matches (R4: lastn is the search grouped by code), so
    none retracted or cancelled, and an empty panel kept (it is served with hasMember), of any of `categories` and
    `codes` (none: all), effective `when` (a condition on effective_at: FHIR's `date`)."""
    readings = observation_readings(patient_id=patient_id, codes=list(codes))
    categories = list(categories)
    if categories:
        readings = readings.filter(category__in=categories)
    return readings.filter(when) if when is not None else readings


def newest_observations_per_code(
    *,
    patient_id: int,
    categories: Iterable[str] = (),
    codes: Iterable[str] = (),
    when: Q | None = None,
    per_code: int = 1,
) -> list[Observation]:
    """FHIR `$lastn`: the newest `per_code` readings of each code (newest first; codes in order), one query.

    The readings are the Observation search's (`lastn_readings`: none entered in error or cancelled, empty panels
    kept), so each code's rows are the first `per_code` of that search for the code, newest first."""
    codes, categories = sorted(set(codes)), sorted(set(categories))
    if connection.vendor == "postgresql" and when is None and not codes:
        # The ward's question ("the latest vitals": a category, no date): SQL compiled once per number of
        # categories; writing it through the ORM was most of its cost (2.3 of 2.75 ms a call in
        # bench/fhir_lastn.py, its index probes 0.4 ms). Asked codes bind no slot the probe's plan could ignore
        # (`code IN (...)` there made PostgreSQL read all of each code's rows and sort them): the ORM writes those.
        query = lastn_queries.get(len(categories), lambda: _lastn_query(len(categories)))
        if query is not None:
            values = {f"category_{i}": category for i, category in enumerate(categories)}
            return query.rows(limit=per_code, patient_id=patient_id, **values)
    if connection.vendor != "postgresql":  # no LATERAL: the window's rows, kept per code in Python
        readings = lastn_readings(patient_id=patient_id, categories=categories, codes=codes, when=when)
        kept: dict[str, list[Observation]] = {}
        for observation in readings.order_by("code", "-effective_at", "-id"):
            if len(kept.setdefault(observation.code, [])) < per_code:
                kept[observation.code].append(observation)
        return [observation for code in sorted(kept) for observation in kept[code]]
    # The probe is the window's query with its code the outer row's; LIMIT is an int the caller validated.
    readings = lastn_readings(patient_id=patient_id, categories=categories, when=when)
    probe = readings.filter(code=RawSQL("lastn_codes.code", ())).order_by("-effective_at", "-id")[: int(per_code)]
    newest, newest_params = probe.query.sql_with_params()
    table = Observation._meta.db_table
    if codes:
        head, head_params = _ASKED_CODES, [codes]
    else:
        head, head_params = _PATIENT_CODES.format(table=table), [patient_id, patient_id]
    sql = _LASTN.format(codes=head, newest=newest)
    return list(Observation.objects.raw(sql, [*head_params, *newest_params]))


class _LastnQuery(CompiledQuery[Observation]):
    """The LATERAL statement around a probe the ORM writes once (`CompiledQuery`): the probe's slots and bound LIMIT
    as compiled, after the patient's slots of the codes' loose scan."""

    def _compile(self, using: str) -> tuple[str, list, list[tuple[int, str | None]], dict]:
        probe, params, slots, converters = super()._compile(using)
        head = _PATIENT_CODES.format(table=Observation._meta.db_table)
        shifted = [(position + 2, slot) for position, slot in slots]
        # The probe selects its model's attnames in order, and `lastn.*` passes them on as they are.
        sql = _LASTN.format(codes=head, newest=probe)
        return sql, [None, None, *params], [(0, "patient_id"), (1, "patient_id"), *shifted], converters


# $lastn by category, compiled once per number of categories asked (Observation.Category's, at most).
lastn_queries = CompiledShapes(at_most=16)


def _lastn_query(categories: int) -> _LastnQuery:
    def build(**slots) -> QuerySet[Observation]:
        chosen = [slots[f"category_{i}"] for i in range(categories)]
        readings = lastn_readings(patient_id=slots["patient_id"], categories=chosen)
        return readings.filter(code=RawSQL("lastn_codes.code", ())).order_by("-effective_at", "-id")

    fields = {"patient_id": "patient", **{f"category_{i}": "category" for i in range(categories)}}
    return _LastnQuery(Observation, build, fields, limit=BOUND)
