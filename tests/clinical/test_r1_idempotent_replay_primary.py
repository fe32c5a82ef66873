"""With a read replica configured (DATABASE_REPLICA_URL), an Idempotency-Key replay read the created resource
after the create's transaction had closed, so through the router on the replica: one that had not caught up
answered 410 "deleted since" for a patient or reading that exists. The replay now reads on the primary.

The router is watched, not a second server: `replica` is made a configured alias, and every read the router is
asked about is recorded (what it chose) and sent to `default`, where the test's data is."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from controlplane.db_router import PrimaryReplicaRouter

# Committed for real: inside a test's wrapping transaction the router keeps every read on the primary anyway.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def routed(monkeypatch) -> list[tuple[str, str]]:
    """(model label, the alias the router chose) for each read while a replica is configured."""
    chosen: list[tuple[str, str]] = []
    decide = PrimaryReplicaRouter.db_for_read

    def watched(self, model, **hints):
        alias = decide(self, model, **hints)
        chosen.append((model._meta.label if model is not None else "", alias))
        return "default"  # no second connection: the same data, wherever the router sent the read

    monkeypatch.setitem(connections.settings, "replica", connections.settings["default"])
    monkeypatch.setattr(PrimaryReplicaRouter, "db_for_read", watched)
    return chosen


def _replayed_reads(clinician, routed, url: str, body: dict, key: str) -> list[tuple[str, str]]:
    first = clinician.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == 201, first.content[:300]
    routed.clear()
    again = clinician.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 201, again.content[:300]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    return [(label, alias) for label, alias in routed if label.startswith("clinical.")]


def test_a_patient_replay_reads_on_the_primary(clinician, routed):
    body = {"mrn": "MRN-R1-REPLAY", "family_name": "Okafor", "given_name": "Ada", "birth_date": "1980-02-03"}
    reads = _replayed_reads(clinician, routed, "/api/v1/patients/", body, "r1-patient")
    assert ("clinical.Patient", "default") in reads
    assert all(alias == "default" for _, alias in reads), reads


def test_a_reading_replay_reads_on_the_primary(clinician, routed, patient):
    body = {"code": "8867-4", "value": 80, "effective_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
    reads = _replayed_reads(clinician, routed, f"/api/v1/patients/{patient.pk}/vitals/", body, "r1-reading")
    assert ("clinical.Observation", "default") in reads
    assert all(alias == "default" for _, alias in reads), reads
