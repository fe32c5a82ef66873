"""The index advisor against the real catalog: what it builds when it applies, an index someone already
made under another name, a concurrent build by another session, and a build that fails half-way."""

import threading
import time

import psycopg
import pytest
from django.db import connection

from apps.optimizer.database import designed_index_sql, index_create, index_states, missing_indexes
from apps.optimizer.models import Recommendation
from tests.helpers import wait_for
from tests.optimizer.support import INDEX, connect, index_state, optimize, sql

pytestmark = [
    pytest.mark.django_db(transaction=True),  # CREATE INDEX CONCURRENTLY cannot run in a transaction
    pytest.mark.usefixtures("designed_indexes_restored"),
]


def _build_behind_an_old_snapshot() -> tuple[psycopg.Connection, psycopg.Connection, threading.Thread]:
    """Start a CONCURRENTLY build of INDEX in another session, held in progress by `holder`'s old snapshot
    until `holder` commits."""
    holder, builder = connect(), connect()
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT 1 FROM clinical_patient LIMIT 1")  # an old snapshot the build must wait out
    built = threading.Thread(target=builder.execute, args=(designed_index_sql(INDEX),))
    built.start()
    return holder, builder, built


def _database_oid() -> int:
    return sql("SELECT oid FROM pg_database WHERE datname = current_database()")[0][0]


def _building(name: str) -> list[tuple]:
    return sql(
        "SELECT pid FROM pg_stat_progress_create_index WHERE index_relid = to_regclass(%s) AND datid = %s",
        [name, _database_oid()],
    )


def _looked_three_times(looks: list[tuple], applier: threading.Thread) -> None:
    """Until the applier has read the index's state three times (two idle looks made a leftover of it), or ended.
    A sleep of 2 s stood for this: on a loaded host the applier had not looked once by then, and the test passed
    without testing the wait; a late build commit read as idle twice dropped the index (test_c_build_commit_awaited)."""
    wait_for(lambda: len(looks) >= 3 or not applier.is_alive(), 60, "the applier to look at the index three times")
    assert looks[:3] == [(False, True)] * 3, looks


def test_applying_builds_the_models_definition_never_the_sql_stored_in_the_row(data):
    """A recommendation's `change` is a row, not code: applying ran whatever SQL it held."""
    sql(f"DROP INDEX {INDEX}")
    run, _, _ = optimize("database", "--inline")
    recommendation = run.recommendations.get(kind="create_index", subject=INDEX)
    recommendation.change = {**recommendation.change, "sql": "CREATE TABLE optimizer_not_an_index (id int)"}
    recommendation.save(update_fields=["change"])

    from apps.optimizer.services import recommendation_apply

    applied = recommendation_apply(recommendation=recommendation, via="test")
    assert applied.status == Recommendation.Status.APPLIED, applied.outcome
    assert sql("SELECT to_regclass('optimizer_not_an_index')") == [(None,)]
    assert index_state(INDEX) == (True,)
    assert applied.outcome["sql"] == designed_index_sql(INDEX)


def test_an_index_an_existing_one_already_covers_is_not_proposed_again(data):
    """A DBA's index under another name with the designed columns first: a second copy costs every write."""
    sql(f"DROP INDEX {INDEX}")
    sql("CREATE INDEX dba_obs_by_category ON clinical_observation (patient_id, category, effective_at DESC, id)")
    # The same for a partial index, its predicate spelled the way PostgreSQL prints it.
    sql("DROP INDEX clinical_patient_birth")
    sql("CREATE INDEX dba_patient_birth ON clinical_patient (birth_date) WHERE is_deleted = false")

    states = {state["index"]: state for state in index_states()}
    assert states[INDEX]["state"] == "covered" and states[INDEX]["covered_by"] == "dba_obs_by_category"
    assert states["clinical_patient_birth"]["covered_by"] == "dba_patient_birth"
    run, output, _ = optimize("database", "--inline", "--apply")
    assert not run.recommendations.filter(kind="create_index").exists(), output
    assert index_state(INDEX) is None  # nothing built beside it
    assert "dba_obs_by_category" in run.report_html


def test_an_index_with_other_columns_or_order_still_counts_as_missing(data):
    sql(f"DROP INDEX {INDEX}")
    sql("CREATE INDEX dba_obs_other_order ON clinical_observation (patient_id, effective_at DESC, category)")
    sql("CREATE INDEX dba_obs_mixed ON clinical_observation (patient_id, category, effective_at) WHERE value > 0")
    assert [state["index"] for state in missing_indexes()] == [INDEX]


def test_a_build_another_session_has_in_progress_is_waited_for_never_dropped_or_proposed(data, looks):
    """A migration building the index CONCURRENTLY shows as INVALID until it ends: taken for a leftover,
    the optimizer proposed it, and applying dropped the build in progress."""
    sql(f"DROP INDEX {INDEX}")
    holder, builder, built = _build_behind_an_old_snapshot()
    outcome = []

    def apply() -> None:
        try:
            outcome.append(index_create(index=INDEX))
        finally:
            connection.close()

    applier = threading.Thread(target=apply)
    try:
        wait_for(lambda: _building(INDEX), 30, f"a build of {INDEX} to start")
        assert INDEX not in [state["index"] for state in missing_indexes()]
        assert {s["index"]: s["state"] for s in index_states()}[INDEX] == "building"
        applier.start()
        _looked_three_times(looks, applier)
        assert applier.is_alive() and _building(INDEX)  # waiting, the other build untouched
    finally:
        holder.execute("COMMIT")
        built.join(30)
        applier.join(30)
        holder.close()
        builder.close()
    assert outcome == [{"index": INDEX, "sql": designed_index_sql(INDEX), "note": "already present"}]
    assert index_state(INDEX) == (True,)


def test_a_build_that_fails_leaves_no_invalid_index_behind(data):
    """A cancelled CREATE INDEX CONCURRENTLY leaves an INVALID index that every write maintains until the
    next run: the failed build drops it at once."""
    sql(f"DROP INDEX {INDEX}")
    holder = connect()
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT 1 FROM clinical_patient LIMIT 1")
    errors = []

    def apply() -> None:
        try:
            index_create(index=INDEX)
        except Exception as exc:  # noqa: BLE001 - the failure is what the test checks
            errors.append(type(exc).__name__)
        finally:
            connection.close()

    applier = threading.Thread(target=apply)
    applier.start()
    try:
        wait_for(lambda: _building(INDEX), 30, f"a build of {INDEX} to start")
        [(pid,)] = _building(INDEX)
        sql("SELECT pg_cancel_backend(%s)", [pid])
        applier.join(30)
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert errors == ["OperationalError"]  # canceling statement due to user request
    assert index_state(INDEX) is None
    assert [state["index"] for state in missing_indexes()] == [INDEX]


def test_an_invalid_index_no_model_declares_is_reported_for_repair(data):
    sql("CREATE INDEX dba_obs_value ON clinical_observation (value)")
    sql("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'dba_obs_value'::regclass")
    run, _, _ = optimize("database", "--inline")
    advice = run.recommendations.get(kind="repair_invalid_index")
    assert advice.subject == "dba_obs_value" and not advice.actionable and "REINDEX INDEX CONCURRENTLY" in advice.reason


def test_an_index_that_could_not_be_built_under_apply_fails_the_run(data):
    """`optimize database --apply` whose CREATE INDEX failed (here cancelled, as a statement timeout or an
    operator would) exited 0, "succeeded", the index listed as RECOMMEND: a script took it as built."""
    sql(f"DROP INDEX {INDEX}")
    holder = connect()
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT 1 FROM clinical_patient LIMIT 1")  # the build waits for this snapshot
    canceller = connect()

    # This database's builds only: the server is shared, and another database's build (another test run's)
    # was cancelled in this one's place, which then waited on `holder` for ever.
    ours = "FROM pg_stat_progress_create_index WHERE datname = current_database()"

    def cancel_the_build() -> None:
        wait_for(lambda: canceller.execute(f"SELECT count(*) {ours}").fetchone()[0], 60, "the apply's build to start")
        canceller.execute(f"SELECT pg_cancel_backend(pid) {ours}")

    cancelling = threading.Thread(target=cancel_the_build)
    cancelling.start()
    try:
        run, output, code = optimize("database", "--inline", "--apply")
    finally:
        cancelling.join(60)
        holder.execute("COMMIT")
        holder.close()
        canceller.close()
    step = run.steps.get(name="database")
    assert code == 2, output
    assert run.status == "failed" and step.status == "failed" and INDEX in step.error, step.error
    assert f"FAILED    [database] Create index {INDEX}" in output
    assert step.findings["patterns"] and "observations_by_category" in run.report_html  # the measurements stay
    assert run.recommendations.get(subject=INDEX).status == Recommendation.Status.FAILED


def test_progress_moves_on_with_each_change_applied(data):
    """Every change applied reported 80%: a run building several indexes sat there through all of them."""
    import re

    sql(f"DROP INDEX {INDEX}")
    sql("DROP INDEX clinical_encounter_patient")
    _, output, code = optimize("database", "--inline", "--apply")
    assert code == 0, output
    shares = [int(share) for share in re.findall(r"\[database\s+(\d+)%\] apply: ", output)]
    assert len(shares) == 2 and 60 <= shares[0] < shares[1] < 85, output


def test_unused_advice_on_a_designed_index_says_to_drop_it_in_the_model():
    """Dropped by hand, a designed index is proposed again by the next run: the advice says where to drop it."""
    from apps.optimizer.database import recommendations_for

    usage = {"table": "clinical_observation", "scans": 0, "bytes": 2**30, "unique": False, "primary": False}
    findings = {"missing_indexes": [], "table_scans": [],
                "index_usage": [{**usage, "index": INDEX}, {**usage, "index": "dba_obs_value"}]}  # fmt: skip
    reasons = {draft.subject: draft.reason for draft in recommendations_for(findings)}
    assert "in the model that declares it" in reasons[INDEX]
    assert "model" not in reasons["dba_obs_value"]


def test_cancelling_a_run_stops_the_index_build_it_is_waiting_on(data):
    """A build takes minutes on a large table (or waits, as here, for an old transaction): a cancelled run
    went on building until it ended. Now the build is cancelled on the server and its leftover dropped."""
    from apps.optimizer import services

    sql(f"DROP INDEX {INDEX}")
    run = services.optimization_run_create(target="database", apply=True)
    holder = connect()
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT 1 FROM clinical_patient LIMIT 1")  # the build waits for this snapshot

    def execute() -> None:
        try:
            services.optimization_run_inline(run)
        finally:
            connection.close()

    running = threading.Thread(target=execute)
    running.start()
    try:
        wait_for(lambda: _building(INDEX), 60, f"a build of {INDEX} to start")
        assert services.optimization_run_cancel(run=run, by="ops")
        running.join(15)
        assert not running.is_alive(), "the build went on after its run was cancelled"
    finally:
        holder.execute("COMMIT")
        holder.close()
        running.join(60)
    run.refresh_from_db()
    assert run.status == "failed" and run.error == "Cancelled by ops."
    recommendation = run.recommendations.get(subject=INDEX)
    assert recommendation.status == Recommendation.Status.FAILED and "Stopped with its run" in str(
        recommendation.outcome
    )
    assert index_state(INDEX) is None  # no INVALID leftover written on every change


@pytest.fixture
def app_role():
    """A login role like a production app's: no superuser, no pg_read_all_stats. Roles are the server's, not
    the test database's: the name carries this process's id, and the role is dropped after."""
    import os

    name = f"optimizer_app_{os.getpid()}"
    sql(f'CREATE ROLE "{name}" NOSUPERUSER NOINHERIT LOGIN')
    yield name
    sql(f'DROP ROLE IF EXISTS "{name}"')


def _as_role(role: str, work):
    """`work()` on this thread's connection as `role` (SET ROLE: what PostgreSQL checks is the current role)."""
    sql(f'SET ROLE "{role}"')
    try:
        return work()
    finally:
        sql("RESET ROLE")  # the connection goes back to the pool


def test_a_build_by_another_role_is_waited_for_by_a_role_that_may_not_read_its_progress(data, app_role, looks):
    """pg_stat_progress_create_index shows another role's build to a role without pg_read_all_stats as a pid
    with relid NULL: a migration running as another role was proposed as "Rebuild invalid", and applying
    ran DROP INDEX CONCURRENTLY on it. Here the build runs as the superuser and the optimizer as app."""
    sql(f"DROP INDEX {INDEX}")
    holder, builder, built = _build_behind_an_old_snapshot()
    outcome, errors = [], []

    def apply() -> None:
        try:
            outcome.append(_as_role(app_role, lambda: index_create(index=INDEX)))
        except Exception as exc:  # noqa: BLE001 - the test reports what the applier met
            errors.append(repr(exc))
        finally:
            connection.close()

    applier = threading.Thread(target=apply)
    try:
        wait_for(lambda: _building(INDEX), 30, f"a build of {INDEX} to start")
        # The build's first transaction commits the index INVALID.
        wait_for(lambda: index_state(INDEX) == (False,), 30, f"{INDEX} to be committed INVALID")
        # The view is the cluster's: a build in another database at the same time (another suite) is listed too.
        progress = "SELECT relid, index_relid, phase FROM pg_stat_progress_create_index WHERE datid = %s"
        seen = _as_role(app_role, lambda: sql(progress, [_database_oid()]))
        assert seen == [(None, None, None)]  # the staging is the reviewer's: the app role sees a pid alone
        states = _as_role(app_role, lambda: {s["index"]: s["state"] for s in index_states()})
        assert states[INDEX] == "building"
        assert INDEX not in _as_role(app_role, lambda: [s["index"] for s in missing_indexes()])
        applier.start()
        _looked_three_times(looks, applier)
        assert applier.is_alive() and _building(INDEX), errors  # waiting, the other build untouched
    finally:
        holder.execute("COMMIT")
        built.join(30)
        if applier.ident is not None:  # a failure before it started is the one to report
            applier.join(30)
        holder.close()
        builder.close()
    assert errors == []
    assert outcome == [{"index": INDEX, "sql": designed_index_sql(INDEX), "note": "already present"}]
    assert index_state(INDEX) == (True,)


def test_a_run_cancelled_while_another_applier_holds_the_index_stops_waiting(data):
    """A run waiting its turn behind another applier of the same index (the per-index advisory lock; another
    run's build takes an hour on a large table) went on waiting after it was cancelled, then reported the
    other's index as applied by it. Now it stops within seconds and applies nothing."""
    from apps.optimizer import services
    from apps.optimizer.models import OptimizationStep

    sql(f"DROP INDEX {INDEX}")
    other = connect()
    other.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"optimizer.index_create:{INDEX}"])
    run = services.optimization_run_create(target="database", apply=True)

    def execute() -> None:
        try:
            services.optimization_run_inline(run)
        finally:
            connection.close()

    running = threading.Thread(target=execute)
    running.start()
    try:
        applying = OptimizationStep.objects.filter(run=run, progress_message__startswith="apply")
        wait_for(applying.exists, 120, "the run to reach its apply step")
        time.sleep(1)  # waiting on the lock
        assert services.optimization_run_cancel(run=run, by="ops")
        running.join(15)
        assert not running.is_alive(), "the run went on waiting after it was cancelled"
    finally:
        other.close()  # its session's lock goes with it
        running.join(60)
    recommendation = run.recommendations.get(subject=INDEX)
    assert recommendation.status == Recommendation.Status.FAILED and "Stopped with its run" in str(
        recommendation.outcome
    )
    assert index_state(INDEX) is None


def test_a_statement_timeout_set_for_the_role_does_not_cancel_the_build(data):
    """A hospital's app role often carries a statement_timeout (ALTER ROLE ... SET statement_timeout): every
    CREATE INDEX CONCURRENTLY on a table larger than that timeout allowed was cancelled, its leftover dropped,
    and the next run tried again. The build (and dropping a leftover) now runs without it; the session's own
    setting comes back after."""
    sql(f"DROP INDEX {INDEX}")
    holder = connect()
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT 1 FROM clinical_patient LIMIT 1")  # the build waits out this snapshot: a slow build
    release = threading.Timer(2.0, lambda: holder.execute("COMMIT"))
    release.start()
    sql("SET statement_timeout = '300ms'")
    try:
        outcome = index_create(index=INDEX)
        assert sql("SHOW statement_timeout") == [("300ms",)]
    finally:
        sql("RESET statement_timeout")
        release.join()
        holder.close()
    assert outcome == {"index": INDEX, "sql": designed_index_sql(INDEX)}
    assert index_state(INDEX) == (True,)
