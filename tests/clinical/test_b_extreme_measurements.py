"""Measurements that happen were refused as impossible: the accepted ranges were "plausible" ones (a body temperature
of 30-43 °C, SpO2 from 50 %, glucose to 800 mg/dL, weight from 0.5 kg), so a hypothermic patient's 28 °C, a
cyanotic infant's 45 %, a hyperosmolar patient's 1,200 mg/dL or a 400 g NICU baby's weight were answered 400 and
never stored. The bounds are now what a body can measure; values past them (or negative ones) stay refused."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.clinical.models import Observation

pytestmark = pytest.mark.django_db

RECORDED_IN_PRACTICE = [
    ("8310-5", 28.0),  # accidental or therapeutic hypothermia
    ("8310-5", 44.0),  # exertional heat stroke
    ("2708-6", 45.0),  # cyanotic congenital heart disease
    ("8867-4", 0.0),  # asystole, documented during a resuscitation
    ("8867-4", 290.0),  # an infant's supraventricular tachycardia
    ("9279-1", 0.0),  # apnoea
    ("9279-1", 90.0),  # a newborn in respiratory distress
    ("29463-7", 0.4),  # an extremely premature baby
    ("8302-2", 26.0),  # the same baby's length
    ("9843-4", 20.0),  # and head circumference
    ("39156-5", 110.0),  # extreme obesity
    ("8480-6", 30.0),  # shock
    ("2345-7", 1200.0),  # hyperosmolar hyperglycaemic state
    ("2345-7", 10.0),  # neonatal hypoglycaemia
    ("2823-3", 10.5),  # hyperkalaemia
    ("6690-2", 0.05),  # aplasia
    ("6690-2", 400.0),  # hyperleukocytosis
    ("718-7", 2.5),  # severe anaemia
    ("2160-0", 25.0),  # end-stage renal failure
]


@pytest.mark.parametrize(("code", "value"), RECORDED_IN_PRACTICE)
def test_an_extreme_but_real_measurement_is_recorded(clinician, patient, code, value):
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    response = clinician.post(
        f"/api/v1/patients/{patient.pk}/vitals/", {"code": code, "value": value, "effective_at": at}, format="json"
    )
    assert response.status_code == 201, response.content[:300]
    assert Observation.objects.get(pk=response.json()["id"]).value == value


@pytest.mark.parametrize(
    ("code", "value"),
    [("8310-5", 60.0), ("8310-5", -1.0), ("2708-6", 101.0), ("8867-4", -5.0), ("29463-7", 0.0), ("2345-7", -1.0)],
)
def test_an_impossible_measurement_is_still_a_field_level_400(clinician, patient, code, value):
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    response = clinician.post(
        f"/api/v1/patients/{patient.pk}/vitals/", {"code": code, "value": value, "effective_at": at}, format="json"
    )
    assert response.status_code == 400
    assert "value" in response.json()["errors"]
