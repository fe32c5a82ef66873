"""The adaptive controller: one step per signal window, signals every host and only served requests give,
priority-1 scopes never shed, and a policy turned off (or given a higher floor) set straight, with a row."""

from __future__ import annotations

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils import timezone

from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.metrics.selectors import service_p95_ms
from apps.ratelimits import selectors, services, tasks
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy
from apps.resources.models import ResourceSample
from apps.services.models import Service

pytestmark = pytest.mark.django_db
HOT = services.LoadSignals(cpu_pct=95.0, p95_ms_by_service={})
CALM = services.LoadSignals(cpu_pct=10.0, p95_ms_by_service={})


def _policy(**fields) -> RateLimitPolicy:
    return RateLimitPolicy.objects.create(
        **{"scope": "reports", "requests": 50, "priority": 5, "adaptive": True, "cpu_threshold_pct": 70, **fields}
    )


def _steps(changes: list[RateLimitAdjustment], policy: RateLimitPolicy) -> list[str]:
    return [f"{c.direction} {c.old_factor:g}->{c.new_factor:g}" for c in changes if c.policy_id == policy.pk]


def _floors_at_a_tenth() -> None:
    """The grading under test, not the seeded floors (tests/ratelimits/test_seeded_floors.py): room for many steps."""
    RateLimitPolicy.objects.filter(scope__in=["audit_logs", "ai_inference"]).update(min_factor=0.1)


def _a_window_later(*policies: RateLimitPolicy) -> None:
    """As if the policies' last adaptive step had been taken one signal window ago (every policy: none named)."""
    rows = RateLimitPolicy.objects.filter(pk__in=[p.pk for p in policies]) if policies else RateLimitPolicy.objects
    rows.update(last_step_at=F("last_step_at") - services.STEP_DWELL)


def _rollup(minute, *, route: str, count: int, ms: float, status_class: str = "2xx") -> None:
    histogram = new_histogram()
    for _ in range(count):
        histogram.record_value(int(ms * 1000))
    RequestRollup.objects.create(minute=minute, route=route, method="GET", status_class=status_class, client="c",
                                 count=count, histogram=histogram.encode())  # fmt: skip


def _this_minute():
    return timezone.now().replace(second=0, microsecond=0)


# 1. Turning adaptive off, and raising the floor


def test_turning_adaptive_off_in_admin_restores_the_configured_limit_and_records_it(admin_client):
    policy = _policy()
    services.ratelimits_adapt(signals=HOT)
    policy.refresh_from_db()
    assert policy.effective_requests == 25
    form = {"scope": "reports", "enabled": "on", "priority": 3, "requests": 50, "period_seconds": 60,
            "burst_per_second": "", "fail_open": "on", "cpu_threshold_pct": 70, "p95_threshold_ms": "",
            "tighten_factor": 0.5, "min_factor": 0.1, "recover_below": 0.8,
            "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0, "adjustments-MIN_NUM_FORMS": 0,
            "adjustments-MAX_NUM_FORMS": 0}  # fmt: skip
    # no "adaptive" in the form: its box unticked
    response = admin_client.post(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/", form)
    assert response.status_code == 302
    policy.refresh_from_db()
    assert not policy.adaptive and policy.current_factor == 1.0 and policy.effective_requests == 50
    last = policy.adjustments.order_by("-at", "-id").first()
    assert (last.direction, last.old_factor, last.new_factor) == ("recover", 0.5, 1.0)
    assert last.reason.startswith("adaptive turned off")


def test_an_admin_edit_keeps_a_step_the_controller_took_while_it_was_saved(admin_client):
    """The controller steps between the admin reading the policy and saving it: the edit must not write back the
    factor it read (the step's row would then describe a limit not in force). Here the step is an UPDATE on
    the admin's own connection right after its read; in production it is another worker's committed step."""
    from apps.ratelimits.admin import RateLimitPolicyAdmin

    policy = _policy()
    read = RateLimitPolicyAdmin.get_object

    def read_then_step(self, request, object_id, from_field=None):
        obj = read(self, request, object_id, from_field)
        services.ratelimits_adapt(signals=HOT)
        return obj

    form = {"scope": "reports", "enabled": "on", "priority": 5, "requests": 60, "period_seconds": 60,
            "burst_per_second": "", "fail_open": "on", "adaptive": "on", "cpu_threshold_pct": 70,
            "p95_threshold_ms": "", "tighten_factor": 0.5, "min_factor": 0.1, "recover_below": 0.8,
            "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0, "adjustments-MIN_NUM_FORMS": 0,
            "adjustments-MAX_NUM_FORMS": 0}  # fmt: skip
    with mock.patch.object(RateLimitPolicyAdmin, "get_object", read_then_step):
        response = admin_client.post(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/", form)
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.requests, policy.current_factor, policy.effective_requests) == (60, 0.5, 30)
    assert policy.last_step_at is not None
    assert _steps(list(policy.adjustments.all()), policy) == ["tighten 1->0.5"]


def test_a_policy_turned_off_outside_admin_gets_its_limit_back_on_the_next_run():
    policy = _policy()
    for _ in range(4):
        services.ratelimits_adapt(signals=HOT)
        _a_window_later(policy)
    policy.refresh_from_db()
    assert policy.current_factor == 0.1
    policy.adaptive = False
    policy.save()
    assert _steps(services.ratelimits_adapt(signals=HOT), policy) == ["recover 0.1->1"]  # no dwell for this
    assert _steps(services.ratelimits_adapt(signals=HOT), policy) == []
    policy.refresh_from_db()
    assert policy.effective_requests == 50


def test_adaptive_turned_back_on_tightens_at_once():
    policy = _policy()
    services.ratelimits_adapt(signals=HOT)
    RateLimitPolicy.objects.filter(pk=policy.pk).update(adaptive=False)
    services.ratelimits_adapt(signals=HOT)
    _a_window_later(policy)  # the controller's own step is a window old; the reset after it starts no wait
    RateLimitPolicy.objects.filter(pk=policy.pk).update(adaptive=True)
    assert _steps(services.ratelimits_adapt(signals=HOT), policy) == ["tighten 1->0.5"]
    history = policy.adjustments.order_by("at", "id").values_list("direction", "old_factor", "new_factor")
    assert list(history) == [("tighten", 1.0, 0.5), ("recover", 0.5, 1.0), ("tighten", 1.0, 0.5)]


def test_a_raised_floor_lifts_the_factor_and_the_row_calls_it_a_recovery():
    policy = _policy()
    RateLimitPolicy.objects.filter(pk=policy.pk).update(
        current_factor=0.1, min_factor=0.5, signal_read_at=timezone.now()
    )
    assert _steps(services.ratelimits_adapt(signals=HOT), policy) == ["recover 0.1->0.5"]
    policy.refresh_from_db()
    assert policy.current_factor == 0.5
    assert policy.adjustments.get().reason == "min_factor raised to 0.5"


def test_the_limit_in_force_is_not_one_short_of_an_exact_product():
    policy = _policy(requests=100, tighten_factor=0.57)
    services.ratelimits_adapt(signals=HOT)
    policy.refresh_from_db()
    assert policy.effective_requests == 57  # the float 100 x 0.57 is 56.99999999999999
    assert selectors.active_policy("reports").requests == 57


# 2. One step per signal window


def test_a_policy_steps_at_most_once_per_signal_window():
    policy = _policy()
    assert [_steps(services.ratelimits_adapt(signals=HOT), policy) for _ in range(4)] == [
        ["tighten 1->0.5"], [], [], []
    ]  # fmt: skip
    _a_window_later(policy)
    assert _steps(services.ratelimits_adapt(signals=HOT), policy) == ["tighten 0.5->0.25"]
    assert _steps(services.ratelimits_adapt(signals=CALM), policy) == []
    _a_window_later(policy)
    band = services.LoadSignals(cpu_pct=65.0, p95_ms_by_service={})  # under 70, not under 70 x 0.8
    assert _steps(services.ratelimits_adapt(signals=band), policy) == []
    assert _steps(services.ratelimits_adapt(signals=CALM), policy) == ["recover 0.25->0.5"]
    _a_window_later(policy)
    assert _steps(services.ratelimits_adapt(signals=CALM), policy) == ["recover 0.5->1"]
    history = list(policy.adjustments.order_by("at", "id").values_list("direction", flat=True))
    assert history == ["tighten", "tighten", "recover", "recover"]


def test_one_slow_minute_is_one_step_and_has_left_the_window_by_the_next():
    service = Service.objects.create(name="Slow", slug="slow", route_prefix="api/slow/")
    policy = _policy(service=service, cpu_threshold_pct=100, p95_threshold_ms=2000)
    now = _this_minute()
    _rollup(now, route="api/slow/x/", count=400, ms=5000)
    for _ in range(4):  # a minute of runs
        tasks.adapt()
    assert _steps(list(policy.adjustments.all()), policy) == ["tighten 1->0.5"]
    # A window later the slow minute is 4 minutes old and the service has been calm since.
    RequestRollup.objects.filter(route="api/slow/x/").update(minute=now - timedelta(minutes=4))
    for minutes_ago in (2, 1, 0):
        _rollup(now - timedelta(minutes=minutes_ago), route="api/slow/x/", count=100, ms=40)
    _a_window_later(policy)
    tasks.adapt()
    policy.refresh_from_db()
    assert policy.current_factor == 1.0


def test_two_hosts_read_in_turn_no_longer_flap_the_limit():
    policy = _policy()
    changes = []
    for run in range(8):  # two minutes of runs, busy and idle hosts in turn
        cpu = 95.0 if run % 2 == 0 else 12.0
        changes += _steps(services.ratelimits_adapt(signals=services.LoadSignals(cpu, {})), policy)
    assert changes == ["tighten 1->0.5"]


# 3. The p95 of served requests, not of 429s


def test_the_watched_p95_leaves_out_the_limiters_own_429s():
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    policy = _policy(service=service, cpu_threshold_pct=100, p95_threshold_ms=2000)
    now = _this_minute()
    for minutes_ago in (2, 1, 0):
        _rollup(now - timedelta(minutes=minutes_ago), route="api/triage/x/", count=10, ms=3000)
        _rollup(now - timedelta(minutes=minutes_ago), route="api/triage/x/", count=300, ms=2, status_class="429")
    assert (
        service_p95_ms(since=timezone.now() - timedelta(minutes=3))[service.pk] < 5
    )  # refusals are most of the responses
    assert service_p95_ms(since=timezone.now() - timedelta(minutes=3), exclude_status_classes=("429",))[
        service.pk
    ] == pytest.approx(3000, rel=0.02)
    tasks.adapt()
    tightened = policy.adjustments.get()
    assert tightened.direction == "tighten" and re.fullmatch(r"Triage p95 30\d\d ms > 2000 ms", tightened.reason)


def test_a_quiet_services_few_slow_requests_are_no_p95_to_shed_on():
    """A service served a handful of requests in the window, one cold start among them: that "p95" is the
    cold start. From P95_MIN_REQUESTS served requests up it is a reading."""
    service = Service.objects.create(name="Quiet", slug="quiet", route_prefix="api/quiet/")
    policy = _policy(service=service, cpu_threshold_pct=100, p95_threshold_ms=2000)
    _rollup(_this_minute(), route="api/quiet/x/", count=services.P95_MIN_REQUESTS - 1, ms=5000)
    _rollup(_this_minute(), route="api/quiet/x/", count=50, ms=2, status_class="429")  # refusals are not served
    tasks.adapt()
    assert not policy.adjustments.exists()
    _rollup(_this_minute(), route="api/quiet/y/", count=1, ms=5000)
    tasks.adapt()
    assert re.fullmatch(r"Quiet p95 (49|50)\d\d ms > 2000 ms", policy.adjustments.get().reason)


# 4. CPU: every host's recorded samples, not the worker's own reading


def _sample(host: str, cpu: float, *, ago: timedelta = timedelta(seconds=30)) -> None:
    sample = ResourceSample.objects.create(host=host, cpu_pct=cpu, memory_pct=40, disk_pct=40)
    ResourceSample.objects.filter(pk=sample.pk).update(at=timezone.now() - ago)


def test_cpu_is_the_mean_over_hosts_of_their_recent_samples():
    for _ in range(3):
        _sample("worker-a", 95.0)
    _sample("worker-b", 12.0)
    _sample("worker-b", 99.0, ago=services.SIGNAL_WINDOW + timedelta(minutes=1))  # too old to count
    since = timezone.now() - services.SIGNAL_WINDOW
    assert selectors.host_cpu_pct(since=since) == pytest.approx((95.0 + 12.0) / 2)
    policy = _policy()
    tasks.adapt()
    assert not policy.adjustments.exists()
    ResourceSample.objects.filter(host="worker-b").delete()
    _sample("worker-b", 90.0)
    tasks.adapt()
    assert policy.adjustments.get().reason == "CPU 92% > 70%"


def test_no_recent_sample_leaves_the_cpu_out():
    _sample("worker-a", 99.0, ago=services.SIGNAL_WINDOW + timedelta(seconds=30))
    assert selectors.host_cpu_pct(since=timezone.now() - services.SIGNAL_WINDOW) is None
    policy = _policy()
    tasks.adapt()
    assert not policy.adjustments.exists()


def test_with_no_signal_read_a_shed_policy_holds_rather_than_recovers():
    """The CPU samples stop (the monitor's worker starved by the overload) and the service is too quiet for a p95:
    nothing says the load has gone, so the limit stays where it is until a signal reads calm (or none has been
    read for TIGHTENING_LAPSES_AFTER: section 9)."""
    policy = _policy()
    services.ratelimits_adapt(signals=HOT)
    _a_window_later(policy)
    assert _steps(services.ratelimits_adapt(signals=services.LoadSignals(None, {})), policy) == []
    assert _steps(services.ratelimits_adapt(signals=CALM), policy) == ["recover 0.5->1"]


# 5. Priority 1 is never shed


def test_priority_1_cannot_be_made_adaptive():
    policy = RateLimitPolicy.objects.get(scope="patient_data")
    policy.adaptive = True
    with pytest.raises(ValidationError) as refused:
        policy.full_clean()
    assert list(refused.value.message_dict) == ["adaptive"]


def test_the_admin_form_refuses_adaptive_for_priority_1_with_a_field_error(admin_client):
    form = {"scope": "reports", "enabled": "on", "priority": 1, "requests": 100, "period_seconds": 60,
            "burst_per_second": "", "fail_open": "on", "adaptive": "on", "cpu_threshold_pct": 70,
            "p95_threshold_ms": "", "tighten_factor": 0.5, "min_factor": 0.1, "recover_below": 0.8,
            "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0, "adjustments-MIN_NUM_FORMS": 0,
            "adjustments-MAX_NUM_FORMS": 0}  # fmt: skip
    response = admin_client.post("/admin/ratelimits/ratelimitpolicy/add/", form)
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["adaptive"]
    assert not RateLimitPolicy.objects.filter(scope="reports").exists()


def test_a_priority_1_policy_marked_adaptive_anyway_is_never_shed():
    _floors_at_a_tenth()
    RateLimitPolicy.objects.filter(scope="patient_data").update(adaptive=True, current_factor=0.5)
    patient = RateLimitPolicy.objects.get(scope="patient_data")
    assert _steps(services.ratelimits_adapt(signals=HOT), patient) == ["recover 0.5->1"]
    _a_window_later()
    changes = services.ratelimits_adapt(signals=HOT)
    assert _steps(changes, patient) == []
    assert {c.policy.scope for c in changes} == {"audit_logs"}  # the least important first
    patient.refresh_from_db()
    assert patient.effective_requests == 100


# 6. Graded: the least important shed first, the most important back first


def _run(signals: services.LoadSignals) -> list[str]:
    return [f"{c.policy.scope} {c.old_factor:g}->{c.new_factor:g}" for c in services.ratelimits_adapt(signals=signals)]


def test_under_persisting_pressure_the_least_important_is_shed_to_its_floor_before_the_next():
    """Seeded: audit_logs (priority 4) and ai_inference (3), both adaptive, both over the same CPU threshold."""
    _floors_at_a_tenth()
    runs = []
    for _ in range(6):
        runs.append(_run(HOT))
        runs.append(_run(HOT))  # within the window: nothing, not even the next priority
        _a_window_later()
    assert runs == [
        ["audit_logs 1->0.5"], [], ["audit_logs 0.5->0.25"], [], ["audit_logs 0.25->0.125"], [],
        ["audit_logs 0.125->0.1"], [],  # at its floor: the CPU read a window later decides on the next
        ["ai_inference 1->0.5"], [], ["ai_inference 0.5->0.25"], [],
    ]  # fmt: skip


def test_of_the_calm_policies_the_most_important_gets_its_limit_back_first():
    _floors_at_a_tenth()
    RateLimitPolicy.objects.filter(scope="audit_logs").update(current_factor=0.1, signal_read_at=timezone.now())
    RateLimitPolicy.objects.filter(scope="ai_inference").update(current_factor=0.25, signal_read_at=timezone.now())
    runs = []
    for _ in range(4):
        runs.append(_run(CALM))
        runs.append(_run(CALM))
        _a_window_later()
    assert runs == [
        ["ai_inference 0.25->0.5"], [],
        ["ai_inference 0.5->1"], [],  # back at its limit: audit_logs waits for the window that reads it
        ["audit_logs 0.1->0.2"], [], ["audit_logs 0.2->0.4"], [],
    ]  # fmt: skip


def test_a_more_important_policy_still_held_by_its_own_signal_does_not_hold_back_a_calm_one():
    """ai_inference's service p95 sits in its band (under 800 ms, not under 640): that is its service's business,
    and audit_logs, calm on every signal it watches, gets its limit back."""
    triage = Service.objects.create(name="Triage", slug="triage", slo_p95_ms=800)
    RateLimitPolicy.objects.filter(scope="ai_inference").update(
        service=triage, current_factor=0.5, signal_read_at=timezone.now()
    )
    RateLimitPolicy.objects.filter(scope="audit_logs").update(current_factor=0.5, signal_read_at=timezone.now())
    assert _run(services.LoadSignals(cpu_pct=10.0, p95_ms_by_service={triage.pk: 700})) == ["audit_logs 0.5->1"]


def test_a_pressure_no_less_important_policy_shares_does_not_wait_and_two_services_step_at_once():
    """ai_inference (3) watches one service, reports (5) another: both over, the CPU calm. audit_logs (4)
    could be shed, but it is under neither pressure, so shedding it would relieve neither."""
    _floors_at_a_tenth()
    triage = Service.objects.create(name="Triage", slug="triage", slo_p95_ms=800)
    embed = Service.objects.create(name="Embed", slug="embed", slo_p95_ms=300)
    RateLimitPolicy.objects.filter(scope="ai_inference").update(service=triage)
    _policy(service=embed)
    slow = services.LoadSignals(cpu_pct=10.0, p95_ms_by_service={triage.pk: 2000, embed.pk: 900})
    assert sorted(_run(slow)) == ["ai_inference 1->0.5", "reports 1->0.5"]
    # The CPU over too: audit_logs shares that pressure, not ai_inference's own service's, which still steps.
    _a_window_later()
    both = services.LoadSignals(cpu_pct=95.0, p95_ms_by_service={triage.pk: 2000, embed.pk: 900})
    assert sorted(_run(both)) == ["ai_inference 0.5->0.25", "reports 0.5->0.25"]


def test_a_disabled_policy_is_not_stepped_and_does_not_hold_the_next_back():
    """It limits nothing: a step of it sheds no load, and its history would record changes that did nothing."""
    RateLimitPolicy.objects.filter(scope="audit_logs").update(enabled=False)
    assert _run(HOT) == ["ai_inference 1->0.5"]


# 7. Several workers run the controller at once


@pytest.mark.django_db(transaction=True)  # each worker commits on its own connection
def test_workers_running_the_controller_at_once_step_once_and_record_it_once():
    """Two runs start while a third holds the policies: both wait, and the second to go sees the first's step.
    Without the row locks both would read the same factor and record the same step twice."""
    import threading

    from django.db import connection, transaction

    policy = _policy()
    results, errors = [], []

    def worker():
        from django.db import connection as own

        try:
            results.append(_steps(services.ratelimits_adapt(signals=HOT), policy))
        except Exception as exc:  # noqa: BLE001 - reported below, not lost in the thread
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    with transaction.atomic():
        list(RateLimitPolicy.objects.select_for_update())
        for thread in threads:
            thread.start()
        with connection.cursor() as cursor:
            for _ in range(2400):  # until both wait on the locks held here (120 s: a loaded CI host is slow)
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                if cursor.fetchone()[0] >= 2:
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("the controller runs did not wait on the policies' locks")
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [[], ["tighten 1->0.5"]]
    assert _steps(list(policy.adjustments.all()), policy) == ["tighten 1->0.5"]


# 8. Factors without float drift


def test_two_tightenings_are_undone_by_two_recoveries_to_exactly_the_configured_limit():
    """0.42 x 0.42 / 0.42 / 0.42 is 0.9999999999999998 in binary: the limit read 100% in force yet a third
    'recover' waited another window, and held the next policy's recovery back meanwhile."""
    policy = _policy(requests=100, tighten_factor=0.42)
    for _ in range(2):
        services.ratelimits_adapt(signals=HOT)
        _a_window_later(policy)
    policy.refresh_from_db()
    assert policy.current_factor == 0.1764
    steps = []
    for _ in range(3):
        steps += _steps(services.ratelimits_adapt(signals=CALM), policy)
        _a_window_later(policy)
    assert steps == ["recover 0.1764->0.42", "recover 0.42->1"]
    policy.refresh_from_db()
    assert policy.current_factor == 1.0


# 9. A tightening holds only while the controller keeps reading load


def _unread_for(policy: RateLimitPolicy, minutes: int) -> None:
    """As if the controller's last reading for the policy were `minutes` older: Celery's beat and workers (or the
    resource monitor) stopped meanwhile. Its step is moved back as far."""
    RateLimitPolicy.objects.filter(pk=policy.pk).update(
        signal_read_at=F("signal_read_at") - timedelta(minutes=minutes),
        last_step_at=F("last_step_at") - timedelta(minutes=minutes),
    )


def test_a_tightening_lapses_once_the_controller_has_read_no_signal_for_a_while():
    """The workers stop (a broker outage, a bad deploy): nothing runs the controller, so nothing would ever
    recover a halved limit. Twenty minutes on, the configured limit is in force again, in every process."""
    policy = _policy()
    services.ratelimits_adapt(signals=HOT)
    selectors.policy_cache._bump()
    assert selectors.active_policy("reports").requests == 25
    _unread_for(policy, 20)
    selectors.policy_cache._bump()  # the policy cache's TTL is 5 minutes: any process reloads by then
    assert selectors.active_policy("reports").requests == 50
    policy.refresh_from_db()
    assert policy.effective_requests == 50


def test_the_controller_records_the_lapse_when_it_next_runs_with_no_signal():
    policy = _policy()
    services.ratelimits_adapt(signals=HOT)
    _unread_for(policy, 20)
    changes = services.ratelimits_adapt(signals=services.LoadSignals(None, {}))
    assert _steps(changes, policy) == ["recover 0.5->1"]
    assert changes[0].reason.startswith("no load signal read since ")


def test_a_tightening_held_in_the_band_by_signals_read_does_not_lapse():
    policy = _policy()
    services.ratelimits_adapt(signals=HOT)
    band = services.LoadSignals(cpu_pct=65.0, p95_ms_by_service={})
    _unread_for(policy, 10)
    assert services.ratelimits_adapt(signals=band) == []  # a reading: the tightening is confirmed
    _unread_for(policy, 10)  # 20 minutes after the step, 10 after the last reading
    assert services.ratelimits_adapt(signals=band) == []
    policy.refresh_from_db()
    assert (policy.current_factor, policy.effective_requests) == (0.5, 25)


# 10. Workers whose clocks disagree


def test_a_worker_whose_clock_runs_ahead_does_not_step_again_right_after_anothers_step():
    """The beat task lands on any worker. One with its clock 5 minutes ahead, 15 s after another's step, read that
    step as 5 minutes old (past the 3-minute dwell) and halved the limit again: the database's clock is the one
    every step and reading is stamped and compared with, as the limiter keeps Redis's."""
    policy = _policy()
    assert _steps(services.ratelimits_adapt(signals=HOT), policy) == ["tighten 1->0.5"]
    ahead = timezone.now() + timedelta(minutes=5)
    with mock.patch("django.utils.timezone.now", return_value=ahead):
        assert _steps(services.ratelimits_adapt(signals=HOT), policy) == []
    behind = timezone.now() - timedelta(minutes=30)  # its reading must not look 30 minutes old to everyone else
    with mock.patch("django.utils.timezone.now", return_value=behind):
        assert _steps(services.ratelimits_adapt(signals=HOT), policy) == []
    policy.refresh_from_db()
    assert (policy.current_factor, policy.effective_requests) == (0.5, 25)
