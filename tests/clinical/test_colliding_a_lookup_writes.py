"""An MRN whose rows sit under colliding spellings of one system (migrations clinical 0002/0003 left them so):
every caller of the lookup answers the ambiguity clearly, and a write to such a row leaves no lookup cached
under another spelling of its system stale (real PostgreSQL and Redis; another process's view is the
cache with its L1 dropped)."""

from datetime import date

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.db.models import Max
from rest_framework.exceptions import APIException

from apps.audit.models import AuditEvent
from apps.caching.stack import default_stack
from apps.clinical import selectors
from apps.clinical.brief import AmbiguousPatientIdentifier, PatientRecordOptimizer
from apps.clinical.models import Patient
from apps.clinical.services import DUPLICATE_MRN, identifier_scope, patient_create, patient_soft_delete

pytestmark = pytest.mark.django_db

SYSTEM = "http://hospital.example.org/mrn"
ENCODED = "http://hospital.example.org/%6Drn"
SPELLINGS = [SYSTEM, ENCODED, "HTTP://Hospital.example.org/m%72n/"]
MRN = "COLL-A-1"


def _left_as(system: str, family: str) -> Patient:
    """A row keeping `system` as typed, as the migrations leave a colliding one (a queryset update skips save())."""
    placeholder = f"https://placeholder.example.org/{family.replace(' ', '')}"
    patient = patient_create(mrn=MRN, family_name=family, given_name="Jo", birth_date=date(1970, 1, 1),
                             identifier_system=placeholder)  # fmt: skip
    Patient.objects.filter(pk=patient.pk).update(identifier_system=system)
    return Patient.objects.get(pk=patient.pk)


def _normal(family: str) -> Patient:
    return patient_create(mrn=MRN, family_name=family, given_name="Jo", birth_date=date(1970, 1, 1),
                          identifier_system=SYSTEM)  # fmt: skip


def _lookup(client, system: str):
    return client.post("/api/v1/patients/lookup/", {"mrn": MRN, "system": system}, format="json")


def _another_process() -> None:
    default_stack().clear_local()  # its L1 never held the entry: Redis and the table must not serve it


def _committed(capture, write) -> None:
    with capture(execute=True):
        write()
    _another_process()


def _last_record() -> int:
    return AuditEvent.objects.aggregate(last=Max("pk"))["last"] or 0


def _named(record: AuditEvent) -> list[int]:
    return sorted(record.patient_ids or ([record.patient_id] if record.patient_id else []))


def _database_answer() -> list[int]:
    return [p.pk for p in selectors.patients_by_identifier(value=MRN, system=SYSTEM)]


# --- the brief's lookup ---------------------------------------------------------------------------------------
def test_the_brief_lookup_of_an_ambiguous_mrn_raises_its_documented_error_and_is_audited(db):
    first, second = _normal("Coll A"), _left_as(ENCODED, "Coll B")
    optimizer = PatientRecordOptimizer()
    before = AuditEvent.objects.count()
    for spelling in SPELLINGS:
        with pytest.raises(AmbiguousPatientIdentifier) as refused:
            async_to_sync(optimizer.optimize_patient_lookup)(MRN, None, system=spelling)
        assert not isinstance(refused.value, APIException)  # DRF's exceptions mean nothing outside a view
        assert isinstance(refused.value, LookupError)
        assert "ambiguous" in str(refused.value) and MRN not in str(refused.value)
    records = list(AuditEvent.objects.order_by("pk")[before:])
    assert len(records) == len(SPELLINGS)
    for record in records:
        assert (record.action, record.outcome, record.actor_name) == ("search", "error", "PatientRecordOptimizer")
        assert _named(record) == [first.pk, second.pk]
    patient_soft_delete(patient=Patient.objects.get(pk=second.pk))
    assert async_to_sync(optimizer.optimize_patient_lookup)(MRN, None, system=ENCODED)["id"] == first.pk


def test_the_brief_path_exports_the_error():
    from performance.database_optimization import patient_records_optimization

    assert patient_records_optimization.AmbiguousPatientIdentifier is AmbiguousPatientIdentifier


# --- registering the MRN again ---------------------------------------------------------------------------------
def test_registering_an_mrn_held_in_another_spelling_is_a_duplicate_and_no_cached_lookup_goes_stale(
    clinician, django_capture_on_commit_callbacks
):
    held = _left_as(ENCODED, "Coll B")
    for spelling in SPELLINGS:  # cached under the normal spelling, whichever is typed
        assert _lookup(clinician, spelling).json()["id"] == held.pk
    body = {"mrn": MRN, "system": SYSTEM, "family_name": "New", "given_name": "Jo", "birth_date": "1980-01-01"}
    before = _last_record()
    with django_capture_on_commit_callbacks(execute=True):
        created = clinician.post("/api/v1/patients/", body, format="json")
    _another_process()
    # On the old code the registration passed (201): every lookup of the MRN was then ambiguous in the database,
    # yet the cached one went on naming the first patient alone.
    for spelling in SPELLINGS:
        found = _lookup(clinician, spelling)
        answer = [found.json()["id"]] if found.status_code == 200 else found.status_code
        assert answer == _database_answer(), (spelling, found.status_code)
    assert created.status_code == 400, created.content[:300]
    assert created.json()["errors"]["mrn"] == [DUPLICATE_MRN]
    refusal = AuditEvent.objects.get(pk__gt=before, action="create")
    assert (refusal.outcome, _named(refusal)) == ("error", [held.pk])


def test_the_service_refuses_an_mrn_a_deleted_row_holds_in_another_spelling(db):
    patient_soft_delete(patient=_left_as(ENCODED, "Coll B"))
    with pytest.raises(ValidationError) as refused:
        _normal("New")
    assert refused.value.error_dict["mrn"][0].code == "duplicate_mrn"
    assert not Patient.objects.filter(family_name="New").exists()


def test_a_duplicate_registration_beside_colliding_rows_is_a_400_naming_both(clinician):
    """The refusal's record named the MRN's holder through the lookup, which raised 409: the client asked to
    register and was told the identifier was ambiguous, and no record of the refusal was kept."""
    first, second = _normal("Coll A"), _left_as(ENCODED, "Coll B")
    before = _last_record()
    body = {"mrn": MRN, "system": SYSTEM, "family_name": "New", "given_name": "Jo", "birth_date": "1980-01-01"}
    created = clinician.post("/api/v1/patients/", body, format="json")
    assert created.status_code == 400, created.content[:300]
    assert created.json()["errors"]["mrn"] == [DUPLICATE_MRN]
    record = AuditEvent.objects.get(pk__gt=before, action="create")
    assert (record.outcome, _named(record)) == ("error", [first.pk, second.pk])


# --- deletions ------------------------------------------------------------------------------------------------
def test_every_spelling_of_a_system_is_one_lookup_scope():
    assert {identifier_scope(spelling, MRN) for spelling in SPELLINGS} == {identifier_scope(SYSTEM, MRN)}


def test_deleting_a_row_in_an_older_spelling_ends_its_cached_lookup_in_every_spelling(
    clinician, django_capture_on_commit_callbacks
):
    first, second = _normal("Coll A"), _left_as(ENCODED, "Coll B")
    _committed(django_capture_on_commit_callbacks, lambda: patient_soft_delete(patient=first))
    for spelling in SPELLINGS:
        for _ in range(2):  # the second from the cache
            assert _lookup(clinician, spelling).json()["id"] == second.pk
    # As the row is read by whoever deletes it: stored in its older spelling.
    row = Patient.objects.get(pk=second.pk)
    assert row.identifier_system == ENCODED
    _committed(django_capture_on_commit_callbacks, lambda: patient_soft_delete(patient=row))
    assert Patient.objects.get(pk=second.pk).identifier_system == ENCODED  # the delete rewrote no system
    for spelling in SPELLINGS:
        assert _lookup(clinician, spelling).status_code == 404, spelling


@pytest.mark.parametrize("deleted", ["normal", "older"])
def test_a_409_is_never_cached_past_the_deletion_of_either_colliding_row(
    clinician, django_capture_on_commit_callbacks, deleted
):
    first, second = _normal("Coll A"), _left_as(ENCODED, "Coll B")
    for spelling in SPELLINGS:
        for _ in range(2):
            assert _lookup(clinician, spelling).status_code == 409
    gone, kept = (first, second) if deleted == "normal" else (second, first)
    _committed(django_capture_on_commit_callbacks, lambda: patient_soft_delete(patient=Patient.objects.get(pk=gone.pk)))
    for spelling in SPELLINGS:
        for _ in range(2):
            found = _lookup(clinician, spelling)
            assert found.status_code == 200, (spelling, found.content[:300])
            assert found.json()["id"] == kept.pk


# --- the REST lookup ------------------------------------------------------------------------------------------
def test_an_ambiguous_rest_lookup_is_audited_naming_the_patients(clinician):
    """The 409 said "more than one patient has this MRN" and left no record, where a 404 leaves one."""
    first, second = _normal("Coll A"), _left_as(ENCODED, "Coll B")
    before = _last_record()
    assert _lookup(clinician, ENCODED).status_code == 409
    [record] = AuditEvent.objects.filter(pk__gt=before)
    assert (record.action, record.outcome, record.result_count) == ("search", "error", 0)
    assert _named(record) == [first.pk, second.pk]
    assert record.query_digest and MRN not in record.query_digest
