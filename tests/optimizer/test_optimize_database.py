"""`optimize database`: EXPLAIN of every query pattern, the index advisor, --apply, the stored report."""

import pytest
from django.db import connection

from apps.clinical.query_patterns import QUERY_PATTERNS
from apps.optimizer.models import Recommendation
from tests.optimizer.support import optimize

pytestmark = pytest.mark.django_db(transaction=True)  # CREATE INDEX CONCURRENTLY cannot run in a transaction


def _optimize(*args):
    run, output, _ = optimize("database", "--inline", *args)
    return run, run.steps.get(name="database"), output


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'clinical_observation'")
        return {row[0] for row in cursor.fetchall()}


def test_every_pattern_is_explained_with_its_plan(data):
    run, step, output = _optimize()
    assert run.status == "succeeded" and not run.apply and not step.applied
    measured = {p["pattern"]: p for p in step.findings["patterns"]}
    assert set(measured) == {pattern.name for pattern in QUERY_PATTERNS}
    assert all(p["execution_ms"] >= 0 and p["plan"] for p in measured.values())
    assert "clinical_patient_identifier_unique" in measured["patient_by_mrn"]["indexes_used"]
    assert not run.recommendations.filter(kind="create_index").exists()
    assert "patient_by_mrn" in output


def test_a_dropped_index_is_recommended_and_recreated_with_apply(data, client, admin_user):
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX clinical_obs_patient_cat")
    run, _, _ = _optimize()
    assert "clinical_obs_patient_cat" not in _indexes()  # a dry run changes nothing
    recommended = list(run.recommendations.filter(kind="create_index"))
    assert [r.subject for r in recommended] == ["clinical_obs_patient_cat"]
    assert recommended[0].change["sql"].startswith("CREATE INDEX CONCURRENTLY")
    assert recommended[0].status == Recommendation.Status.PENDING

    run, step, output = _optimize("--apply")
    assert "clinical_obs_patient_cat" in _indexes()
    assert step.applied[0]["index"] == "clinical_obs_patient_cat"
    assert "APPLIED" in output
    recommended[0].refresh_from_db()
    assert recommended[0].status == Recommendation.Status.SUPERSEDED  # the later run's own proposal was applied
    applied = run.recommendations.get(kind="create_index")
    assert applied.status == Recommendation.Status.APPLIED and applied.decided_via == "optimize --apply"
    measured = {p["pattern"]: p for p in step.findings["patterns"]}
    assert "clinical_obs_patient_cat" in measured["observations_by_category"]["indexes_used_after"]

    client.force_login(admin_user)
    report = client.get(f"/optimizer/runs/{run.pk}/report/")
    assert report.status_code == 200
    html = report.content.decode()
    assert "<svg" in html and "observations_by_category" in html and "CREATE INDEX CONCURRENTLY" in html


def test_an_index_left_invalid_by_a_lost_build_is_rebuilt(data):
    """A worker lost mid CREATE INDEX CONCURRENTLY leaves an INVALID index: it counts as missing."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'clinical_obs_patient_cat'::regclass")
    run, _, _ = _optimize("--apply")
    applied = run.recommendations.get(kind="create_index")
    assert applied.status == Recommendation.Status.APPLIED, applied.outcome
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'clinical_obs_patient_cat'::regclass")
        assert cursor.fetchone()[0] is True


def test_reports_are_for_staff_only(data, client):
    run, _, _ = _optimize()
    response = client.get(f"/optimizer/runs/{run.pk}/report/")
    assert response.status_code == 302


def test_pg_stat_statements_availability_is_reported(data):
    _, step, _ = _optimize()
    slow = step.findings["slow_statements"]
    assert "available" in slow
    assert slow["available"] or "shared_preload_libraries" in slow["reason"]


def test_stored_plans_never_quote_the_sample_patient(data):
    from apps.clinical.models import Patient

    run, step, _ = _optimize()
    stored = str(step.findings) + run.report_html
    for patient in Patient.objects.all():
        assert patient.mrn not in stored


def test_two_runs_applying_the_same_index_at_once_build_it_once(data):
    """Two `optimize database --apply` at once: the second waits for the first's build and finds the index
    there (it used to fail on "already exists", or drop the first's fresh index as an invalid leftover)."""
    import threading

    from apps.optimizer.database import index_create, missing_indexes

    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX clinical_obs_patient_cat")
        [missing] = missing_indexes()
        start, outcomes = threading.Barrier(2), []

        def apply(missing=missing, start=start, outcomes=outcomes) -> None:
            start.wait()
            try:
                outcomes.append(index_create(index=missing["index"]).get("note"))
            except Exception as exc:  # noqa: BLE001 - the failure is what the assertion reports
                outcomes.append(f"{type(exc).__name__}: {exc}")
            finally:
                connection.close()

        threads = [threading.Thread(target=apply) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes, key=str) == [None, "already present"], outcomes
        with connection.cursor() as cursor:
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'clinical_obs_patient_cat'::regclass")
            assert cursor.fetchone()[0] is True


def test_progress_advances_pattern_by_pattern(data):
    """The live feed and `optimize` show a step's progress: it used to sit at 10% for every pattern."""
    import re

    _, _, output = _optimize()
    shares = [int(share) for share in re.findall(r"\[database\s+(\d+)%\] explain", output)]
    assert len(shares) == len(QUERY_PATTERNS) and len(set(shares)) == len(shares)
    assert shares == sorted(shares) and shares[0] == 10 and shares[-1] < 60
