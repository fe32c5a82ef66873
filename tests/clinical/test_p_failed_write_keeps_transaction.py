"""A clinical write that raises, caught by its caller inside a transaction, leaves that transaction usable, as
Django's own writes do: the writes ran in an atomic block without a savepoint, so a ProtectedError caught by a
data fix made its next query raise TransactionManagementError."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models import ProtectedError

from apps.clinical.models import Observation, Patient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("write", ["queryset delete", "row delete", "update", "bulk_create"])
def test_a_write_refused_and_caught_leaves_the_transaction_usable(patient, vitals, write):
    """Each raises before Django's own write starts (which leaves the transaction usable on its own)."""
    with transaction.atomic():
        with pytest.raises((ProtectedError, FieldDoesNotExist, ValueError)):
            if write == "queryset delete":
                Patient.objects.filter(pk=patient.pk).delete()  # its readings protect it
            elif write == "row delete":
                Patient.objects.get(pk=patient.pk).delete()
            elif write == "update":
                Observation.objects.filter(patient=patient).update(valeu=1)  # a typo
            else:
                unsaved = Patient(mrn="MRN-NEW", family_name="B", given_name="C", birth_date="1980-01-01")
                Observation.objects.bulk_create([Observation(patient=unsaved, code="8867-4",
                                                             effective_at=datetime.now(UTC))])  # fmt: skip
        assert Patient.objects.filter(pk=patient.pk).exists()  # raised TransactionManagementError
