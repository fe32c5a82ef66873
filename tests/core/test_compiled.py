"""CompiledLookup answers exactly what the ORM query it was compiled from answers."""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.clinical.models import Patient
from apps.clinical.services import patient_create, patient_soft_delete
from apps.core.compiled import CompiledLookup, CompiledShapes

pytestmark = pytest.mark.django_db

ACTIVE = Patient.objects.filter(is_deleted=False)


@pytest.fixture
def patients():
    return [
        patient_create(mrn=f"MRN-{n:06d}", family_name="Ng", given_name="Kim", birth_date=date(1980, 1, n), sex="other")
        for n in range(1, 4)
    ]


def test_same_instances_as_the_orm(patients):
    by_identifier = CompiledLookup(ACTIVE, ["identifier_system", "mrn"])
    for patient in patients:
        found = by_identifier.get(identifier_system=patient.identifier_system, mrn=patient.mrn)
        expected = ACTIVE.get(pk=patient.pk)
        assert found == expected
        assert found.birth_date == date(1980, 1, patient.birth_date.day)  # converted like the ORM's rows
        assert found.created_at == expected.created_at and found.created_at.tzinfo is not None
        assert not found._state.adding and found._state.db == "default"
    assert by_identifier.get(identifier_system=patients[0].identifier_system, mrn="MRN-999999") is None


def test_fixed_conditions_still_apply(patients):
    by_pk = CompiledLookup(ACTIVE, ["pk"])
    assert by_pk.get(pk=patients[0].pk) == patients[0]
    patient_soft_delete(patient=patients[0])
    assert by_pk.get(pk=patients[0].pk) is None
    assert by_pk.get(pk=str(patients[1].pk)) == patients[1]  # coerced as the ORM would


def test_one_query_and_the_same_sql_every_call(patients):
    by_pk = CompiledLookup(ACTIVE, ["pk"])
    with CaptureQueriesContext(connection) as queries:
        for patient in patients:
            by_pk.get(pk=patient.pk)
    assert len(queries) == 3
    assert len({query["sql"].split(" WHERE ")[0] for query in queries}) == 1


def test_wrong_values_are_refused():
    by_pk = CompiledLookup(ACTIVE, ["pk"])
    with pytest.raises(TypeError):
        by_pk.get(mrn="x")
    with pytest.raises(TypeError):
        by_pk.get(pk=None)
    with pytest.raises(TypeError, match="cannot bind"):
        CompiledLookup(Patient.objects.all(), ["is_deleted"]).get(is_deleted=True)


def test_date_slots_bind_like_the_orm(patients):
    by_birth_date = CompiledLookup(ACTIVE, ["birth_date"])
    for patient in patients:
        assert by_birth_date.get(birth_date=patient.birth_date) == ACTIVE.get(birth_date=patient.birth_date)
    assert by_birth_date.get(birth_date=date(1979, 12, 31)) is None


def test_columns_leave_the_other_fields_deferred(patients):
    lookup = CompiledLookup(ACTIVE, ["pk"], columns=["mrn", "birth_date"])
    found = lookup.get(pk=patients[0].pk)
    assert (found.pk, found.mrn, found.birth_date) == (patients[0].pk, patients[0].mrn, patients[0].birth_date)
    assert "family_name" in found.get_deferred_fields() and "mrn" not in found.get_deferred_fields()
    with CaptureQueriesContext(connection) as queries:
        assert found.family_name == "Ng"  # loaded on access, as with .only()
    assert len(queries) == 1


def test_shapes_are_compiled_once_each_and_the_table_stays_bounded(patients):
    made = []

    def make(field):
        def compile_shape():
            made.append(field)
            return CompiledLookup(ACTIVE, [field])

        return compile_shape

    shapes = CompiledShapes(at_most=2)
    by_pk = shapes.get("pk", make("pk"))
    assert shapes.get("pk", make("pk")) is by_pk and made == ["pk"]
    assert shapes.get("mrn", make("mrn")) is not None and len(shapes) == 2
    assert by_pk.get(pk=patients[0].pk) == patients[0]
    assert shapes.get("birth_date", make("birth_date")) is not None and len(shapes) == 2  # past the bound: LRU out
    assert shapes.get("mrn", make("mrn")) is not None and made == ["pk", "mrn", "birth_date"]  # pk went, not mrn
    assert shapes.get("pk", make("pk")) is not by_pk and made[-1] == "pk"  # compiled again when it comes back
