"""What a run records when it is interrupted or measured only in part (review c): the verdict when one pattern
ran past the statement timeout, a recommendation whose apply was interrupted or whose worker was lost, the
report's recommendation status after the run, the plan shown after --apply, and the optimizer's own
statements in its findings."""

import threading
from io import StringIO

import pytest
from django.db import connection
from django.template.loader import render_to_string

from apps.optimizer import database, services
from apps.optimizer.management.commands.optimize import Command, Terminated
from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation
from apps.optimizer.steps import STEPS, DatabaseStep
from apps.optimizer.types import Goals
from tests.optimizer.support import INDEX, connect, index_state, sql


def _recommendation(run: OptimizationRun, **fields) -> Recommendation:
    return Recommendation.objects.create(
        run=run,
        step="database",
        kind="create_index",
        subject=INDEX,
        title=f"Create index {INDEX} on clinical_observation",
        reason="Query pattern observations is designed around this index, and it is missing.",
        change={"index": INDEX, "sql": "CREATE INDEX ..."},
        **fields,
    )


# 1. One pattern stopped at the statement timeout left the others unjudged.

PATTERNS = [
    {"pattern": "patient_by_mrn", "wall_ms": 8.408, "indexes_used": [], "seq_scans": []},
    {"pattern": "audit_by_patient", "timed_out_ms": 1, "execution_ms": None, "indexes_used": [], "seq_scans": []},
]


def test_a_timed_out_pattern_does_not_hide_another_patterns_miss():
    verdicts = DatabaseStep().verdicts({"patterns": [dict(p) for p in PATTERNS]}, Goals(response_time_ms=2.0))
    [slowest_timed] = [v for v in verdicts if "patient_by_mrn" in v["subject"]]
    assert slowest_timed["met"] is False and slowest_timed["measured"] == 8.408, verdicts
    [timed_out] = [v for v in verdicts if "audit_by_patient" in v["subject"]]
    assert timed_out["met"] is False


@pytest.mark.django_db
def test_the_run_with_a_timed_out_pattern_and_a_missed_one_exits_1():
    run = services.optimization_run_create(target="database", response_time_ms=2.0)
    verdicts = DatabaseStep().verdicts({"patterns": [dict(p) for p in PATTERNS]}, Goals(response_time_ms=2.0))
    run.steps.update(status=OptimizationStep.Status.SUCCEEDED, verdicts=verdicts)
    run = services.optimization_run_finalize(run_id=run.pk)
    assert run.targets_met is False
    assert services.run_exit_code(run) == 1


@pytest.mark.django_db
def test_a_timed_out_pattern_is_never_a_pass():
    patterns = [{**PATTERNS[0], "wall_ms": 0.5}, {**PATTERNS[1], "timed_out_ms": 1}]
    run = services.optimization_run_create(target="database", response_time_ms=2.0)
    run.steps.update(
        status=OptimizationStep.Status.SUCCEEDED,
        verdicts=DatabaseStep().verdicts({"patterns": patterns}, Goals(2.0)),
    )
    run = services.optimization_run_finalize(run_id=run.pk)
    assert run.targets_met is False
    assert services.run_exit_code(run) == 1
    [timed_out] = [v for v in run.verdicts if "statement timeout" in v["subject"]]
    assert timed_out["met"] is False and "not measured" in timed_out["subject"]


def test_a_pattern_timed_out_at_or_past_the_goal_is_a_miss():
    verdicts = DatabaseStep().verdicts(
        {"patterns": [{**PATTERNS[0], "wall_ms": 0.5}, {**PATTERNS[1], "timed_out_ms": 30000}]},
        Goals(response_time_ms=100.0),
    )
    assert [v["met"] for v in verdicts] == [False, True]


# 2. Ctrl-C or SIGTERM during an apply left the recommendation applying for 2 h.


@pytest.mark.django_db
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, Terminated, SystemExit])
def test_an_interrupted_apply_fails_its_recommendation_with_the_reason(monkeypatch, interrupt):
    run = services.optimization_run_create(target="database", apply=True)
    recommendation = _recommendation(run)

    def interrupted(change, subject, evidence=None):
        raise interrupt()

    monkeypatch.setattr(STEPS["database"], "apply", interrupted)
    with pytest.raises(interrupt):
        services.recommendation_apply(recommendation=recommendation, via="optimize --apply")
    recommendation.refresh_from_db()
    assert recommendation.status == Recommendation.Status.FAILED
    assert "Interrupted" in recommendation.outcome["error"]
    assert interrupt.__name__ in recommendation.outcome["error"]


# 3. A worker killed mid-build: the step sent again must finish its earlier attempt's claim.


def _lost_attempt() -> tuple[OptimizationRun, OptimizationStep, Recommendation]:
    """An --apply run whose worker was lost while it applied: its step running, its claim applying."""
    from django.utils import timezone

    run = services.optimization_run_create(target="database", apply=True)
    step = run.steps.get()
    OptimizationStep.objects.filter(pk=step.pk).update(
        status=OptimizationStep.Status.RUNNING, attempts=1, started_at=timezone.now(), progress=0.6
    )
    OptimizationRun.objects.filter(pk=run.pk).update(status=OptimizationRun.Status.RUNNING)
    recommendation = _recommendation(
        run, status=Recommendation.Status.APPLYING, decided_via="optimize --apply", decided_at=timezone.now()
    )
    return run, step, recommendation


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("designed_indexes_restored")
def test_the_retried_step_records_the_index_its_lost_attempt_built(data):
    _run, step, recommendation = _lost_attempt()
    messages = []
    step = services.optimization_step_execute(step_id=step.pk, hook=lambda s, f, m: messages.append(m))
    recommendation.refresh_from_db()
    assert recommendation.status == Recommendation.Status.APPLIED, recommendation.outcome
    assert recommendation.outcome["resumed"] is True
    assert step.status == OptimizationStep.Status.SUCCEEDED
    assert any("restarted" in message and "attempt 2" in message for message in messages), messages


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("designed_indexes_restored")
def test_the_retried_step_waits_for_the_lost_sessions_build_and_verifies_it(data, monkeypatch):
    """The lost worker's session goes on building the index: the step sent again saw it "building", proposed
    nothing, succeeded, and left the claim applying. It waits for that build and records it verified."""
    run, step, recommendation = _lost_attempt()
    sql(f"DROP INDEX {INDEX}")
    statement = database.designed_index_sql(INDEX)
    observer, holder, orphan = connect(), connect(), connect()
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE clinical_observation IN ROW EXCLUSIVE MODE")  # the orphan's build waits for it
    built = threading.Thread(target=lambda: orphan.execute(statement), daemon=True)
    built.start()
    seen_building, released = [], []
    original = database._index_state

    def index_state_seen(cursor, index):
        state = original(cursor, index)
        if state and state[1] and not released:
            seen_building.append(index)
            holder.execute("COMMIT")  # the orphan's build goes on to the end once the retried step waits
            released.append(True)
        return state

    monkeypatch.setattr(database, "_index_state", index_state_seen)
    try:
        for _ in range(1200):  # the orphan's build is in progress: its index exists, invalid
            if index_state(INDEX) is not None:
                break
            threading.Event().wait(0.1)
        assert index_state(INDEX) == (False,)
        step = services.optimization_step_execute(step_id=step.pk)
    finally:
        if not released:
            holder.execute("COMMIT")
        built.join(120)
        for session in (observer, holder, orphan):
            session.close()
    recommendation.refresh_from_db()
    assert seen_building == [INDEX]
    assert recommendation.status == Recommendation.Status.APPLIED, recommendation.outcome
    assert recommendation.outcome["note"] == "verified valid after its lost attempt"
    assert index_state(INDEX) == (True,)
    assert step.status == OptimizationStep.Status.SUCCEEDED
    assert not run.recommendations.filter(status=Recommendation.Status.APPLYING).exists()


# 4. The stored report froze the recommendations' status at the time of the run.


@pytest.mark.django_db
def test_the_served_report_shows_the_recommendation_status_now(admin_client):
    run = services.optimization_run_create(target="database")
    recommendation = _recommendation(run)
    run.steps.update(status=OptimizationStep.Status.SUCCEEDED)
    run = services.optimization_run_finalize(run_id=run.pk)
    assert "Pending" in run.report_html and "at the time of the run" in run.report_html
    assert f"/optimizer/runs/{run.pk}/report/" in run.report_html
    services.recommendation_dismiss(recommendation=recommendation, via="test")
    page = admin_client.get(f"/optimizer/runs/{run.pk}/report/").content.decode()
    recommendations = page[page.index("<h2>Recommendations</h2>") :]
    assert "Dismissed" in recommendations and "Pending" not in recommendations
    assert "Status as of" in recommendations


# 5. After --apply the report and the CLI showed the plan from before the change.

REMEASURED = {
    "pattern": "observations",
    "description": "",
    "wall_ms": 11.034,
    "execution_ms": 10.0,
    "indexes_used": [],
    "seq_scans": ["clinical_observation"],
    "wall_ms_after": 4.233,
    "execution_ms_after": 3.9,
    "indexes_used_after": [INDEX],
    "seq_scans_after": [],
}


def test_the_report_shows_the_plan_measured_after_the_change():
    html = render_to_string("optimizer/_database.html", {"findings": {"patterns": [REMEASURED]}, "step": None})
    assert INDEX in html
    assert "after:" in html


def test_remeasuring_keeps_the_plan_after(monkeypatch):
    again = [{**REMEASURED, "wall_ms": 4.2, "indexes_used": [INDEX], "seq_scans": [], "plan": {"Node Type": "x"}}]
    monkeypatch.setattr(database, "explain_patterns", lambda progress: again)
    monkeypatch.setattr(database, "index_states", lambda: [])
    before = {k: v for k, v in REMEASURED.items() if not k.endswith("_after")}
    findings = DatabaseStep().remeasure({"patterns": [before]}, [{}], lambda f, m: None)
    assert findings["patterns"][0]["seq_scans_after"] == []
    assert findings["patterns"][0]["plan_after"] == {"Node Type": "x"}


@pytest.mark.django_db
def test_the_summary_shows_the_plan_after_and_says_already_present():
    run = services.optimization_run_create(target="database", apply=True)
    run.steps.update(status=OptimizationStep.Status.SUCCEEDED, findings={"patterns": [REMEASURED]})
    _recommendation(
        run, status=Recommendation.Status.APPLIED, outcome={"index": INDEX, "sql": "", "note": "already present"}
    )
    command = Command(stdout=StringIO(), stderr=StringIO())
    command._summarize(run)
    out = command.stdout._out.getvalue()
    row = next(line for line in out.splitlines() if line.strip().startswith("observations"))
    assert INDEX in row and "SEQ SCAN" not in row, row
    assert "ALREADY PRESENT" in out and "APPLIED  " not in out, out


def test_the_optimizers_own_statements_are_tagged_and_scans_read_before_its_probes(monkeypatch):
    calls = []

    def probes(progress):
        calls.append(("probes", database._tag_statement in connection.execute_wrappers))
        return []

    monkeypatch.setattr(database, "explain_patterns", probes)
    monkeypatch.setattr(database, "table_scans", lambda: calls.append(("table_scans", None)) or [])
    monkeypatch.setattr(connection, "vendor", "postgresql")
    DatabaseStep().measure(Goals(), lambda f, m: None)
    assert calls == [("table_scans", None), ("probes", True)]


def test_pg_stat_statements_findings_leave_the_optimizers_own_statements_out():
    class Cursor:
        statements = []

        def execute(self, statement, params=None):
            self.statements.append((statement, params))

        def fetchone(self):
            return ("pg_stat_statements",)

        def fetchall(self):
            return []

    cursor = Cursor()
    assert database.statement_statistics(cursor)["available"] is True
    select, params = next((s, p) for s, p in cursor.statements if "FROM pg_stat_statements" in s)
    assert database.OWN_STATEMENT_TAG in params
    assert "explain" in select.lower()
