"""Empty vital-signs panels (85353-1 with no value, components, hasMember or dataAbsentReason).

Before: the synthetic loader wrote one beside each round of vitals; FHIR served it as it was (invalid for the
R4 vital-signs profile, which wants a value, a component, a hasMember or a dataAbsentReason), as the newest
entry of `_count=1` ("the latest value"), and REST `vitals?latest=true` listed it with value null. Rows an
older load wrote stay in the table: they must not be served either.
"""

from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle

from apps.clinical.codes import VITAL_PANEL
from apps.clinical.fhir import views
from apps.clinical.models import Observation

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_shapes():
    views.compiled_searches.clear()
    yield
    views.compiled_searches.clear()


@pytest.fixture
def old_panel(patient, vitals):
    """An empty panel as the old loader wrote it, newer than every reading (none taken with it)."""
    return _panel(patient, datetime.now(UTC) - timedelta(minutes=5))


def _panel(patient, at):
    return Observation.objects.create(
        patient=patient, category="vital-signs", code=VITAL_PANEL, value=None, unit="", components=None,
        effective_at=at,
    )  # fmt: skip


def _profile_valid(resource: dict) -> bool:
    return any(key.startswith("value") for key in resource) or any(
        key in resource for key in ("component", "hasMember", "dataAbsentReason")
    )


def test_fhir_serves_every_panel_valid_with_its_members(clinician, patient, vitals, old_panel):
    with_members = _panel(patient, vitals[0].effective_at)  # the round of 30 h ago: heart rate and temperature
    response = clinician.get(f"/fhir/Observation?patient={patient.pk}&category=vital-signs&_count=1000")
    assert response.status_code == 200
    Bundle.model_validate(response.json())
    entries = {resource["id"]: resource for resource in (e["resource"] for e in response.json()["entry"])}
    assert entries and all(_profile_valid(resource) for resource in entries.values())
    assert entries[str(with_members.pk)]["hasMember"] == [
        {"reference": f"Observation/{vitals[0].pk}"}, {"reference": f"Observation/{vitals[1].pk}"}
    ]  # fmt: skip
    assert "dataAbsentReason" in entries[str(old_panel.pk)] and "hasMember" not in entries[str(old_panel.pk)]


def test_rest_latest_lists_no_empty_panel(clinician, patient, old_panel):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/?latest=true")
    assert response.status_code == 200
    results = response.json()["results"]
    assert results and all(row["value"] is not None or row["components"] for row in results)
    assert VITAL_PANEL not in {row["code"] for row in results}
    asked = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/?latest=true&code={VITAL_PANEL}").json()
    assert asked["results"] == []


def test_loaded_data_serves_no_empty_panel(clinician, loaded):
    """The loader still writes the panel rows (one per round of vitals): served valid, never as a latest value."""
    patient_id = Observation.objects.filter(code=VITAL_PANEL).values_list("patient_id", flat=True).first()
    assert patient_id is not None
    response = clinician.get(f"/fhir/Observation?patient={patient_id}&category=vital-signs&_count=1000")
    entries = [entry["resource"] for entry in response.json()["entry"]]
    assert entries and all(_profile_valid(resource) for resource in entries)
    assert any("hasMember" in resource for resource in entries)
    latest = clinician.get(f"/api/v1/patients/{patient_id}/vitals/?latest=true").json()["results"]
    assert latest and all(row["value"] is not None or row["components"] for row in latest)
