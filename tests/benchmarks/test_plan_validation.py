"""A plan is refused, field by field, when a run of it could only fail later: shapes too big to build or to
time, scopes no token can hold, request mixes PostgreSQL or Locust cannot take. A plan that slipped past
(saved without validation) fails its run with the reason instead of leaving it running."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import ApiClient
from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure
from tests.benchmarks.support import REQUESTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    return service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]


def _errors(service, **fields) -> dict[str, list[str]]:
    plan = BenchmarkPlan(name="plan", service=service, requests=REQUESTS, **fields)
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    return refused.value.message_dict


def test_a_sensible_plan_of_each_shape_is_accepted(service):
    for kind in BenchmarkPlan.Kind.values:
        BenchmarkPlan(name=f"plan {kind}", service=service, requests=REQUESTS, kind=kind).full_clean()
    BenchmarkPlan(name="big stress", service=service, requests=REQUESTS, kind="stress", users=10,
                  max_users=10_000, step_users=10, step_seconds=60).full_clean()  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "spike", "spike_multiplier": 1e308}, "spike_multiplier"),
        ({"kind": "spike", "spike_multiplier": float("inf")}, "spike_multiplier"),
        ({"kind": "spike", "spike_multiplier": float("nan")}, "spike_multiplier"),
        ({"kind": "spike", "users": 1000, "spike_multiplier": 50}, "spike_multiplier"),  # a 50,000-user peak
        ({"kind": "stress", "step_seconds": 2_147_483_647}, "step_seconds"),
        ({"kind": "stress", "max_users": 2_147_483_647, "step_users": 1}, "max_users"),
        ({"kind": "stress", "users": 1, "max_users": 5000, "step_users": 1}, "step_users"),  # 5,000 stages
        ({"kind": "stress", "users": 10, "max_users": 1000, "step_users": 10, "step_seconds": 3600}, "step_seconds"),
        ({"kind": "stress", "users": 50, "max_users": 20}, "max_users"),
        ({"duration_seconds": 68 * 365 * 86400}, "duration_seconds"),
        ({"spawn_rate": float("nan")}, "spawn_rate"),
        ({"gate_p95_ms": float("inf")}, "gate_p95_ms"),
        # gates no run could pass, or that read as empty (0 ms took the service's SLO instead)
        ({"gate_p95_ms": 0}, "gate_p95_ms"),
        ({"gate_p99_ms": -5}, "gate_p99_ms"),
        ({"gate_avg_ms": -1}, "gate_avg_ms"),
        ({"gate_error_rate_pct": -1}, "gate_error_rate_pct"),
        ({"gate_error_rate_pct": 150}, "gate_error_rate_pct"),
        ({"gate_min_rps": -1}, "gate_min_rps"),
        ({"min_regression_pct": -50}, "min_regression_pct"),  # the threshold was the A/A noise alone
    ],
)
def test_shapes_a_run_could_not_build_or_time_are_refused(service, fields, field):
    assert field in _errors(service, **fields)


def test_stages_of_a_refused_stress_plan_are_never_built(service, monkeypatch):
    from apps.benchmarks import runner

    monkeypatch.setattr(runner, "stages_for", lambda plan: pytest.fail("validation built the stages"))
    assert "max_users" in _errors(service, kind="stress", max_users=2_147_483_647, step_users=1)


@pytest.mark.parametrize("scopes", [["nope", 5], "patient:read", ["patient:read", "nope"], {"patient:read": 1}])
def test_scopes_must_be_a_list_of_known_scopes(service, scopes):
    errors = _errors(service, scopes=scopes)
    assert list(errors) == ["scopes"] and "patient:read" in errors["scopes"][0]


@pytest.mark.parametrize(
    "requests",
    [
        [{"path": "/x", "weight": float("nan")}],
        [{"path": "/x", "weight": float("inf")}],
        [{"path": "/x", "weight": 1, "body": {"dose": [1, float("-inf")]}}],
        [{"path": "/x", "weight": 0}],
        [{"path": "/x", "weight": True}],
        [{"path": "/x", "weight": "1"}],
        [{"path": 5}],
        [{"path": "/x", "method": 5}],
        [{"path": "/x", "method": "TRACE"}],
        [{"path": "/x", "name": ["card"]}],
        [{"path": "/patients/{patient_id}/", "name": ""}],  # Locust named it by its URL: a row per patient
        [{"path": "/x", "name": "  "}],
        [{"path": "/x", "wieght": 2}],
        [{"path": "/patients/{mrn}/", "weight": 1}],  # sent as written: every request a 404
        [{"path": "/patients/{patient_id}/{code}", "weight": 1}],
        ["/x"],
        [],
        {"path": "/x"},
    ],
)
def test_request_mixes_are_checked_and_non_finite_numbers_refused(service, requests):
    plan = BenchmarkPlan(name="plan", service=service, requests=requests)
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    assert list(refused.value.message_dict) == ["requests"]


def test_admin_form_shows_a_field_error_for_nan_in_json_not_a_500(service, admin_client):
    form = {"name": "nan plan", "service": service.pk, "kind": "load", "scopes": '["patient:read"]', "users": 10,
            "spawn_rate": 10, "duration_seconds": 60, "generator_processes": 1, "step_users": 10, "step_seconds": 20,
            "max_users": 200, "spike_multiplier": 4, "min_regression_pct": 5, "enabled": "on",
            "requests": '[{"path": "/x", "weight": NaN}]'}  # fmt: skip
    response = admin_client.post("/admin/benchmarks/benchmarkplan/add/", form)
    assert response.status_code == 200
    assert "requests" in response.context["adminform"].form.errors
    assert not BenchmarkPlan.objects.exists()

    form |= {"requests": '[{"path": "/x", "weight": 1}]', "kind": "spike", "spike_multiplier": "1e308"}
    response = admin_client.post("/admin/benchmarks/benchmarkplan/add/", form)
    assert response.status_code == 200
    assert "spike_multiplier" in response.context["adminform"].form.errors

    form |= {"spike_multiplier": 4}
    assert admin_client.post("/admin/benchmarks/benchmarkplan/add/", form).status_code == 302
    assert BenchmarkPlan.objects.get().requests == [{"path": "/x", "weight": 1}]


def _queued_run(plan: BenchmarkPlan) -> BenchmarkRun:
    """A run queued while the plan was valid; the plan is changed (outside admin) before it executes."""
    from datetime import timedelta

    from django.utils import timezone

    return BenchmarkRun.objects.create(plan=plan, deadline=timezone.now() + timedelta(minutes=5))


def test_a_run_whose_token_cannot_be_issued_fails_with_the_reason(service):
    plan = BenchmarkPlan.objects.create(name="bad scopes", service=service, requests=REQUESTS, scopes=["nope"])
    run = services.benchmark_run_execute(run_id=_queued_run(plan).pk)
    assert run.status == BenchmarkRun.Status.FAILED and "nope" in run.error
    assert not ApiClient.objects.exists()

    BenchmarkPlan.objects.filter(pk=plan.pk).update(scopes=["nope", 5])
    run = services.benchmark_run_execute(run_id=_queued_run(plan).pk)
    assert run.status == BenchmarkRun.Status.FAILED and run.error.startswith("TypeError")


def test_a_stored_plan_that_is_no_longer_valid_starts_no_run(service, admin_client):
    """Saved before these checks (or edited outside admin): each way to start it says why, nothing crashes."""
    from django.core.management import CommandError, call_command

    from apps.benchmarks.tasks import scheduled_run

    plan = BenchmarkPlan.objects.create(name="huge stress", service=service, requests=REQUESTS, kind="stress",
                                        users=1, max_users=2_000_000_000, step_users=1)  # fmt: skip
    with pytest.raises(ValidationError):
        services.benchmark_run_create(plan=plan)
    response = admin_client.post("/admin/benchmarks/benchmarkplan/",
                                 {"action": "run_now", "_selected_action": [plan.pk]}, follow=True)  # fmt: skip
    assert response.status_code == 200 and "fix the plan first" in response.content.decode()
    assert scheduled_run(plan.pk) is None
    with pytest.raises(CommandError, match="Fix the plan first"):
        call_command("bench", "run", str(plan.pk))
    assert not BenchmarkRun.objects.exists()


def test_a_run_token_goes_only_to_the_hosts_the_deployment_allows(service, settings):
    """An admin-editable base URL must not decide where a PHI-scoped token is sent."""
    plan = BenchmarkPlan.objects.create(name="exfil", service=service, requests=REQUESTS)
    run = _queued_run(plan)
    service.base_url = "http://collector.example:8399"
    service.save()
    plan.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    assert "BENCHMARK_TOKEN_HOSTS" in refused.value.message_dict["service"][0]
    run = services.benchmark_run_execute(run_id=run.pk)  # queued before the URL changed
    assert run.status == BenchmarkRun.Status.FAILED and "BENCHMARK_TOKEN_HOSTS" in run.error
    assert not ApiClient.objects.exists()  # no token was issued
    settings.BENCHMARK_TOKEN_HOSTS = ["collector.example"]
    plan.full_clean()  # allowed where the deployment says so


@pytest.mark.parametrize(
    "base_url",
    ["http://evil.example\\@127.0.0.1:8000", "http://evil.example@127.0.0.1:8000", "http://127.0.0.1@evil.example/"],
)
def test_a_url_that_parsers_read_differently_gets_no_token(base_url):
    """urllib reads 127.0.0.1 where urllib3 (requests, Locust) connects to evil.example: refused."""
    from apps.benchmarks.models import token_host_allowed

    assert token_host_allowed("http://127.0.0.1:8000") and not token_host_allowed(base_url)


def test_a_user_gives_a_plan_only_scopes_they_hold(service, client, django_user_model):
    from django.contrib.auth.models import Group

    from apps.accounts.roles import ADMINISTRATORS, OPERATORS

    operator = django_user_model.objects.create_user("op", "op@example.org", "pw-Long-enough-1", is_staff=True)
    operator.groups.set(Group.objects.filter(name=OPERATORS))
    client.force_login(operator)
    form = {"name": "phi plan", "service": service.pk, "kind": "load", "users": 10, "spawn_rate": 10,
            "duration_seconds": 60, "generator_processes": 1, "step_users": 10, "step_seconds": 20,
            "max_users": 200, "spike_multiplier": 4, "min_regression_pct": 5, "enabled": "on",
            "requests": '[{"path": "/x", "weight": 1}]', "scopes": '["patient:read", "audit:read"]'}  # fmt: skip
    response = client.post("/admin/benchmarks/benchmarkplan/add/", form)
    assert response.status_code == 200 and "scopes you hold" in response.content.decode()
    assert not BenchmarkPlan.objects.exists()

    admin = django_user_model.objects.create_user("adm", "adm@example.org", "pw-Long-enough-1", is_staff=True)
    admin.groups.set(Group.objects.filter(name=ADMINISTRATORS))
    client.force_login(admin)
    assert client.post("/admin/benchmarks/benchmarkplan/add/", form).status_code == 302
    plan = BenchmarkPlan.objects.get()

    client.force_login(operator)  # an operator still edits the rest of a plan an administrator scoped
    edit = {**form, "duration_seconds": 90}
    response = client.post(f"/admin/benchmarks/benchmarkplan/{plan.pk}/change/", edit)
    assert response.status_code == 302, response.context["adminform"].form.errors
    plan.refresh_from_db()
    assert plan.duration_seconds == 90 and plan.scopes == ["patient:read", "audit:read"]


def test_admin_refuses_bad_numbers_field_by_field_and_keeps_a_hostile_name_inert(service, admin_client):
    form = {"name": "<script>alert(1)</script>", "service": service.pk, "kind": "load", "scopes": '["patient:read"]',
            "users": -3, "spawn_rate": 10, "duration_seconds": 0, "generator_processes": 1, "step_users": 10,
            "step_seconds": 20, "max_users": 200, "spike_multiplier": 4, "min_regression_pct": -50,
            "gate_p95_ms": -5, "gate_error_rate_pct": 120, "enabled": "on",
            "requests": '[{"path": "/x", "weight": 1}]'}  # fmt: skip
    response = admin_client.post("/admin/benchmarks/benchmarkplan/add/", form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    expected = {"users", "duration_seconds", "min_regression_pct", "gate_p95_ms", "gate_error_rate_pct"}
    assert expected <= set(errors), errors
    assert not BenchmarkPlan.objects.exists()

    form |= {"users": 3, "duration_seconds": 5, "min_regression_pct": 5, "gate_p95_ms": 500, "gate_error_rate_pct": 1}
    assert admin_client.post("/admin/benchmarks/benchmarkplan/add/", form).status_code == 302
    plan = BenchmarkPlan.objects.get()
    listing = admin_client.get("/admin/benchmarks/benchmarkplan/").content.decode()
    history = admin_client.get(f"/benchmarks/plans/{plan.pk}/report/").content.decode()
    for page in (listing, history):
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_a_plan_runs_once_at_a_time(service, admin_client, monkeypatch):
    """Two runs of one plan at once (Run now twice, or the nightly run during a manual one) each loaded the
    target on top of the other: both reported a service under twice the plan's load, and both became the
    baseline of later runs. A second run is refused, saying which run is in the way, until that one ends."""
    from django.core.management import CommandError, call_command

    from apps.benchmarks.tasks import scheduled_run

    monkeypatch.setattr(services, "benchmark_run_dispatch", lambda run: None)  # no worker here: runs stay pending
    plan = BenchmarkPlan.objects.create(name="once", service=service, requests=REQUESTS)
    first = services.benchmark_run_create(plan=plan)
    with pytest.raises(services.RunInProgress, match=f"#{first.pk}"):
        services.benchmark_run_create(plan=plan)
    response = admin_client.post("/admin/benchmarks/benchmarkplan/",
                                 {"action": "run_now", "_selected_action": [plan.pk]}, follow=True)  # fmt: skip
    assert f"run #{first.pk} is still pending" in response.content.decode()
    assert scheduled_run(plan.pk) is None
    with pytest.raises(CommandError, match=f"#{first.pk}"):
        call_command("bench", "run", str(plan.pk))
    assert list(plan.runs.all()) == [first]

    services.benchmark_run_cancel(run=first)
    assert services.benchmark_run_create(plan=plan).pk != first.pk


def test_a_run_waiting_in_the_queue_is_not_failed_by_its_deadline(service):
    """The checker failed pending runs past the deadline counted from their creation: a run queued behind a
    longer one (Run now on several plans, one worker) was failed before any worker had taken it. A pending
    run is failed only once it has waited a day, its message lost."""
    from datetime import timedelta

    from django.utils import timezone

    plan = BenchmarkPlan.objects.create(name="queued", service=service, requests=REQUESTS, duration_seconds=60)
    run = services.benchmark_run_create(plan=plan)
    later = timezone.now() + timedelta(hours=2)  # well past its 60 s + margin
    assert services.benchmark_runs_fail_stuck(now=later) == 0
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.PENDING

    a_day_later = timezone.now() + timedelta(seconds=services.QUEUE_WAIT_SECONDS + 60)
    assert services.benchmark_runs_fail_stuck(now=a_day_later) == 1
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and "No worker took it" in run.error
    assert services.benchmark_run_create(plan=plan).status == BenchmarkRun.Status.PENDING  # the plan runs again


def test_runs_of_one_target_run_one_at_a_time(service):
    """Two plans' runs against one target at once (the nightly run of every plan at 03:00, Run now on two
    plans) each measured the service under both loads, and each became a baseline saying so. The second
    waits, pending and saying for which run, until the first ends; another target's runs are not held."""
    from apps.services.services import service_ensure

    first = BenchmarkPlan.objects.create(name="first", service=service, requests=REQUESTS)
    running = services.benchmark_run_create(plan=first)
    BenchmarkRun.objects.filter(pk=running.pk).update(status=BenchmarkRun.Status.RUNNING)
    same_host, _ = service_ensure(slug="same-host", name="Same host", base_url="http://127.0.0.1:9/other/")
    second = BenchmarkPlan.objects.create(name="second", service=same_host, requests=REQUESTS)
    waiting = services.benchmark_run_create(plan=second)
    BenchmarkPlan.objects.update(scopes=["nope"])  # a started run then fails at once (no token), not loading
    with pytest.raises(services.TargetBusy, match=f"#{running.pk}"):
        services.benchmark_run_execute(run_id=waiting.pk)
    waiting.refresh_from_db()
    assert waiting.status == BenchmarkRun.Status.PENDING and waiting.attempts == 0
    assert waiting.progress_message == f"waiting for run #{running.pk} on the same target"

    elsewhere, _ = service_ensure(slug="elsewhere", name="Elsewhere", base_url="http://127.0.0.1:10")
    third = BenchmarkPlan.objects.create(name="third", service=elsewhere, requests=REQUESTS)
    queued = services.benchmark_run_create(plan=third)
    BenchmarkPlan.objects.update(scopes=["nope"])
    other = services.benchmark_run_execute(run_id=queued.pk)
    assert other.attempts == 1 and other.status == BenchmarkRun.Status.FAILED  # started (its token then failed)

    BenchmarkRun.objects.filter(pk=running.pk).update(status=BenchmarkRun.Status.SUCCEEDED)
    waiting = services.benchmark_run_execute(run_id=waiting.pk)
    assert waiting.attempts == 1 and waiting.status == BenchmarkRun.Status.FAILED and "nope" in waiting.error


def test_an_inline_run_on_a_busy_target_is_not_left_pending(service):
    from django.core.management import CommandError, call_command

    first = BenchmarkPlan.objects.create(name="first", service=service, requests=REQUESTS)
    running = services.benchmark_run_create(plan=first)
    BenchmarkRun.objects.filter(pk=running.pk).update(status=BenchmarkRun.Status.RUNNING)
    second = BenchmarkPlan.objects.create(name="second", service=service, requests=REQUESTS)
    with pytest.raises(CommandError, match=f"#{running.pk}"):
        call_command("bench", "run", "second", "--inline")
    assert second.runs.get().status == BenchmarkRun.Status.CANCELLED  # the plan is free to run later


def test_a_nightly_run_on_a_busy_target_is_sent_again_for_later(service):
    """The nightly schedule starts every plan at once: a second plan's run on the same target waits, sent to
    the benchmark workers again with a countdown (read back from the real broker here)."""
    import json
    from datetime import datetime

    from django.utils import timezone

    from apps.benchmarks.tasks import TARGET_BUSY_RETRY_SECONDS, scheduled_run
    from controlplane.celery import app

    first = BenchmarkPlan.objects.create(name="first", service=service, requests=REQUESTS)
    running = services.benchmark_run_create(plan=first)
    BenchmarkRun.objects.filter(pk=running.pk).update(status=BenchmarkRun.Status.RUNNING)
    second = BenchmarkPlan.objects.create(name="second", service=service, requests=REQUESTS)
    run_id = scheduled_run(second.pk)
    assert BenchmarkRun.objects.get(pk=run_id).status == BenchmarkRun.Status.PENDING

    found = None
    with app.connection_for_write() as broker:
        channel = broker.default_channel
        while (message := channel.basic_get("benchmarks", no_ack=True)) is not None:
            args = json.loads(message.body)[0]
            if message.headers["task"] == "benchmarks.execute_run" and args == [run_id]:
                found = message
    assert found is not None and found.headers["eta"], "no later try was sent"
    wait = (datetime.fromisoformat(found.headers["eta"]) - timezone.now()).total_seconds()
    assert TARGET_BUSY_RETRY_SECONDS - 15 < wait <= TARGET_BUSY_RETRY_SECONDS


def test_a_path_names_why_its_placeholder_is_refused(service):
    plan = BenchmarkPlan(name="plan", service=service, requests=[{"path": "/patients/{mrn}/", "weight": 1}])
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    errors = refused.value.message_dict["requests"]
    assert errors == ["Request 1: a path whose only placeholder is {patient_id} (not {mrn})."]
    BenchmarkPlan(name="ok", service=service, requests=[{"path": "/p/{patient_id}/", "weight": 1}]).full_clean()


def test_a_run_waits_for_a_busy_target_however_many_tries_it_takes(service):
    """retry(max_retries=None) means "the task's limit", Celery's 3: a run waiting behind one longer than about
    90 s was dropped after its third try, left pending until the checker failed it a day later. The fourth
    and later tries are sent (to the real broker) like the first."""
    import json

    from celery.exceptions import Retry

    from apps.benchmarks.tasks import execute_run
    from controlplane.celery import app

    first = BenchmarkPlan.objects.create(name="first", service=service, requests=REQUESTS)
    running = services.benchmark_run_create(plan=first)
    BenchmarkRun.objects.filter(pk=running.pk).update(status=BenchmarkRun.Status.RUNNING)
    second = BenchmarkPlan.objects.create(name="second", service=service, requests=REQUESTS)
    waiting = services.benchmark_run_create(plan=second)
    # As a worker hands it the tenth try, from the benchmarks queue.
    delivery = {"exchange": "benchmarks", "routing_key": "benchmarks"}
    execute_run.push_request(
        id="waiting-try-10",
        args=[waiting.pk],
        kwargs={},
        retries=10,
        is_eager=False,
        called_directly=False,
        delivery_info=delivery,
    )
    try:
        with pytest.raises(Retry):
            execute_run.run(waiting.pk)
    finally:
        execute_run.pop_request()
    sent = []
    with app.connection_for_write() as broker:
        channel = broker.default_channel
        while (message := channel.basic_get("benchmarks", no_ack=True)) is not None:
            if message.headers["task"] == "benchmarks.execute_run" and json.loads(message.body)[0] == [waiting.pk]:
                sent.append(message.headers["retries"])
    assert sent == [11]


@pytest.mark.django_db(transaction=True)
def test_two_runs_of_services_sharing_a_target_do_not_deadlock(monkeypatch):
    """Each run locked its own row with its plan's service (select_related), then every service of the target
    in pk order: two runs of two services sharing a host:port (two plans' nightly runs at 03:00, a worker of
    concurrency 2) held one service each and waited for the other's; PostgreSQL killed one as a deadlock,
    which nothing retried. Here both reach the target check at once (a barrier): one runs, the other waits."""
    import threading

    from django.db import connection

    target = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]
    same_host = service_ensure(slug="same-host", name="Same host", base_url="http://127.0.0.1:9/other/")[0]
    runs = [
        services.benchmark_run_create(plan=BenchmarkPlan.objects.create(name=name, service=service, requests=REQUESTS))
        for name, service in (("on the second", same_host), ("on the first", target))
    ]
    BenchmarkPlan.objects.update(scopes=["nope"])  # a started run then fails at once (no token), not loading
    barrier = threading.Barrier(2, timeout=10)
    look = services._run_on_target

    def meet_then_look(run):
        barrier.wait()
        return look(run)

    monkeypatch.setattr(services, "_run_on_target", meet_then_look)
    outcomes = {}

    def execute(run_id: int) -> None:
        try:
            outcomes[run_id] = services.benchmark_run_execute(run_id=run_id).status
        except services.TargetBusy:
            outcomes[run_id] = "waits"
        except Exception as error:  # noqa: BLE001 - what the test is about
            outcomes[run_id] = f"{type(error).__name__}: {error}"
        finally:
            connection.close()

    threads = [threading.Thread(target=execute, args=(run.pk,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(outcomes.values()) <= {"waits", BenchmarkRun.Status.FAILED}, outcomes
