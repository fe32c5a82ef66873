"""The product's routes plus ones that fail, under a path that carries a patient id."""

from datetime import date

from django.db import transaction
from django.http import HttpRequest
from django.urls import path

from apps.clinical.models import Patient
from controlplane.urls import urlpatterns as product_urlpatterns


def fail(request: HttpRequest, patient_id: int):
    raise RuntimeError("the view failed")


def duplicate(request: HttpRequest, patient_id: int):
    """A second patient with the first one's MRN: PostgreSQL's unique violation quotes the key's values."""
    existing = Patient.objects.get(pk=patient_id)
    with transaction.atomic():  # a savepoint: the test's own transaction stays usable
        Patient.objects.create(mrn=existing.mrn, family_name="Twin", given_name="Tess", birth_date=date(1990, 1, 1))


def incomplete(request: HttpRequest, patient_id: int):
    """A row without its birth date: PostgreSQL's not-null violation quotes the whole failing row."""
    existing = Patient.objects.get(pk=patient_id)
    with transaction.atomic():
        Patient.objects.create(
            mrn=f"{existing.mrn}-B", family_name=existing.family_name, given_name=existing.given_name, birth_date=None
        )


urlpatterns = [
    path("api/v1/patients/<id:patient_id>/fail/", fail),
    path("api/v1/patients/<id:patient_id>/duplicate/", duplicate),
    path("api/v1/patients/<id:patient_id>/incomplete/", incomplete),
    *product_urlpatterns,
]
