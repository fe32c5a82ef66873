"""A rename made outside services.py (a data fix in `manage.py shell`) keeps the name's search form, which the
name search reads, in step: before, a patient renamed by `save()` or a queryset `update()` was not found by the new
name and was still found by the old one."""

from __future__ import annotations

import pytest
from django.db.models import F

from apps.clinical.models import Patient

pytestmark = pytest.mark.django_db


def _found(clinician, term: str) -> list[int]:
    return [row["id"] for row in clinician.get(f"/api/v1/patients/?family={term}").json()["results"]]


def test_a_patient_renamed_by_save_is_found_by_the_new_name_only(clinician, patient):
    row = Patient.objects.get(pk=patient.pk)
    row.family_name = "Öztürk"
    row.save()
    assert _found(clinician, "ozt") == [patient.pk]
    assert _found(clinician, "mül") == []

    row.given_name = "Zoë"
    row.save(update_fields=["given_name"])  # the search form is written with the name it follows
    assert Patient.objects.get(pk=patient.pk).given_search == "zoe"


def test_a_patient_renamed_by_a_queryset_update_is_found_by_the_new_name(clinician, patient):
    Patient.objects.filter(pk=patient.pk).update(family_name="Ångström", given_name="Éva")
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.family_search, stored.given_search) == ("angstrom", "eva")
    assert _found(clinician, "angs") == [patient.pk]


def test_a_name_updated_by_an_expression_is_refused_not_left_unsearchable(patient):
    with pytest.raises(TypeError, match="family_name"):
        Patient.objects.filter(pk=patient.pk).update(family_name=F("given_name"))
    assert Patient.objects.get(pk=patient.pk).family_name == "Müller"


def test_a_save_of_other_fields_leaves_the_search_forms_alone(patient):
    row = Patient.objects.only("pk", "sex").get(pk=patient.pk)
    row.sex = Patient.Sex.OTHER
    row.save(update_fields=["sex"])
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.sex, stored.family_search) == ("other", "müller".replace("ü", "u"))


def test_patients_renamed_by_bulk_update_are_found_by_the_new_names(clinician, patient):
    rows = list(Patient.objects.filter(pk=patient.pk))
    rows[0].family_name = "Çelik"
    assert Patient.objects.bulk_update(rows, ["family_name"]) == 1
    assert Patient.objects.get(pk=patient.pk).family_search == "celik"
    assert _found(clinician, "cel") == [patient.pk]
