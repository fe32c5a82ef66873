"""`optimize database`: EXPLAIN of every query pattern, the index advisor, --apply, the stored report."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from apps.clinical.loader import synthetic_patients_load
from apps.clinical.query_patterns import QUERY_PATTERNS
from apps.optimizer.models import OptimizationRun
from tests.clinical.conftest import LOAD_END

pytestmark = pytest.mark.django_db(transaction=True)  # CREATE INDEX CONCURRENTLY cannot run in a transaction


@pytest.fixture
def data():
    synthetic_patients_load(patients=40, days=1, seed=21, end=LOAD_END, batch_size=20, workers=1)


def _optimize(*args) -> tuple[OptimizationRun, str]:
    out = StringIO()
    call_command("optimize", "database", *args, stdout=out)
    return OptimizationRun.objects.latest("started_at"), out.getvalue()


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'clinical_observation'")
        return {row[0] for row in cursor.fetchall()}


def test_every_pattern_is_explained_with_its_plan(data):
    run, output = _optimize()
    assert run.status == "succeeded" and not run.apply and not run.applied
    measured = {p["pattern"]: p for p in run.findings["patterns"]}
    assert set(measured) == {pattern.name for pattern in QUERY_PATTERNS}
    assert all(p["execution_ms"] >= 0 and p["plan"] for p in measured.values())
    assert "clinical_patient_identifier_unique" in measured["patient_by_mrn"]["indexes_used"]
    assert not [r for r in run.recommendations if r["kind"] == "create_index"]
    assert "patient_by_mrn" in output


def test_a_dropped_index_is_recommended_and_recreated_with_apply(data, client, admin_user):
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX clinical_obs_patient_cat")
    run, _ = _optimize()
    assert "clinical_obs_patient_cat" not in _indexes()  # a dry run changes nothing
    recommended = [r for r in run.recommendations if r["kind"] == "create_index"]
    assert [r["index"] for r in recommended] == ["clinical_obs_patient_cat"]
    assert recommended[0]["sql"].startswith("CREATE INDEX CONCURRENTLY")

    run, output = _optimize("--apply")
    assert "clinical_obs_patient_cat" in _indexes()
    assert run.applied[0]["index"] == "clinical_obs_patient_cat"
    assert "APPLIED" in output
    measured = {p["pattern"]: p for p in run.findings["patterns"]}
    assert "clinical_obs_patient_cat" in measured["observations_by_category"]["indexes_used_after"]

    client.force_login(admin_user)
    report = client.get(f"/optimizer/runs/{run.pk}/report/")
    assert report.status_code == 200
    html = report.content.decode()
    assert "<svg" in html and "observations_by_category" in html and "CREATE INDEX CONCURRENTLY" in html


def test_reports_are_for_staff_only(data, client):
    run, _ = _optimize()
    response = client.get(f"/optimizer/runs/{run.pk}/report/")
    assert response.status_code == 302


def test_pg_stat_statements_availability_is_reported(data):
    run, _ = _optimize()
    slow = run.findings["slow_statements"]
    assert "available" in slow
    assert slow["available"] or "shared_preload_libraries" in slow["reason"]


def test_stored_plans_never_quote_the_sample_patient(data):
    from apps.clinical.models import Patient

    run, _ = _optimize()
    stored = str(run.findings) + run.report_html
    for patient in Patient.objects.all():
        assert patient.mrn not in stored
