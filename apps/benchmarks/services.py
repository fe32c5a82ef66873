"""Benchmark runs: create, execute (on the `benchmarks` queue), cancel, fail stuck ones, judge against
the gates, detect regressions across a plan's runs, and schedule a nightly run per service."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import random
import socket
import statistics
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from apps.accounts.scopes import BENCHMARK
from apps.accounts.services import api_client_create, api_client_revoke
from apps.benchmarks import analysis, runner
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression, request_mix_error, token_host_allowed
from apps.benchmarks.report import render_run_report
from apps.core.broker_errors import broker_failure, send_errors

logger = logging.getLogger(__name__)

# Patients drawn for {patient_id}: a sample for most shapes, every patient for volume runs.
PATIENT_SAMPLE = 1000
BASELINE_RUNS = 5
DEADLINE_MARGIN_SECONDS = 300
# A running run's worker writes its heartbeat every second; this long without one, the worker is gone.
# Generous: recording a long run's samples (after its last tick) takes a while.
HEARTBEAT_STALE_SECONDS = 300
# A run still pending this long after it was created was never taken by a worker (its message lost): it is
# failed, so that the plan can run again. Its deadline says nothing while it waits (it counts from its start):
# a run queued behind a longer one was failed minutes past its own length, before any worker had taken it.
QUEUE_WAIT_SECONDS = 24 * 3600
# A free worker takes a run within seconds: one still pending this long, while no run is running (so no run
# holds the workers and none loads its target), lost its message. It is sent again (execute_run is
# idempotent), and failed if still not taken as long after that: it stayed pending for a day.
REQUEUE_SECONDS = 600
DEFAULT_PORTS = {"http": 80, "https": 443}


class RunInProgress(Exception):
    """The plan already has a run pending or running: a second would load the target on top of it."""

    def __init__(self, run: BenchmarkRun):
        self.run = run
        super().__init__(f"run #{run.pk} is still {run.status}: cancel it or let it finish first")


@transaction.atomic
def benchmark_run_create(*, plan: BenchmarkPlan, requested_by: str = "") -> BenchmarkRun:
    """A run of a valid plan, when none of its runs is pending or running (RunInProgress). A plan stored
    before its checks existed (or edited outside admin) raises ValidationError here, before its shape is
    built: its values could overflow or exhaust memory."""
    plan.full_clean(validate_unique=False, validate_constraints=False)
    stages = runner.stages_for(plan)
    BenchmarkPlan.objects.select_for_update().filter(pk=plan.pk).exists()  # one creation at a time per plan
    active = plan.runs.filter(status__in=[BenchmarkRun.Status.PENDING, BenchmarkRun.Status.RUNNING]).first()
    if active is not None and _fail_if_worker_gone(active):
        active = None
    if active is not None:
        raise RunInProgress(active)
    return BenchmarkRun.objects.create(
        plan=plan,
        requested_by=requested_by,
        deadline=timezone.now() + timedelta(seconds=stages[-1][0] + DEADLINE_MARGIN_SECONDS),
        config_digest=load_digest(plan, stages),
    )


# A plan's schedule is nightly: a second send within this long is the same night's (benchmark_run_scheduled_create);
# a schedule edited to fire more often runs the plan at most this often.
SCHEDULED_RUN_ONCE_WITHIN = timedelta(hours=12)


def benchmark_run_scheduled_create(*, plan_id: int) -> BenchmarkRun | None:
    """The schedule's run of an enabled plan, or None. Once per night: two beats (an evicted pod terminating
    beside its replacement) each send the schedule, and a second send taken after the first run ended (a
    fast failure, or queued behind the nightly runs on the benchmarks workers) ran the plan again. Decided
    under the plan's lock, so two sends taken at once see each other."""
    with transaction.atomic():
        plans = BenchmarkPlan.objects.select_for_update(of=("self",)).select_related("service")
        plan = plans.filter(pk=plan_id, enabled=True).first()
        if plan is None:
            return None
        if problem := plan.service.base_url_error:
            # The plan's checks would refuse it for a reason of their own (a port past 65535 "is not in
            # BENCHMARK_TOKEN_HOSTS"): the log says what to fix.
            logger.warning("benchmark plan %s: its scheduled run was skipped, %s", plan_id, unusable_base_url(problem))
            return None
        since = timezone.now() - SCHEDULED_RUN_ONCE_WITHIN
        earlier = plan.runs.filter(requested_by="schedule", created_at__gte=since).order_by("-created_at").first()
        if earlier is not None:
            logger.warning("benchmark plan %s: a second send of its schedule, run #%s is its run", plan_id, earlier.pk)
            return None
        return benchmark_run_create(plan=plan, requested_by="schedule")


def load_digest(plan: BenchmarkPlan, stages: list) -> str:
    """What shapes the load, and so the latencies: a run is compared only with runs of the same (ten times
    the users is slower by design, not a regression). The token's scopes too: they decide which requests of
    the mix succeed, and only successes are latencies (a scope added turned an endpoint's fast 403s into
    its real answers, a "regression" of the same service)."""
    load = {
        "kind": plan.kind, "stages": stages, "requests": plan.requests, "arrival_rate": plan.arrival_rate,
        "generator_processes": plan.generator_processes, "target": plan.service.base_url,
        "scopes": sorted(plan.scopes) if isinstance(plan.scopes, list) else plan.scopes,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(load, sort_keys=True).encode()).hexdigest()


def benchmark_run_dispatch(run: BenchmarkRun) -> None:
    from apps.benchmarks.tasks import execute_run

    transaction.on_commit(lambda: execute_run.delay(run.pk))


def _patients(plan: BenchmarkPlan) -> list[int]:
    from apps.clinical.models import Patient

    if not any("{patient_id}" in request["path"] for request in plan.requests):
        return []
    ids = Patient.objects.filter(is_deleted=False).values_list("pk", flat=True)
    if not ids.exists():
        # Locust's users would fail on their first draw and send nothing: a run of 0 requests "passing".
        raise ValueError(
            "the plan's requests read {patient_id} and there are no patients: load some "
            "(manage.py load_synthetic) or take {patient_id} out of the requests"
        )
    if plan.kind == BenchmarkPlan.Kind.VOLUME:
        return list(ids)
    return random.sample(list(ids[: PATIENT_SAMPLE * 10]), k=min(PATIENT_SAMPLE, ids.count()))


class TargetBusy(Exception):
    """Another run is loading the same target (host and port): started beside it, each would measure a
    service under both loads and become a baseline that says so. The run stays pending."""

    def __init__(self, run: BenchmarkRun):
        self.run = run
        super().__init__(f"run #{run.pk} ({run.plan}) is loading the same target: this run waits for it to end")


def _target(base_url: str) -> str:
    """The host and port a run loads, however the URL spells them: by netloc, `http://localhost` and
    `http://LOCALHOST:80/`, or `[::1]` and `[0:0:0:0:0:0:0:1]`, were two targets, and their runs loaded
    the one server at once."""
    try:
        url = urlsplit(base_url)
    except ValueError:  # "http://[::1": stored before the registry's rules; its own run fails on it
        return f"unparsable:{base_url}"
    host = (url.hostname or "").lower()
    with contextlib.suppress(ValueError):
        host = ipaddress.ip_address(host).compressed
    try:
        port = url.port
    except ValueError:
        port = None
    return f"{host}:{port or DEFAULT_PORTS.get(url.scheme.lower(), '')}"


def _run_on_target(run: BenchmarkRun) -> BenchmarkRun | None:
    """A running run against this run's target, its services' rows locked (in one order) so that two runs
    of the same target starting at once (the nightly runs of every plan at 03:00) see each other."""
    from apps.services.models import Service

    target = _target(run.plan.service.base_url)
    same = sorted(pk for pk, url in Service.objects.values_list("pk", "base_url") if _target(url) == target)
    list(Service.objects.select_for_update().filter(pk__in=same).order_by("pk").values_list("pk", flat=True))
    running = BenchmarkRun.objects.filter(status=BenchmarkRun.Status.RUNNING, plan__service__in=same)
    return running.exclude(pk=run.pk).select_related("plan").first()


def benchmark_run_execute(*, run_id: int) -> BenchmarkRun:
    """Run Locust for the plan and store what it measured. Safe to repeat: only a pending run starts (a
    running one has a worker, or the checker fails it when its heartbeat stops). While another run loads
    the same target, the run stays pending and TargetBusy is raised: its caller tries again later."""
    with transaction.atomic():
        # of=self: the plan's service is locked below with every other service of the target, in one order;
        # locked here too, two runs of two services sharing a host:port took them in opposite orders.
        run = (
            BenchmarkRun.objects.select_for_update(of=("self",)).select_related("plan", "plan__service").get(pk=run_id)
        )
        if run.status != BenchmarkRun.Status.PENDING:
            return run
        busy = _run_on_target(run)
        if busy is not None and _fail_if_worker_gone(busy):
            busy = None
        if busy is None:
            _run_start(run)
    if busy is not None:
        BenchmarkRun.objects.filter(pk=run.pk, status=BenchmarkRun.Status.PENDING).update(
            progress_message=f"waiting for run #{busy.pk} on the same target"[:200]
        )
        raise TargetBusy(busy)
    return _run_measure(run)


def benchmark_run_wait_unsent(*, run_id: int, busy: BenchmarkRun, exc: BaseException) -> None:
    """A waiting run's next try the broker refused (RabbitMQ down, its vhost gone): the send's error ended the
    task (scheduled_run's traceback, execute_run's retry rejected) and the run waited with no word of why, or,
    sent again by the checker before, was failed as "sent twice ... while the workers were free". It is left
    pending for the stuck-run checker, which sends it again once no run holds the workers (REQUEUE_SECONDS
    after its creation), and says so."""
    BenchmarkRun.objects.filter(pk=run_id, status=BenchmarkRun.Status.PENDING).update(
        requeued_at=None,
        progress_message=f"waiting for run #{busy.pk} on the same target; its next try was not sent (the "
        f"stuck-run checker sends it again): {broker_failure(exc)}"[:200],
    )
    logger.warning("benchmark run %s waits for run %s, its next try was not sent, %s: the stuck-run checker "
                   "sends it again", run_id, busy.pk, broker_failure(exc))  # fmt: skip


class PlanInvalid(Exception):
    """The plan's request mix breaks its checks (stored around them: raw SQL, an older release): Locust failed
    on it (a weight no float holds) with a traceback in its log, or measured no request."""


class TargetUnusable(Exception):
    """The service's stored base URL breaks the registry's rules (stored before them, or by raw SQL): with a
    query string Locust sent every request to the wrong path and measured that, an out-of-range port failed
    every request or the run as a token-host refusal that named no cause."""


def unusable_base_url(problem: str) -> str:
    return f"the service's base URL cannot be used ({problem}): edit it in the service registry"


class TargetUnresolvable(Exception):
    """The target's host name has no address: every request of the run would be a connection error."""


class TargetRefused(Exception):
    """The target's host is, or resolves only to, a link-local or cloud metadata address: no load (and no
    token) is sent there."""


def _target_resolves(base_url: str) -> None:
    """Fail the run at once when its target's host cannot be resolved (a typo in the service's base URL, a
    name not in this cluster's DNS): Locust ran the plan's whole length on connection errors, a day for an
    endurance plan, and recorded it as the service's errors. Or when it is, or resolves only to, a refused
    address (apps.core.link_local): a name pointed at the cloud metadata service after the URL was saved.
    Checked again at each connection Locust makes (apps.benchmarks.connect_guard)."""
    from apps.core.link_local import is_refused_address

    url = urlsplit(base_url)
    host = url.hostname or ""
    if is_refused_address(host):
        raise TargetRefused(f"the target's host {host!r} is a link-local or cloud metadata address: no load is sent")
    try:
        addresses = [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise TargetUnresolvable(
            f"the target's host {host!r} cannot be resolved ({reason}): check the service's base URL"
        ) from exc
    if addresses and all(is_refused_address(address) for address in addresses):
        raise TargetRefused(
            f"the target's host {host!r} resolves only to link-local or cloud metadata addresses "
            f"({', '.join(dict.fromkeys(addresses))}): no load is sent there"
        )


def _run_start(run: BenchmarkRun) -> None:
    now = timezone.now()
    run.status, run.started_at, run.heartbeat_at, run.attempts = (
        BenchmarkRun.Status.RUNNING,
        now,
        now,
        run.attempts + 1,
    )
    run.progress_message = ""
    run.worker_host, run.worker_pid = socket.gethostname(), os.getpid()
    run.save(
        update_fields=["status", "started_at", "heartbeat_at", "attempts", "progress_message", "worker_host",
                       "worker_pid"]
    )  # fmt: skip


def _worker_gone(run: BenchmarkRun) -> bool:
    """Whether the process running `run` is known to be gone: on this host, its pid is no process, a zombie,
    or a process started after the run (the pid reused). A run of another host is not known here: its
    heartbeat tells (HEARTBEAT_STALE_SECONDS)."""
    import psutil

    if run.status != BenchmarkRun.Status.RUNNING or not run.worker_pid or run.worker_host != socket.gethostname():
        return False
    try:
        process = psutil.Process(run.worker_pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        started = process.create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    return run.started_at is not None and started > run.started_at.timestamp() + 1


WORKER_GONE = "Its worker process ({pid} on {host}) is gone: it ended mid-run (killed, or a Ctrl-C)."


def _fail_if_worker_gone(run: BenchmarkRun) -> bool:
    """Fail a running run whose worker process is gone, at once: it blocked its plan (and its target) until
    the checker found its heartbeat stale, 5 to 8 minutes after a Ctrl-C. Whether it is no longer active."""
    if not _worker_gone(run):
        return False
    error = WORKER_GONE.format(pid=run.worker_pid, host=run.worker_host)
    if BenchmarkRun.objects.filter(pk=run.pk, status=BenchmarkRun.Status.RUNNING, worker_pid=run.worker_pid).update(
        status=BenchmarkRun.Status.FAILED, finished_at=timezone.now(), error=error, progress_message=""
    ):
        logger.warning("benchmark run %s failed: %s", run.pk, error)
        _revoke_run_tokens(run.pk)
    return True


WORKER_SHUTDOWN = "Its worker shut down: stopped with the samples measured so far."


def benchmark_runs_stop_for_shutdown(*, host: str | None = None, pids: list[int] | None = None) -> list[int]:
    """Ask the runs of a worker that is shutting down to stop (Celery's warm shutdown): its own process's and
    its pool's children's (`pids`, by default this process and its descendants). A stop is a cancellation,
    seen by the run's watch within a second: Locust stops, the samples measured so far are recorded, and the
    worker exits. Left alone, a warm shutdown waited out the whole run (a day for an endurance plan)."""
    import psutil

    host = host or socket.gethostname()
    if pids is None:
        me = psutil.Process()
        pids = [me.pid, *(child.pid for child in me.children(recursive=True))]
    running = BenchmarkRun.objects.filter(status=BenchmarkRun.Status.RUNNING, worker_host=host, worker_pid__in=pids)
    stopped = list(running.values_list("pk", flat=True))
    BenchmarkRun.objects.filter(pk__in=stopped, status=BenchmarkRun.Status.RUNNING).update(
        cancel_requested=True, stop_reason=WORKER_SHUTDOWN
    )
    for run_id in stopped:
        logger.warning("benchmark run %s: its worker is shutting down, the run stops", run_id)
    return stopped


def benchmark_runs_stop_for_shutdown_soon() -> threading.Thread:
    """benchmark_runs_stop_for_shutdown from a thread of its own, for a signal handler: the handler may have
    interrupted this very process in the middle of a query on its thread's connection (a solo pool runs the
    run in the worker's main thread), which a second query there would break."""

    def stop() -> None:
        try:
            benchmark_runs_stop_for_shutdown()
        except Exception:
            logger.exception("benchmark runs could not be stopped for the worker's shutdown")
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=stop, name="benchmark-shutdown", daemon=True)
    thread.start()
    return thread


def _run_measure(run: BenchmarkRun) -> BenchmarkRun:
    plan = run.plan

    def on_tick(fraction: float, elapsed: float) -> None:
        BenchmarkRun.objects.filter(pk=run.pk).update(
            progress=fraction, progress_message=f"{elapsed:.0f} s", heartbeat_at=timezone.now()
        )

    def should_stop() -> bool:
        # A run deleted (its plan deleted, in admin or by a cascade) stops too: it went on loading the target
        # to its deadline, a day for an endurance plan, with nothing left to record it in.
        wanted = BenchmarkRun.objects.filter(pk=run.pk, cancel_requested=False).exists()
        return not wanted or timezone.now() > run.deadline

    client = None
    try:  # everything that can fail on the plan's values is in here: a failure fails the run, never strands it
        if problem := request_mix_error(plan.requests):
            raise PlanInvalid(f"its request mix is not valid: {problem} Fix the plan, then run it again.")
        stages = runner.stages_for(plan)
        # Counted from now: a run that waited in the queue (or the plan's edit since) must not be stopped
        # early by a deadline counted from when it was created.
        run.deadline = run.started_at + timedelta(seconds=stages[-1][0] + DEADLINE_MARGIN_SECONDS)
        run.config_digest = load_digest(plan, stages)  # the plan as it runs, edited since it was queued or not
        run.save(update_fields=["deadline", "config_digest"])
        gates = plan.gates()
        patients = _patients(plan)
        if problem := plan.service.base_url_error:
            raise TargetUnusable(unusable_base_url(problem))
        if not token_host_allowed(plan.service.base_url):  # the service's URL changed since the run was queued
            raise PermissionError("the service's base URL is not in BENCHMARK_TOKEN_HOSTS: no token is sent there")
        _target_resolves(plan.service.base_url)
        client = api_client_create(
            name=f"benchmark-run-{run.pk}-{run.attempts}",
            scopes=sorted({*plan.scopes, BENCHMARK}),  # exempt from rate limits: the run measures capacity
            description=f"Short-lived token of benchmark run #{run.pk}.",
            expires_at=run.deadline,
        )
        outcome = runner.run_locust(
            base_url=plan.service.base_url.rstrip("/"),
            requests=[{**r, "name": r.get("name") or r["path"]} for r in plan.requests],
            token=client.token,
            patients=patients,
            stages=stages,
            stress_gate={**gates, "step_seconds": plan.step_seconds} if plan.kind == plan.Kind.STRESS else None,
            rate_per_user=plan.arrival_rate / plan.users if plan.arrival_rate else None,
            should_stop=should_stop,
            on_tick=on_tick,
            processes=plan.generator_processes,
            seed=run.pk,  # the same share of the samples each time its files are read
        )
    except Exception as exc:
        logger.exception("benchmark run %s could not run", run.pk)
        return _finish(run, status=BenchmarkRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C on `bench run --inline`, a worker's cold shutdown
        # Left running, the run blocked its plan until the checker found its heartbeat stale.
        _finish(run, status=BenchmarkRun.Status.FAILED, error=f"Interrupted mid-run ({type(exc).__name__}).")
        raise
    finally:
        if client is not None:
            api_client_revoke(client=client.client)
    BenchmarkRun.objects.filter(pk=run.pk).update(progress_message="recording", heartbeat_at=timezone.now())
    try:
        return _record(run, outcome, stages, gates)
    except Exception as exc:  # left running, the checker would fail it minutes later as if its worker had died
        logger.exception("benchmark run %s: its results could not be recorded", run.pk)
        BenchmarkRun.objects.filter(pk=run.pk, status=BenchmarkRun.Status.RUNNING).update(
            status=BenchmarkRun.Status.FAILED, finished_at=timezone.now(), progress=1.0, progress_message="",
            error=f"Its results could not be recorded: {type(exc).__name__}: {exc}"[:2000],
        )  # fmt: skip
        return BenchmarkRun.objects.filter(pk=run.pk).first() or run  # gone if its plan was deleted


def _record(run: BenchmarkRun, outcome: runner.Outcome, stages: list, gates: dict) -> BenchmarkRun:
    plan = run.plan
    run.generator_cpu_max = round(outcome.cpu_max, 1)
    # Counts and percentiles are of every request (outcome.totals); what needs the samples themselves reads
    # the runner's bounded share of them (every one below BENCHMARK_MAX_SAMPLES).
    run.summary = analysis.summarize(outcome.samples, outcome.totals)
    run.histogram = analysis.histogram_buckets(outcome.samples)
    methods: dict[str, set[str]] = {}
    for request in plan.requests:
        methods.setdefault(request.get("name") or request["path"], set()).add(request.get("method", "GET").upper())
    run.endpoints = analysis.endpoint_rows(
        outcome.samples, outcome.totals, {name: "/".join(sorted(each)) for name, each in methods.items()}
    )
    run.timeline = outcome.timeline
    findings = {"stages": stages}
    if plan.kind == plan.Kind.STRESS:
        scale = outcome.totals.requests / len(outcome.samples) if outcome.samples else 1.0
        findings["stress"] = analysis.stress_knee(outcome.samples, stages, gates, scale=scale)
    elif plan.kind == plan.Kind.SPIKE:
        findings["spike"] = analysis.spike_recovery(outcome.samples, stages)
    elif plan.kind in (plan.Kind.ENDURANCE, plan.Kind.LOAD, plan.Kind.VOLUME):
        findings["endurance"] = analysis.endurance_slope(outcome.samples)
        findings["target_memory"] = _target_memory(run, outcome.seconds)
    run.findings = findings
    run.verdicts = analysis.verdicts(run.summary, gates)
    if outcome.status == "failed":
        return _finish(run, status=BenchmarkRun.Status.FAILED, error=outcome.error)
    if outcome.status == "cancelled":
        asked = BenchmarkRun.objects.filter(pk=run.pk, cancel_requested=True).values_list("stop_reason", flat=True)
        reason = asked.first()
        cancelled = reason is not None
        error = reason if cancelled else "Stopped at its deadline."  # a person's cancellation: no reason
        return _finish(
            run, status=BenchmarkRun.Status.CANCELLED if cancelled else BenchmarkRun.Status.FAILED, error=error
        )
    if not outcome.totals.requests:  # nothing measured: no gate, no baseline, no figure for the scaling planner
        return _finish(
            run,
            status=BenchmarkRun.Status.FAILED,
            error="Locust sent no requests: the load never started (its users could not be spawned in the run's "
            "time, or each failed before sending).",
        )
    if outcome.cpu_max > runner.SATURATED_CPU_PCT:
        return _finish(
            run,
            status=BenchmarkRun.Status.INVALID,
            error=f"The load generator used {outcome.cpu_max:.0f}% CPU: it, not the service, may have been the "
            "limit. Lower the users or run Locust distributed.",
        )
    run.passed = all(v["passed"] for v in run.verdicts)
    # One transaction: the regression was written before the run's end, so a run the checker failed (or a
    # person cancelled) meanwhile, whose success _finish then drops, kept a regression of a failed run, and
    # a report that could not be rendered left one too. Kept only with the run's success.
    with transaction.atomic():
        regression = regressions_detect(run=run, samples=outcome.samples)  # before the report, which shows it
        finished = _finish(run, status=BenchmarkRun.Status.SUCCEEDED, samples=outcome.samples)
        if regression is not None and finished.status != BenchmarkRun.Status.SUCCEEDED:
            Regression.objects.filter(pk=regression.pk).delete()
    return finished


def _target_memory(run: BenchmarkRun, seconds: float) -> dict:
    """The target's memory over the run: its Prometheus series where its scaling policy reads Prometheus,
    else, when the service is served here, the resource monitor's samples (every 30 s) of the request-serving
    pod with the most memory over the run (_serving_pod_memory)."""
    started, service = run.started_at, run.plan.service
    until = started + timedelta(seconds=seconds)
    policy = getattr(service, "scaling_policy", None)
    if policy is not None and policy.history_source == "prometheus":
        from apps.scaling.history import HistoryUnavailable, prometheus_range

        try:
            series = prometheus_range(policy, "memory", since=started, until=until, step_seconds=15)
        except HistoryUnavailable as exc:
            return {"source": "prometheus", "unavailable": str(exc)}
        points = [((at - started).total_seconds(), value) for at, value in series.items()]
        return {"source": "prometheus", **analysis.memory_slope(points)}
    if not service.route_prefix:
        return {"source": None, "unavailable": "the service's memory is not measured here"}
    return _serving_pod_memory(started, until)


def _serving_pod_memory(started, until) -> dict:
    """The memory trend of one pod, the request-serving one with the most memory over the run
    (metrics.selectors.busiest_host): the `host.memory_pct` series averaged every host's samples, the
    worker's among them, whose memory is the load generator's and Celery's, so the target's trend was
    blended with theirs, and with hosts coming and going the mean stepped by itself. One pod's samples, so a
    leak is its own slope; the busiest, the one that nears its limit first."""
    import math

    from apps.metrics.selectors import busiest_host, serving_host_samples
    from apps.resources.models import ResourceSample

    busiest = busiest_host("memory_pct", since=started, until=until, serving_only=True)
    if busiest is None:
        return {"source": "resource_samples", "samples": 0}
    rows = serving_host_samples(ResourceSample.objects.filter(at__gte=started, at__lt=until)).filter(host=busiest[0])
    points = [
        ((at - started).total_seconds(), value)
        for at, value in rows.order_by("at").values_list("at", "memory_pct")
        if math.isfinite(value)
    ]
    return {"source": "resource_samples", "host": busiest[0], **analysis.memory_slope(points)}


RESULT_FIELDS = ["status", "error", "finished_at", "progress", "progress_message", "generator_cpu_max", "summary",
                 "endpoints", "timeline", "histogram", "findings", "verdicts", "passed", "report_html"]  # fmt: skip


def _finish(run: BenchmarkRun, *, status: str, error: str = "", samples: list | None = None) -> BenchmarkRun:
    """End the run once, under its row's lock: a run the checker ended meanwhile (its worker silent, or
    deleted with its plan) is left as it was, not overwritten with a second, different end."""
    with transaction.atomic():
        current = BenchmarkRun.objects.select_for_update().filter(pk=run.pk).values_list("status", flat=True)
        current = current.first()
        if current is None:
            return run  # deleted (its plan with it): nothing to record
        if current != BenchmarkRun.Status.RUNNING:
            run.refresh_from_db()
            logger.warning("benchmark run %s was already %s: its worker's end (%s) is dropped", run.pk, current, status)
            return run
        return _finish_locked(run, status=status, error=error, samples=samples)


def _finish_locked(run: BenchmarkRun, *, status: str, error: str, samples: list | None) -> BenchmarkRun:
    run.status, run.error, run.finished_at, run.progress = status, error, timezone.now(), 1.0
    if samples is not None:
        # Successful requests only, as the regression check takes the run's own: a fast 401 or 503 is no
        # latency of the service's work.
        latencies = [s[1] for s in samples if s[3]]
        run.findings = {**run.findings, "latencies_ms": latencies[:: max(1, len(latencies) // 5000)]}
    run.progress_message = ""
    run.report_html = render_run_report(run)
    run.save(update_fields=RESULT_FIELDS)  # not the cancellation asked meanwhile, nor the heartbeat
    return run


def benchmark_run_cancel(*, run: BenchmarkRun) -> BenchmarkRun:
    """Ask the worker to stop the run (it polls every second); a run not started yet is cancelled at once."""
    BenchmarkRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    BenchmarkRun.objects.filter(pk=run.pk, status=BenchmarkRun.Status.PENDING).update(
        status=BenchmarkRun.Status.CANCELLED, finished_at=timezone.now(), progress_message=""
    )
    run.refresh_from_db()
    return run


def benchmark_runs_fail_stuck(*, now=None) -> int:
    """Fail the runs that lost their worker: running without a heartbeat for HEARTBEAT_STALE_SECONDS (the
    worker died), running well past their deadline, or pending for QUEUE_WAIT_SECONDS (never taken); a run
    pending REQUEUE_SECONDS while its own target is free is sent again, and failed when that is not taken
    either while no run holds a worker. Their tokens are revoked with them."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=HEARTBEAT_STALE_SECONDS)
    # Past its deadline with a fresh heartbeat, a run is reading and recording its samples (its watch stops
    # Locust at the deadline): minutes for a day-long run, which was failed as overdue while it finished.
    overdue = BenchmarkRun.objects.filter(
        Q(heartbeat_at=None) | Q(heartbeat_at__lt=stale),
        status=BenchmarkRun.Status.RUNNING,
        deadline__lt=now - timedelta(seconds=DEADLINE_MARGIN_SECONDS),
    )
    silent = BenchmarkRun.objects.filter(status=BenchmarkRun.Status.RUNNING, heartbeat_at__lt=stale)
    unclaimed = BenchmarkRun.objects.filter(
        status=BenchmarkRun.Status.PENDING, created_at__lt=now - timedelta(seconds=QUEUE_WAIT_SECONDS)
    )
    lost = BenchmarkRun.objects.none()
    _runs_requeue(now)
    if not BenchmarkRun.objects.filter(status=BenchmarkRun.Status.RUNNING).exists():
        # Failed as lost only while no run holds a worker: a message behind other targets' runs is not lost.
        lost = BenchmarkRun.objects.filter(
            status=BenchmarkRun.Status.PENDING, requeued_at__lt=now - timedelta(seconds=REQUEUE_SECONDS)
        )
    failed = 0
    for runs, status, error in (
        (overdue, BenchmarkRun.Status.RUNNING, "No worker finished it by its deadline."),
        (silent, BenchmarkRun.Status.RUNNING,
         f"Its worker stopped reporting (no heartbeat for {HEARTBEAT_STALE_SECONDS} s): it died mid-run."),
        (unclaimed, BenchmarkRun.Status.PENDING,
         f"No worker took it within {QUEUE_WAIT_SECONDS // 3600} h of its creation (its message was lost?)."),
        (lost, BenchmarkRun.Status.PENDING,
         f"No worker took it, sent twice {REQUEUE_SECONDS // 60} min apart while the workers were free "
         "(are the benchmark workers running?)."),
    ):  # fmt: skip
        for run_id in runs.values_list("pk", flat=True):
            # The whole condition again, on the row as its lock finds it (an UPDATE waits for the worker's
            # _finish and re-reads the row): a run the worker ended meanwhile is left as the worker ended it.
            if runs.filter(pk=run_id, status=status).update(
                status=BenchmarkRun.Status.FAILED, finished_at=now, error=error, progress_message=""
            ):
                failed += 1
                _revoke_run_tokens(run_id)
    # Still running with a fresh heartbeat, a run whose worker process is gone (on this host) is failed now,
    # not once its heartbeat is stale.
    failed += benchmark_runs_fail_orphaned()
    return failed


def benchmark_runs_fail_orphaned() -> int:
    """Fail this host's running runs whose worker process is gone, and remove the files such runs left
    (VAR_DIR/benchmark-runs: the patients drawn, the samples). Run by the checker and when a worker starts:
    a worker killed mid-run (SIGKILL, the OOM killer) left its run RUNNING until the checker's next round
    (up to 5 minutes, a restart did not trigger it), and its folder for good."""
    failed = 0
    for run in BenchmarkRun.objects.filter(status=BenchmarkRun.Status.RUNNING, worker_host=socket.gethostname()):
        failed += _fail_if_worker_gone(run)
    for folder in runner.run_folders_sweep():
        logger.warning("removed benchmark run files left by a process that is gone: %s", folder)
    return failed


def _runs_requeue(now) -> list[int]:
    """Send again, once, the runs pending REQUEUE_SECONDS while their own target is free: their message was
    lost (a broker restart, a purge), or their next try was not sent (benchmark_run_wait_unsent). Requeued only
    while no run anywhere was running, a day-long run on another target kept such a run pending until it was
    failed at QUEUE_WAIT_SECONDS as lost. Marked first, by a conditional update, so that two checkers at once
    send each run once; a second message would be harmless anyway (only a pending run starts), as is one sent
    while a run starts on its target (it waits behind it). The waiting runs and the running runs' targets are
    read in one query a round: each waiting run's target looked up on its own took six queries a run, every
    round."""
    waiting = Q(status=BenchmarkRun.Status.PENDING, requeued_at=None,
                created_at__lt=now - timedelta(seconds=REQUEUE_SECONDS))  # fmt: skip
    rows = list(
        BenchmarkRun.objects.filter(waiting | Q(status=BenchmarkRun.Status.RUNNING))
        .order_by("pk")
        .values_list("pk", "status", "plan__service__base_url")
    )
    busy = {_target(url) for _, status, url in rows if status == BenchmarkRun.Status.RUNNING}
    sent = []
    for run_id, status, url in rows:
        if status != BenchmarkRun.Status.PENDING or _target(url) in busy:  # its target busy: a later round sends it
            continue
        if BenchmarkRun.objects.filter(pk=run_id, status=BenchmarkRun.Status.PENDING, requeued_at=None).update(
            requeued_at=now
        ):
            logger.warning("benchmark run %s: no worker took it in %s s, sent again", run_id, REQUEUE_SECONDS)
            transaction.on_commit(lambda run_id=run_id: _run_requeue_send(run_id, now))
            sent.append(run_id)
    return sent


def _run_requeue_send(run_id: int, marked_at) -> None:
    """A send the broker refused (RabbitMQ down, its vhost gone) ended the checker's round: the other stuck runs
    were not failed, and this run, marked requeued though never sent, was failed later as "sent twice". Its
    mark is taken back instead, so that the next round sends it (or fails it once QUEUE_WAIT_SECONDS pass)."""
    from apps.benchmarks.tasks import execute_run

    try:
        execute_run.delay(run_id)
    except send_errors(execute_run.app) as exc:
        BenchmarkRun.objects.filter(pk=run_id, status=BenchmarkRun.Status.PENDING, requeued_at=marked_at).update(
            requeued_at=None
        )
        logger.warning("benchmark run %s was not sent again, %s: the next round tries again", run_id,
                       broker_failure(exc))  # fmt: skip


def _revoke_run_tokens(run_id: int) -> None:
    from apps.accounts.models import ApiClient

    for client in ApiClient.objects.filter(name__startswith=f"benchmark-run-{run_id}-", revoked_at=None):
        api_client_revoke(client=client)


def regressions_detect(*, run: BenchmarkRun, samples: list[list]) -> Regression | None:
    """This run's latencies against the plan's last successful runs: Mann-Whitney U plus a magnitude above
    the plan's A/A noise, and whether the p95 history has a change point at this run."""
    plan = run.plan
    alike = (
        plan.runs.filter(
            status=BenchmarkRun.Status.SUCCEEDED, created_at__lt=run.created_at, config_digest=run.config_digest
        )
        .exclude(pk=run.pk)
        .order_by("-created_at")
        .only("pk", "created_at", "summary", "findings")
    )
    # Runs with too few successful requests (a target that was down) say nothing of its latency.
    baseline_runs = [
        previous for previous in alike[: BASELINE_RUNS * 4]
        if len(previous.findings.get("latencies_ms", [])) >= analysis.MIN_SAMPLES
    ][:BASELINE_RUNS]  # fmt: skip
    baseline = [value for previous in baseline_runs for value in previous.findings.get("latencies_ms", [])]
    current = [s[1] for s in samples if s[3]]
    if len(baseline_runs) < 2 or not baseline or not current:
        return None
    noise = analysis.noise_pct([statistics.median(previous.findings["latencies_ms"]) for previous in baseline_runs])
    comparison = analysis.compare_with_baseline(current, baseline, threshold_pct=max(plan.min_regression_pct, noise))
    history = [previous.summary.get("p95_ms") or 0 for previous in reversed(baseline_runs)] + [run.summary["p95_ms"]]
    at_change_point = (len(history) - 1) in analysis.change_points(history)
    run.findings = {**run.findings, "regression_check": {**comparison, "change_point": at_change_point}}
    if not comparison["regression"]:
        return None
    return Regression.objects.create(
        plan=plan,
        run=run,
        metric="latency_ms",
        baseline=comparison["baseline"],
        current=comparison["current"],
        change_pct=comparison["change_pct"],
        p_value=comparison["p_value"],
        threshold_pct=comparison["threshold_pct"],
        change_point=at_change_point,
    )


def regression_acknowledge(*, regression: Regression, user) -> bool:
    """Acknowledge it once: whether this call did. Two admins acknowledging at once (each having read it
    unacknowledged) both wrote, the second overwriting who and when, and both were told they had; the
    conditional update lets one win and leaves the other's row as the winner wrote it."""
    now = timezone.now()
    acknowledged = bool(
        Regression.objects.filter(pk=regression.pk, acknowledged_at=None).update(
            acknowledged_by=user, acknowledged_at=now
        )
    )
    regression.refresh_from_db(fields=["acknowledged_by", "acknowledged_at"])
    return acknowledged


NIGHTLY_TASK = "benchmarks.scheduled_run"
NIGHTLY_PREFIX = "Nightly benchmark: "


@dataclass
class NightlySchedules:
    """What `nightly_benchmarks_ensure` did, plan by plan (schedule names; renamed as "old -> new")."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    duplicates_removed: list[str] = field(default_factory=list)
    disabled_plans: list[str] = field(default_factory=list)


def nightly_benchmark_forget(*, plan_id: int) -> list[str]:
    """Remove the schedules of a deleted plan: left behind, each would wake a worker every night to find
    no plan, and an admin's list of schedules would name plans that no longer exist. Their crontabs go too
    where no other schedule uses them (each nightly has its own: left, one unused row a deleted plan)."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    stale = [task for task in PeriodicTask.objects.filter(task=NIGHTLY_TASK) if _scheduled_plan_id(task) == plan_id]
    PeriodicTask.objects.filter(pk__in=[task.pk for task in stale]).delete()
    crontabs = [task.crontab_id for task in stale if task.crontab_id is not None]
    CrontabSchedule.objects.filter(pk__in=crontabs, periodictask__isnull=True).delete()
    return [task.name for task in stale]


def _scheduled_plan_id(task) -> int | None:
    try:
        kwargs = json.loads(task.kwargs or "{}")
    except ValueError:
        return None
    plan_id = kwargs.get("plan_id") if isinstance(kwargs, dict) else None
    return plan_id if isinstance(plan_id, int) else None


@transaction.atomic
def nightly_benchmarks_ensure(*, plans=None) -> NightlySchedules:
    """A nightly regression run (03:00 on the hospital's clock, TIME_ZONE) of each plan: `plans`, or every
    enabled plan. Django-celery-beat rows an admin can edit, found by task and plan id (not by name: a
    renamed plan would get a second schedule and run twice a night); a generated name that went stale
    follows the plan's new name. Each new schedule gets a crontab row of its own, shared with no one."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    outcome = NightlySchedules()
    plans = BenchmarkPlan.objects.filter(enabled=True) if plans is None else plans
    # The plans' rows locked (in one order) before their schedules are read: two admins scheduling a plan
    # at once both found no schedule and both created it, the second a unique violation on its name (a 500).
    # Now the second waits, then finds the first one's schedule.
    list(BenchmarkPlan.objects.select_for_update().filter(pk__in=plans.values("pk")).order_by("pk").values("pk"))
    by_plan: dict[int, list] = {}
    for task in PeriodicTask.objects.select_for_update().filter(task=NIGHTLY_TASK).order_by("pk"):
        plan_id = _scheduled_plan_id(task)
        if plan_id is not None:
            by_plan.setdefault(plan_id, []).append(task)
    for plan in plans.order_by("name"):
        if not plan.enabled:
            outcome.disabled_plans.append(plan.name)
            continue
        name = _free_name(PeriodicTask, f"{NIGHTLY_PREFIX}{plan.name}", plan)
        tasks = by_plan.get(plan.pk, [])
        if not tasks:
            # A crontab of its own, never one found by its time: any 03:00 row was taken, an Operator's own
            # among them, and once a hidden service's nightly used it the Operator could no longer retime it
            # (admin's shared-timing rule), nor could anyone retime one plan's night without the others'.
            nightly = CrontabSchedule.objects.create(minute="0", hour="3", day_of_week="*", day_of_month="*",
                                                     month_of_year="*", timezone=settings.TIME_ZONE)  # fmt: skip
            PeriodicTask.objects.create(name=name, task=NIGHTLY_TASK, crontab=nightly, queue="benchmarks",
                                        kwargs=json.dumps({"plan_id": plan.pk}))  # fmt: skip
            outcome.created.append(name)
            continue
        generated = [task for task in tasks if task.name.startswith(NIGHTLY_PREFIX)]
        if not generated:
            outcome.existing.append(tasks[0].name)  # renamed by an admin: their name is theirs to keep
            continue
        kept, *duplicates = generated
        # More than one generated schedule is what the lookup by name made of a renamed plan: it ran twice.
        for duplicate in duplicates:
            duplicate.delete()
            outcome.duplicates_removed.append(duplicate.name)
        if _name_is_current(kept.name, plan):
            outcome.existing.append(kept.name)
        else:
            outcome.renamed.append(f"{kept.name} -> {name}")
            kept.name = name
            kept.save(update_fields=["name"])
    return outcome


def _name_is_current(name: str, plan: BenchmarkPlan) -> bool:
    return name in (f"{NIGHTLY_PREFIX}{plan.name}", f"{NIGHTLY_PREFIX}{plan.name} (plan {plan.pk})")


def _free_name(model, name: str, plan: BenchmarkPlan) -> str:
    """The schedule's name, made unique with the plan's id where another schedule already holds it."""
    holder = model.objects.filter(name=name).first()
    if holder is None or (holder.task == NIGHTLY_TASK and _scheduled_plan_id(holder) == plan.pk):
        return name
    return f"{name} (plan {plan.pk})"


# --- history retention ------------------------------------------------------------------------------
def benchmark_history_prune(*, older_than: datetime, batch_size: int) -> dict[str, int]:
    """Delete the benchmark runs finished before `older_than`, with their regressions; the number of each. Kept
    however old: a run pending or running; one whose regression is not acknowledged yet; each plan's latest
    finished run (the CI gate's, latest_finished_run), latest succeeded and latest passed one; the runs the
    plan's next regression check compares with (the newest BASELINE_RUNS * 4 succeeded of each load it ran,
    regressions_detect's window); each service's latest stress run (service_knee_rps: the scaling planner's
    capacity). Kept until `older_than` passes it too: a run whose regression was acknowledged after it."""
    from apps.core.services import newest_pks, rows_delete_in_batches

    Status = BenchmarkRun.Status
    finished = BenchmarkRun.objects.exclude(status__in=[Status.PENDING, Status.RUNNING])
    succeeded = finished.filter(status=Status.SUCCEEDED)
    newest = (F("created_at").desc(),)
    kept = (
        newest_pks(finished, per=("plan",), order_by=(F("finished_at").desc(nulls_last=True), *newest))
        | newest_pks(succeeded, per=("plan",), order_by=newest)
        | newest_pks(finished.filter(passed=True), per=("plan",), order_by=newest)
        | newest_pks(succeeded, per=("plan", "config_digest"), order_by=newest, count=BASELINE_RUNS * 4)
        | newest_pks(succeeded.filter(findings__has_key="stress"), per=("plan__service",), order_by=newest)
    )
    # acknowledged since the cutoff: a person's decision of today is kept as long as any other recent record
    open_or_recent = Q(acknowledged_at=None) | Q(acknowledged_at__gte=older_than)
    regressions = Regression.objects.filter(open_or_recent, run=OuterRef("pk"))
    old = (
        finished.filter(Q(finished_at__lt=older_than) | Q(finished_at=None, created_at__lt=older_than))
        .exclude(Exists(regressions))
        .only("pk")  # a run's report and samples are megabytes: never read to be deleted
    )
    labels = ("benchmarks.BenchmarkRun", "benchmarks.Regression")
    return rows_delete_in_batches(old, batch_size=batch_size, labels=labels, kept=kept)
