"""Two loads of overlapping ranges at once (a second `load_synthetic` started while the first runs) both passed
the "already loaded" check; the one that reached the other's patients second stopped on a raw IntegrityError
traceback naming an MRN. It is the same refusal as a load over an earlier one (AlreadyLoaded, the command's
CommandError), and the batches each load committed stay whole."""

from datetime import UTC, datetime

import pytest
from django.db.models import Count

from apps.clinical.loader import AlreadyLoaded, synthetic_patients_load
from apps.clinical.models import Encounter, Patient

pytestmark = pytest.mark.django_db

END = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_load_overtaken_by_another_is_refused_as_already_loaded():
    options = {"days": 1, "seed": 21, "end": END, "rounds_per_day": 1, "batch_size": 10}
    started = []

    def second_load_starts(patients: int, observations: int) -> None:
        # After the first load's first batch (indexes 0-9) commits, a second one loads 10-29.
        if not started:
            started.append(True)
            synthetic_patients_load(patients=20, first_index=10, **options)

    with pytest.raises(AlreadyLoaded, match="meanwhile"):
        synthetic_patients_load(patients=30, first_index=0, on_batch=second_load_starts, **options)
    mrns = sorted(Patient.objects.filter(mrn__startswith="S021-").values_list("mrn", flat=True))
    assert mrns == [f"S021-{index:07d}" for index in range(30)]
    # Every stored patient came with its history: one encounter each, none half-written.
    assert set(Encounter.objects.values("patient").annotate(n=Count("id")).values_list("n", flat=True)) == {1}
    assert Patient.objects.filter(encounters__isnull=True).count() == 0
