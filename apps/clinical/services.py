"""Every write of patient data: the API, the FHIR endpoints and the loader's small path go through here."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.clinical.codes import OBSERVATION_CODES, PANEL_MEMBER_CODES, VITAL_SIGNS
from apps.clinical.identifiers import URI_PATTERN, normalize_system
from apps.clinical.models import Encounter, Observation, Patient, search_form

MRN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,63}")  # fullmatch: "$" passes a final newline
# Clocks drift: a measurement stamped a few minutes ahead is accepted, one from tomorrow is not.
FUTURE_TOLERANCE = timedelta(minutes=5)


def validate_search_term(field: str, text: str) -> str:
    """A name prefix to search by. One with no letter or digit (spaces, an accent alone, punctuation) names no
    one: where its search form is empty it would be a prefix of every name, a search that discloses every
    patient page by page. A control character is in no stored name (validate_name), so it is refused as the
    client's mistake rather than answered with nothing found."""
    if not any(character.isalnum() for character in search_form(text)):
        raise ValidationError({field: "A name to search by has at least one letter or digit."})
    if any(unicodedata.category(character) in LINE_BREAKING for character in text):
        raise ValidationError({field: "A name to search by has no line breaks, tabs or other control characters."})
    return text


def validate_mrn(mrn: str) -> str:
    if not isinstance(mrn, str) or not MRN_PATTERN.fullmatch(mrn):
        raise ValidationError({"mrn": "An MRN is 1-64 letters, digits, '.' or '-', starting with a letter or digit."})
    return mrn


EARLIEST_BIRTH_DATE = date(1880, 1, 1)


def validate_identifier_system(system: str) -> str:
    if not URI_PATTERN.fullmatch(system):
        raise ValidationError({"system": "An identifier system is an absolute URI (https://..., urn:oid:...)."})
    return system


def validate_birth_date(birth_date: date) -> date:
    # The hospital's day (TIME_ZONE), as every date without a time: UTC's would refuse a baby born after local
    # midnight east of UTC, and take tomorrow's date west of it.
    if birth_date > timezone.localdate():
        raise ValidationError({"birth_date": "The birth date cannot be in the future."})
    if birth_date < EARLIEST_BIRTH_DATE:
        raise ValidationError({"birth_date": f"The birth date is before {EARLIEST_BIRTH_DATE.year}."})
    return birth_date


# Control characters (tab, CR, LF, BEL, DEL...) and the line and paragraph separators.
LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})


def validate_name(field: str, name: str) -> str:
    """A name as shown to clinicians: trimmed, with at least one letter (not only spaces, digits,
    punctuation or invisible characters such as a zero-width space)."""
    name = name.strip()
    if not any(character.isalpha() for character in name):
        raise ValidationError({field: "A name has at least one letter."})
    # A line break or another control character ends a segment or a line in what reads the record (HL7 v2
    # feeds, CSV exports, wristband printers). Format characters (Cf) stay: Persian names hold a ZWNJ.
    if any(unicodedata.category(character) in LINE_BREAKING for character in name):
        raise ValidationError({field: "A name has no line breaks, tabs or other control characters."})
    return name


DUPLICATE_MRN = "A patient with this MRN already exists in this system."


@transaction.atomic
def patient_create(
    *,
    mrn: str,
    family_name: str,
    given_name: str,
    birth_date: date,
    sex: str = Patient.Sex.UNKNOWN,
    identifier_system: str | None = None,
) -> Patient:
    """Register a patient; the MRN must be unique within its identifier system."""
    if identifier_system is not None:
        validate_identifier_system(identifier_system)
    patient = Patient(
        identifier_system=identifier_system or settings.MRN_SYSTEM,
        mrn=validate_mrn(mrn),
        family_name=validate_name("family_name", family_name),
        given_name=validate_name("given_name", given_name),
        family_search=search_form(family_name),
        given_search=search_form(given_name),
        birth_date=validate_birth_date(birth_date),
        sex=sex,
    )
    try:
        patient.full_clean()
    except ValidationError as exc:
        # The (system, MRN) constraint reports under __all__; the client should see which field to fix.
        if any(error.code == "unique_together" for error in exc.error_dict.get(NON_FIELD_ERRORS, [])):
            raise ValidationError({"mrn": ValidationError(DUPLICATE_MRN, code="duplicate_mrn")}) from exc
        raise
    if _held_in_another_spelling(patient.mrn, patient.identifier_system):
        raise ValidationError({"mrn": ValidationError(DUPLICATE_MRN, code="duplicate_mrn")})
    try:
        with transaction.atomic():
            patient.save()
    except IntegrityError as exc:  # a concurrent create of the same MRN won the race
        raise ValidationError({"mrn": ValidationError(DUPLICATE_MRN, code="duplicate_mrn")}) from exc
    # No lookup scope to invalidate: a lookup that found no one is not cached, and one that found a patient in
    # another spelling of the system was refused above (it would have gone on naming that patient alone).
    return patient


def _held_in_another_spelling(mrn: str, system: str) -> bool:
    """Whether a row (active or deleted, as the (system, MRN) constraint counts them) has this MRN under another
    spelling of `system`: one migrations 0002/0003 left as it was, because normalising it would collide. The
    constraint compares stored spellings only, so registering the MRN again in the normal spelling passed, made
    every lookup of it ambiguous (409) and left a lookup cached before it naming the other patient alone."""
    from apps.clinical.selectors import patients_by_identifier  # selectors import this module

    return any(
        found.identifier_system != system for found in patients_by_identifier(value=mrn, system=system, deleted=True)
    )


def patient_scope(patient_id: int) -> str:
    """The cache scope of everything read about one patient: a write to any of it invalidates it all."""
    return f"patient:{patient_id}"


def identifier_scope(system: str, mrn: str) -> str:
    """The cache scope of the MRN lookups of `mrn` in `system`, in its normal spelling: a lookup typed in any
    spelling is cached under the normal one (selectors.patient_id_by_identifier), and so is invalidated."""
    return f"identifier:{normalize_system(system)}|{mrn}"


@transaction.atomic
def patient_soft_delete(*, patient: Patient) -> Patient:
    """Hide a patient from every read; the rows and their audit trail stay. The lookups of its MRN in every
    spelling of its system are invalidated, so one cached while it was the only match no longer names it, and
    one left ambiguous (409) by a colliding row finds the patient who remains."""
    if not patient.is_deleted:
        patient.is_deleted = True
        patient.deleted_at = timezone.now()
        # Bumps the patient's scope and its lookups' (invalidation.py: the spelling it was read in, and as stored).
        patient.save(update_fields=["is_deleted", "deleted_at", "updated_at"])
    return patient


@transaction.atomic
def observation_record(
    *,
    patient: Patient,
    code: str,
    value: float,
    effective_at: datetime,
    unit: str | None = None,
    status: str = Observation.Status.FINAL,
    encounter: Encounter | None = None,
) -> Observation:
    """Record one measurement, refusing unknown codes, wrong units and impossible values."""
    known = OBSERVATION_CODES.get(code)
    if known is None or not known.unit:
        raise ValidationError({"code": f"Unknown or non-numeric LOINC code {code!r}."})
    if unit is not None and unit != known.unit:
        raise ValidationError({"unit": f"{known.display} is recorded in {known.unit!r} (UCUM), not {unit!r}."})
    if not known.low <= value <= known.high:
        raise ValidationError(
            {"value": f"{value} {known.unit} is outside {known.low}-{known.high} for {known.display}."}
        )
    if effective_at > timezone.now() + FUTURE_TOLERANCE:
        raise ValidationError({"effective_at": "A measurement cannot be taken in the future."})
    if effective_at < datetime.combine(patient.birth_date, datetime.min.time(), UTC) - timedelta(days=1):
        raise ValidationError({"effective_at": "A measurement cannot be taken before the patient was born."})
    if encounter is not None and encounter.patient_id != patient.pk:
        raise ValidationError({"encounter": "The encounter belongs to another patient."})
    observation = Observation(
        patient=patient,
        encounter=encounter,
        category=Observation.Category.VITAL_SIGNS if code in VITAL_SIGNS else Observation.Category.LABORATORY,
        code=code,
        value=value,
        unit=known.unit,
        effective_at=effective_at,
        status=status,
    )
    observation.full_clean()
    observation.save()  # bumps the patient's scope, published when the caller's transaction commits
    _panels_touched(observation)
    return observation


def _panels_touched(member: Observation) -> None:
    """A reading recorded or retracted changes the hasMember of the empty panels taken at its instant
    (selectors.panel_members, computed from the other rows): their version moves with it, in the same transaction,
    so a conditional read is not told its copy is current (304) and `_lastUpdated`/`$everything?_since` find them.
    Stamping the panel rather than versioning it by its members' max(updated_at) keeps every read and search one
    row's column, as the search's filter and index need."""
    from apps.clinical.selectors import EMPTY_PANEL  # selectors import this module

    if member.category != Observation.Category.VITAL_SIGNS:
        return
    panels = [code for code, members in PANEL_MEMBER_CODES.items()
              if code != member.code and (members is None or member.code in members)]  # fmt: skip
    # .update(): updated_at only (StampedQuerySet).
    Observation.objects.filter(
        EMPTY_PANEL, patient_id=member.patient_id, effective_at=member.effective_at, code__in=panels,
        category=Observation.Category.VITAL_SIGNS,
    ).exclude(pk=member.pk).update()  # fmt: skip


class ObservationNotRetractable(Exception):
    """The reading was cancelled (never completed): there is no result to retract."""


@transaction.atomic
def observation_retract(*, patient: Patient, observation_id: int) -> tuple[Observation, bool] | None:
    """Mark one of the patient's vital-sign readings entered-in-error (FHIR's retraction: the row stays, every read
    leaves it out), and whether it changed; None where the patient has no such reading. Retracting a retracted one
    changes nothing (a retried request is harmless); a cancelled one raises ObservationNotRetractable. The row is
    locked, so two retractions or a retraction and a cancellation do not both pass their check."""
    observation = (
        Observation.objects.select_for_update()
        .filter(pk=observation_id, patient=patient, category=Observation.Category.VITAL_SIGNS)
        .first()
    )
    if observation is None:
        return None
    if observation.status == Observation.Status.ENTERED_IN_ERROR:
        return observation, False
    if observation.status == Observation.Status.CANCELLED:
        raise ObservationNotRetractable()
    observation.status = Observation.Status.ENTERED_IN_ERROR
    observation.save(update_fields=["status"])  # bumps the patient's scope, published at the caller's commit
    _panels_touched(observation)
    return observation, True
