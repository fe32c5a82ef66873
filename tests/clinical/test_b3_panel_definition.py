"""One definition of an empty panel (selectors.EMPTY_PANEL / is_empty_panel), served alike by REST and FHIR.

Before: REST `latest=true` left out a vital-signs panel only where `components IS NULL`, FHIR took `not components`:
a panel with components `[]` was listed by REST as the latest "value" (null) while FHIR gave it hasMember; an empty
blood-pressure panel was neither left out nor given hasMember (served bare, against the R4 vital-signs profile); and
the plain REST list showed a panel's null value with nothing telling it from a missing one.
"""

from datetime import UTC, datetime, timedelta

import pytest
from drf_spectacular.generators import SchemaGenerator

from apps.clinical.codes import BP_PANEL, DIASTOLIC, SYSTOLIC, VITAL_PANEL
from apps.clinical.fhir import views
from apps.clinical.models import Observation
from apps.clinical.services import observation_record

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_shapes():
    views.compiled_searches.clear()
    yield
    views.compiled_searches.clear()


def _panel(patient, code, at, components):
    return Observation.objects.create(
        patient=patient, category="vital-signs", code=code, value=None, unit="", components=components, effective_at=at
    )


@pytest.fixture
def round_of_vitals(patient):
    """A round taken at one instant, as the loader writes it, with its panels stored as other writers may."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    readings = [
        observation_record(patient=patient, code="8867-4", value=80, effective_at=at),
        observation_record(patient=patient, code=SYSTOLIC, value=120, effective_at=at),
        observation_record(patient=patient, code=DIASTOLIC, value=80, effective_at=at),
    ]
    return at, readings


@pytest.mark.parametrize("components", [[], {}, None])
def test_rest_latest_and_fhir_agree_on_an_empty_vital_panel(clinician, patient, round_of_vitals, components):
    at, readings = round_of_vitals
    panel = _panel(patient, VITAL_PANEL, at, components)
    latest = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/?latest=true").json()["results"]
    assert VITAL_PANEL not in {row["code"] for row in latest}  # components [] or {}: listed, value null
    assert all(row["value"] is not None or row["components"] for row in latest)

    listed = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/").json()["results"]
    row = next(row for row in listed if row["id"] == panel.pk)
    assert row["panel"] is True and row["value"] is None
    assert row["members"] == [reading.pk for reading in readings]
    reading = next(row for row in listed if row["id"] == readings[0].pk)
    assert reading["panel"] is False and reading["members"] is None

    resource = clinician.get(f"/fhir/Observation/{panel.pk}").json()
    assert [member["reference"] for member in resource["hasMember"]] == [f"Observation/{m}" for m in row["members"]]


def test_an_empty_blood_pressure_panel_is_a_panel_on_both_apis(clinician, patient, round_of_vitals):
    at, readings = round_of_vitals
    panel = _panel(patient, BP_PANEL, at, [])
    latest = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/?latest=true").json()["results"]
    assert BP_PANEL not in {row["code"] for row in latest}
    listed = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/").json()["results"]
    members = next(row for row in listed if row["id"] == panel.pk)["members"]
    assert members == [readings[1].pk, readings[2].pk]  # systolic and diastolic, not the heart rate
    resource = clinician.get(f"/fhir/Observation/{panel.pk}").json()
    assert resource["hasMember"] == [{"reference": f"Observation/{member}"} for member in members]


def test_a_blood_pressure_panel_with_components_is_a_panel_without_members(clinician, patient, round_of_vitals):
    at, _ = round_of_vitals
    panel = _panel(patient, BP_PANEL, at, {SYSTOLIC: 120.0, DIASTOLIC: 80.0})
    latest = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/?latest=true").json()["results"]
    row = next(row for row in latest if row["id"] == panel.pk)
    assert row["panel"] is True and row["members"] is None and row["components"]
    assert "hasMember" not in clinician.get(f"/fhir/Observation/{panel.pk}").json()


def test_loaded_panels_carry_the_same_members_on_both_apis(clinician, loaded):
    panel = Observation.objects.filter(code=VITAL_PANEL).order_by("-effective_at").first()
    rows = clinician.get(f"/api/v1/patients/{panel.patient_id}/vitals/?limit=1000").json()["results"]
    row = next(row for row in rows if row["id"] == panel.pk)
    assert row["panel"] is True and row["members"]
    resource = clinician.get(f"/fhir/Observation/{panel.pk}").json()
    assert [member["reference"] for member in resource["hasMember"]] == [f"Observation/{m}" for m in row["members"]]


def test_the_schema_documents_panel_and_members():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    properties = schema["components"]["schemas"]["ObservationOutput"]["properties"]
    assert properties["panel"]["type"] == "boolean" and properties["panel"]["description"]
    assert properties["members"]["type"] == "array" and properties["members"]["nullable"] is True
    assert properties["members"]["items"]["type"] == "integer" and properties["members"]["description"]
