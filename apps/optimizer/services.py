"""The optimization orchestrator: runs, their steps (inline or as Celery tasks), recommendations and
their apply/dismiss flow, verdicts against targets, the stored report, and the schedules."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import AuditEntry, audit_record
from apps.core.broker_errors import broker_failure, send_errors
from apps.core.errors import error_line
from apps.core.schedules import scheduled_task_lock
from apps.optimizer import database
from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation
from apps.optimizer.report import render_report
from apps.optimizer.steps import STEPS
from apps.optimizer.types import Goals, verdict

logger = logging.getLogger(__name__)

STEP_ORDER = ("database", "caching", "model", "scaling")
StepHook = Callable[[OptimizationStep, float, str], None]


def run_goals(run: OptimizationRun) -> Goals:
    return Goals(
        response_time_ms=run.response_time_ms,
        cache_hit_rate=run.cache_hit_rate,
        service_slug=run.service.slug if run.service_id else None,
        subject=run.subject or None,
    )


@transaction.atomic
def optimization_run_create(
    *,
    target: str,
    apply: bool = False,
    response_time_ms: float | None = None,
    cache_hit_rate: float | None = None,
    service=None,
    subject: str = "",
    requested_by: str = "",
    inline: bool = False,
) -> OptimizationRun:
    """A run with one pending step per optimizer it covers; nothing is measured yet. Bad parameters (a
    schedule's kwargs are typed by hand in admin) raise ValueError and store nothing."""
    if target not in OptimizationRun.Target.values:
        # Stored, an unknown step would fail outside its try on the worker and leave the run running for hours.
        raise ValueError(f"Unknown target {target!r}; one of: {', '.join(OptimizationRun.Target.values)}.")
    if not isinstance(apply, bool):
        raise ValueError(f"apply must be true or false, not {apply!r}.")
    # NaN fails every comparison, so `<= 0` alone would let it through.
    if response_time_ms is not None and not (math.isfinite(response_time_ms) and response_time_ms > 0):
        raise ValueError("The response-time target must be a positive, finite number.")
    if cache_hit_rate is not None and not (math.isfinite(cache_hit_rate) and 0 < cache_hit_rate <= 1):
        raise ValueError("The cache hit-rate target must be above 0 and at most 1.")
    if len(subject) > OptimizationRun._meta.get_field("subject").max_length:
        raise ValueError("The subject is longer than any deployment name.")
    run = OptimizationRun.objects.create(
        target=target,
        apply=apply,
        response_time_ms=response_time_ms,
        cache_hit_rate=cache_hit_rate,
        service=service,
        subject=subject,
        requested_by=requested_by,
        inline=inline,
    )
    names = STEP_ORDER if target == OptimizationRun.Target.ALL else (target,)
    OptimizationStep.objects.bulk_create(
        OptimizationStep(run=run, name=name, position=position) for position, name in enumerate(names)
    )
    return run


def optimization_run_inline(run: OptimizationRun, *, hook: StepHook | None = None) -> OptimizationRun:
    """Every step in this process, one after the other, then the verdicts and the report."""
    for step in run.steps.order_by("position"):
        optimization_step_execute(step_id=step.pk, hook=hook)
    return optimization_run_finalize(run_id=run.pk)


class DispatchFailed(Exception):
    pass


def optimization_run_dispatch(run: OptimizationRun) -> None:
    """Each step as a task on the workers, in order, then the finalizer; sent once the run is committed.
    If the broker cannot take it, the run is finished as failed (never left pending) and DispatchFailed raised."""
    from celery import chain

    from apps.optimizer.tasks import finalize_run, run_step

    signatures = [run_step.si(step_id) for step_id in run.steps.order_by("position").values_list("pk", flat=True)]
    workflow = chain(*signatures, finalize_run.si(run.pk))

    def send() -> None:
        try:
            workflow.apply_async()
        except send_errors(finalize_run.app) as exc:
            _run_finish_unsent(run.pk, exc)
            raise DispatchFailed(f"Run #{run.pk} was not sent: {broker_failure(exc)}.") from exc

    transaction.on_commit(send)


def optimization_run_next_send(*, step_id: int, send: Callable[[], object], redelivered: bool = False) -> None:
    """Send what follows a step on the run's chain (the next step, or the finalizer). Sent by Celery after the
    step's task returned, a send the broker refused (RabbitMQ down, its vhost gone) was an internal error of a
    step that had succeeded, and the run stayed running until the deadline checker failed it hours later as
    "No worker finished it": the steps not sent are failed now, saying the broker refused them, and the run is
    finished here (by its finalizer's work, which needs no broker).
    Sent once per step: the step is marked (next_sent_at, a conditional UPDATE) before the send, and a later
    delivery of the step (redelivered after its worker was lost, the link already sent) sends nothing. A refusal
    fails the run only in the call that set the mark, and only while the next step is still pending: a
    redelivery's refused duplicate failed a run whose next step was sent and measuring.
    `redelivered` (the broker redelivered the step: its worker was lost, maybe between the mark and the send):
    sent again while what follows is still pending (the next step, or the finalizer of a run not finished), else
    the run waited for the deadline checker. Only then: a duplicate delivered while the next step runs would
    restart it (a running step is restarted on delivery, as after a lost worker). If the first send did go and
    its message still waits in the queue, the next step gets two deliveries; that window is taken over a run
    left two hours. A refusal of this second send only logs (the first may have gone)."""
    from apps.optimizer.tasks import finalize_run

    step = OptimizationStep.objects.values("run_id", "position").get(pk=step_id)
    marked = OptimizationStep.objects.filter(pk=step_id, next_sent_at__isnull=True).update(next_sent_at=timezone.now())
    if not marked:
        if not (redelivered and _next_still_pending(step["run_id"], step["position"])):
            logger.info("optimization run %s: what follows its step %s was sent before; not sent again",
                        step["run_id"], step_id)  # fmt: skip
            return
        logger.warning("optimization run %s: its step %s redelivered while what follows is pending; sent again",
                       step["run_id"], step_id)  # fmt: skip
        try:
            send()
        except send_errors(finalize_run.app) as exc:
            logger.warning("optimization run %s: what follows its step %s was not sent again, %s",
                           step["run_id"], step_id, broker_failure(exc))  # fmt: skip
        return
    try:
        send()
    except send_errors(finalize_run.app) as exc:
        following = _following_status(step["run_id"], step["position"])
        if following is not None and following != OptimizationStep.Status.PENDING:
            logger.warning("optimization run %s: what follows its step %s was not sent, %s; its next step is %s",
                           step["run_id"], step_id, broker_failure(exc), following)  # fmt: skip
            return
        logger.warning("optimization run %s: what follows its step %s was not sent, %s; the run is finished here",
                       step["run_id"], step_id, broker_failure(exc))  # fmt: skip
        _run_finish_unsent(step["run_id"], exc)
    except BaseException:
        # Not a refusal (the send itself broke): the mark is taken back, so the step's redelivery sends it.
        OptimizationStep.objects.filter(pk=step_id).update(next_sent_at=None)
        raise


def _following_status(run_id: int, position: int) -> str | None:
    """The status of the run's step after `position`; None when the finalizer follows it."""
    return (
        OptimizationStep.objects.filter(run_id=run_id, position__gt=position)
        .order_by("position")
        .values_list("status", flat=True)
        .first()
    )


def _next_still_pending(run_id: int, position: int) -> bool:
    """What follows the step at `position` has not started: the next step is pending, or (the last step) the
    run is not finished."""
    following = _following_status(run_id, position)
    if following is not None:
        return following == OptimizationStep.Status.PENDING
    return OptimizationRun.objects.filter(
        pk=run_id, status__in=[OptimizationRun.Status.PENDING, OptimizationRun.Status.RUNNING]
    ).exists()


def _run_finish_unsent(run_id: int, exc: BaseException) -> OptimizationRun:
    """The run's steps the broker did not take failed as never sent, and the run finished."""
    OptimizationStep.objects.filter(run_id=run_id, status=OptimizationStep.Status.PENDING).update(
        status=OptimizationStep.Status.FAILED, error=f"Never sent: {broker_failure(exc)}."
    )
    return optimization_run_finalize(run_id=run_id)


# A schedule's second send of the same run within this long is dropped: two beats (an evicted pod terminating
# beside its replacement) each sent the nightly run, and two runs measured (and, with apply, changed) the
# same figures side by side. The schedule is nightly; one edited to fire more often runs at most this often.
SCHEDULED_RUN_ONCE_WITHIN = timedelta(hours=12)


def optimization_run_scheduled(
    *, target: str, apply: bool, schedule: str | None = None, by_hand: bool = False
) -> OptimizationRun:
    """A schedule's run, its steps sent to the workers like any other run's. Once per schedule: a run of the
    same schedule (`schedule`, the beat schedule's name; the target and apply when none is known) started
    within SCHEDULED_RUN_ONCE_WITHIN is the one this send asked for. Keyed on the target alone, two schedules of
    one target made one run between them. `by_hand`: the admin's "Run selected tasks", always a run of its own
    (it said "successfully run" while a nightly run of the last 12 h stood in for it)."""
    requested_by = _scheduled_run_requester(schedule, by_hand=by_hand)
    with transaction.atomic():
        scheduled_task_lock(f"optimizer.scheduled_run:{requested_by}:{target}:{apply}")
        valid = isinstance(apply, bool) and target in OptimizationRun.Target.values  # else the create says why not
        if valid and not by_hand:
            earlier = OptimizationRun.objects.filter(
                requested_by=requested_by, target=target, apply=apply,
                started_at__gte=timezone.now() - SCHEDULED_RUN_ONCE_WITHIN,
            ).first()  # fmt: skip
            if earlier is not None:
                logger.warning(
                    "optimizer: a second send of the schedule %s (%s); run #%s is its run",
                    schedule or "of this target", target, earlier.pk,
                )  # fmt: skip
                return earlier
        run = optimization_run_create(target=target, apply=apply, requested_by=requested_by)
        optimization_run_dispatch(run)  # sent once the run is committed
    return run


def _scheduled_run_requester(schedule: str | None, *, by_hand: bool) -> str:
    """The run's requested_by: "schedule" (no schedule known), "schedule: <name>", or for a run by hand
    "schedule: <name> (run by hand)"; the field's length at most."""
    if not schedule:
        return "schedule"
    limit = OptimizationRun._meta.get_field("requested_by").max_length
    suffix = " (run by hand)" if by_hand else ""
    return f"schedule: {schedule}"[: limit - len(suffix)] + suffix


class StepOutcome(NamedTuple):
    """A delivery's step, and whether it was left to the live attempt that owns it: that attempt sends what
    follows on the chain, this delivery sends nothing (run_step)."""

    step: OptimizationStep
    left_to_owner: bool


def optimization_step_execute(*, step_id: int, hook: StepHook | None = None) -> OptimizationStep:
    """optimization_step_run's step (the optimize command, and callers that send nothing after it)."""
    return optimization_step_run(step_id=step_id, hook=hook).step


def optimization_step_run(*, step_id: int, hook: StepHook | None = None) -> StepOutcome:
    """Run one step. Safe to repeat: a finished step is left alone, and a step whose worker was lost
    starts over (its earlier proposals are replaced, and applying is idempotent).
    Each attempt owns the step (attempt_token) and keeps a heartbeat while it runs (_StepHeartbeat). A delivery
    that finds the step running with a live heartbeat (acks late: the message redelivered while its first worker
    still measures, after that worker's broker connection broke) never measures beside it: it waits for the owner
    to finish or to fall silent (a killed worker's message is redelivered at once, its last beat still fresh),
    up to _owner_wait_seconds(); silent, the step is taken over as after a lost worker (attempts + 1); still
    alive, the step is left to its owner (the outcome's left_to_owner: run_step then sends nothing, the owner
    sends what follows). An attempt whose step was taken over stops at its next progress
    report or heartbeat and drops its results. A step without a heartbeat (an older release's attempt) is taken
    over at once, as before."""
    waited_until = None
    while True:
        with transaction.atomic():
            step = (
                OptimizationStep.objects.select_for_update(of=("self",))
                .select_related("run", "run__service")
                .annotate(owner_alive=_owner_alive())
                .get(pk=step_id)
            )
            if step.is_finished or step.run.is_finished:
                return StepOutcome(step, left_to_owner=waited_until is not None)
            if not (step.status == OptimizationStep.Status.RUNNING and step.attempt_token and step.owner_alive):
                _step_claim(step)  # pending, or its owner is gone (or of an older release): this attempt's now
                break
        if waited_until is None:
            waited_until = time.monotonic() + _owner_wait_seconds()
            logger.warning("optimization step %s of run %s delivered again while its attempt %s runs; waiting for it",
                           step.name, step.run_id, step.attempts)  # fmt: skip
        elif time.monotonic() >= waited_until:
            logger.warning("optimization step %s of run %s is left to its running attempt %s (heartbeat alive)",
                           step.name, step.run_id, step.attempts)  # fmt: skip
            return StepOutcome(step, left_to_owner=True)
        _wait_for_owner(_heartbeat_seconds())

    with _StepHeartbeat(step) as heartbeat:
        return StepOutcome(_step_measure(step, heartbeat, hook), left_to_owner=False)


def _step_claim(step: OptimizationStep) -> None:
    """This attempt takes the step (its row locked): running under a new token, its heartbeat started. started_at
    and the first beat are one statement's database time, so the stuck checker can tell this attempt's heartbeat
    from an earlier attempt's (_heartbeat_owned)."""
    step.status, step.attempts, step.started_at = OptimizationStep.Status.RUNNING, step.attempts + 1, Now()
    step.attempt_token, step.heartbeat_at = uuid.uuid4(), Now()
    step.save(update_fields=["status", "attempts", "started_at", "attempt_token", "heartbeat_at"])
    step.refresh_from_db(fields=["started_at", "heartbeat_at"])  # both the database clock's
    OptimizationRun.objects.filter(pk=step.run_id, status=OptimizationRun.Status.PENDING).update(
        status=OptimizationRun.Status.RUNNING
    )
    step.run.recommendations.filter(step=step.name, status=Recommendation.Status.PENDING).delete()


def _step_measure(step: OptimizationStep, heartbeat: _StepHeartbeat, hook: StepHook | None) -> OptimizationStep:
    """The claimed attempt's work: measure, maybe apply, store the results while it still owns the step."""
    run, implementation, goals = step.run, STEPS[step.name], run_goals(step.run)

    def progress(fraction: float, message: str) -> None:
        reported = not heartbeat.lost.is_set() and _step_owned(step).update(
            progress=fraction, progress_message=message[:200], heartbeat_at=Now()
        )
        if not reported:  # cancelled, failed by the stuck checker, or taken over: stop measuring at once
            raise StepAbandoned(f"step {step.name} of run {run.pk} is no longer this attempt's to run")
        if hook:
            hook(step, fraction, message)

    drafts, recommendations = [], []
    try:
        if step.attempts > 1:
            # Progress starts over: say so, or a follower saw it go backwards (60% to 32%) without a word.
            progress(0.0, f"attempt {step.attempts}: restarted after its worker was lost; progress starts over")
            if run.apply:
                _recommendations_resume(step)
        progress(0.0, "measuring" if step.attempts == 1 else f"measuring (attempt {step.attempts})")
        result = implementation.measure(goals, progress)
        if result.skipped:
            step.status, step.findings = OptimizationStep.Status.SKIPPED, {"skipped": result.skipped}
        else:
            findings, drafts = result.findings, result.drafts
            if run.apply:
                # Applying runs outside any transaction, so the proposals are stored first, and only
                # while the step still counts; the stuck checker may fail the run at any point after.
                with transaction.atomic():
                    if not _step_still_counts(step):
                        return _step_abandoned(step, hook)
                    recommendations, drafts = _store_recommendations(run, step.name, drafts), []
                changes = [recommendation for recommendation in recommendations if recommendation.actionable]
                for done, recommendation in enumerate(changes):
                    with transaction.atomic():
                        if not _step_still_counts(step):
                            break
                    # Between measuring (up to 0.6) and measuring again (0.85): each change moves it on.
                    progress(0.6 + 0.25 * done / len(changes), f"apply: {recommendation.title}")
                    watching = database.build_abandoned.set(lambda: not _step_running(step))
                    try:
                        recommendation_apply(recommendation=recommendation, via="optimize --apply")
                    except ValueError as exc:  # decided meanwhile (an admin dismissed or applied it): left as is
                        logger.info("run %s did not apply recommendation %s: %s", run.pk, recommendation.pk, exc)
                    finally:
                        database.build_abandoned.reset(watching)
                step.applied = list(
                    run.recommendations.filter(step=step.name, status=Recommendation.Status.APPLIED).values_list(
                        "outcome", flat=True
                    )
                )
                if step.applied:
                    findings = implementation.remeasure(findings, step.applied, progress)
            step.findings, step.verdicts = findings, implementation.verdicts(findings, goals)
            step.status = OptimizationStep.Status.SUCCEEDED
            if run.apply:
                # --apply asked for these changes: one that failed fails the step (and the run, exit status 2),
                # with its measurements kept; a run reported as succeeded would say the change was made.
                failed = run.recommendations.filter(step=step.name, status=Recommendation.Status.FAILED)
                errors = [f"{r.subject}: {r.outcome.get('error', 'failed')}" for r in failed.order_by("pk")]
                # Success only for what was verified: a claim still applying here has no outcome.
                unresolved = run.recommendations.filter(
                    step=step.name, status=Recommendation.Status.APPLYING, decided_via="optimize --apply"
                )
                errors += [f"{r.subject}: still applying, its outcome unknown" for r in unresolved.order_by("pk")]
                if errors:
                    step.status, step.error = OptimizationStep.Status.FAILED, "Could not apply " + "; ".join(errors)
    except StepAbandoned:
        pass  # below, the step no longer counts: what it stored is dropped and it keeps its failure
    except Exception as exc:
        logger.exception("optimization step %s of run %s failed", step.name, run.pk)
        step.status, step.error, drafts = OptimizationStep.Status.FAILED, f"{type(exc).__name__}: {exc}", []
    step.progress, step.progress_message, step.finished_at = 1.0, step.get_status_display(), timezone.now()
    with transaction.atomic():
        # The stuck checker may have failed this step and its run while it measured: a full save() here
        # would write SUCCEEDED over FAILED and leave proposals on a run already reported as failed.
        if not _step_still_counts(step):
            stored = [recommendation.pk for recommendation in recommendations]
            Recommendation.objects.filter(pk__in=stored, status=Recommendation.Status.PENDING).delete()
            return _step_abandoned(step, hook)
        _store_recommendations(run, step.name, drafts)
        _step_owned(step).update(**{name: getattr(step, name) for name in STEP_RESULT_FIELDS})
    if hook:
        hook(step, 1.0, step.progress_message)
    return step


class StepAbandoned(Exception):
    """Raised into a step's measurement by its progress report once the step no longer counts."""


def _heartbeat_seconds() -> float:
    return settings.OPTIMIZER_STEP_HEARTBEAT_SECONDS


def _heartbeat_stale_seconds() -> float:
    """A heartbeat older than this: its attempt's worker is gone (3 beats missed)."""
    return 3 * _heartbeat_seconds()


def _owner_wait_seconds() -> float:
    """How long a second delivery waits for a live owner: long enough for a killed owner's last beat to go
    stale (then it takes over), short enough not to hold a worker slot for a whole step."""
    return _heartbeat_stale_seconds() + _heartbeat_seconds()


def _heartbeat_retry_seconds() -> float:
    """A beat the database refused is tried again this soon (its connection replaced), not a full beat later."""
    return _heartbeat_seconds() / 3


def _step_lost_seconds() -> float:
    """The stuck checker fails a running step silent this long: well past _owner_wait_seconds, so a
    redelivery takes the step over first where there is one. The checker runs every 5 minutes (migration
    0003), so a lost step is failed between 10 beats and 10 beats + 5 minutes after its last beat (150-450 s at
    15 s beats)."""
    return 10 * _heartbeat_seconds()


def _owner_alive() -> ExpressionWrapper:
    """True where the step's heartbeat is younger than the stale bound, by the database's clock (the workers'
    clocks may differ)."""
    return ExpressionWrapper(
        Q(heartbeat_at__gt=Now() - timedelta(seconds=_heartbeat_stale_seconds())), output_field=BooleanField()
    )


def _wait_for_owner(seconds: float) -> None:
    time.sleep(seconds)


def _step_owned(step: OptimizationStep):
    """The step's row while this attempt owns it: running, under this attempt's token."""
    return OptimizationStep.objects.filter(
        pk=step.pk, status=OptimizationStep.Status.RUNNING, attempt_token=step.attempt_token
    )


def _pool_drop_broken() -> None:
    """The pool hands out its idle connections unchecked (no CONN_HEALTH_CHECKS): after a restart each is dead, and
    a retry per dead one could outlast the stale bound. psycopg_pool's check() tests each idle one, replacing the
    broken (it never raises for a broken connection)."""
    pool = getattr(connection, "pool", None)  # PostgreSQL's pool; None without one (SQLite)
    if pool is not None:
        import psycopg  # installed wherever there is a pool

        try:
            pool.check()
        except psycopg.Error as error:  # a closed pool, say: the heartbeat thread goes on beating regardless
            logger.warning("database pool check failed: %s: %s", type(error).__name__, error_line(error))


class _StepHeartbeat:
    """A thread refreshing the step's heartbeat every OPTIMIZER_STEP_HEARTBEAT_SECONDS while its attempt runs
    (a measurement or an index build may report no progress for minutes), on a database connection of its own,
    replaced when a beat fails (a dropped connection silenced the heartbeat for good: a live step was taken over
    or failed as lost). Once the step is no longer this attempt's (taken over, cancelled, failed), `lost` is set:
    the next progress report stops the attempt."""

    def __init__(self, step: OptimizationStep) -> None:
        self.step, self.lost, self._stop = step, threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"optimizer-step-{step.pk}-heartbeat", daemon=True)

    def __enter__(self) -> _StepHeartbeat:
        # For tests only: run_step and optimization_run_inline (the optimize command) hold no transaction here.
        # Inside a test's transaction (django_db without transaction=True) the step's row is invisible to the
        # thread's own connection, whose beats would find no step of this attempt's and stop it as lost: progress
        # reports alone beat there, through the test's connection.
        if not connection.in_atomic_block:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        wait = _heartbeat_seconds()
        try:
            while not self._stop.wait(wait):
                try:
                    if not _step_owned(self.step).update(heartbeat_at=Now()):
                        self.lost.set()
                        return
                    wait = _heartbeat_seconds()
                except DatabaseError as error:
                    # The database restarted, failed over or killed this session: the connection is broken for
                    # good, and kept it would fail every later beat (the step then read as lost while it measures).
                    # Dropped (the pool discards a broken one), so the next try takes another, sooner than a beat.
                    with contextlib.suppress(DatabaseError):  # closing it may complain too; it is dropped
                        connection.close()
                    _pool_drop_broken()
                    wait = _heartbeat_retry_seconds()
                    logger.warning("optimization step %s: heartbeat not written (%s: %s); trying again in %.1f s",
                                   self.step.pk, type(error).__name__, error_line(error), wait)  # fmt: skip
        finally:
            connection.close()


STEP_RESULT_FIELDS = ("status", "findings", "applied", "verdicts", "error", "progress", "progress_message",
                      "finished_at")  # fmt: skip
FINISHED_RUN_STATUSES = (OptimizationRun.Status.SUCCEEDED, OptimizationRun.Status.FAILED)


def _step_running(step: OptimizationStep) -> bool:
    """_step_still_counts without the lock: for a watcher polling from another thread."""
    return _step_owned(step).exclude(run__status__in=FINISHED_RUN_STATUSES).exists()


def _step_still_counts(step: OptimizationStep) -> bool:
    """Whether this attempt may still report: its step is running, still this attempt's (no later attempt took
    it over), and its run unfinished. Inside a transaction it holds the step's row, so the stuck checker (or a
    redelivery taking it over) cannot change the step until that commits."""
    status, token, run_status = (
        OptimizationStep.objects.select_for_update(of=("self",))
        .filter(pk=step.pk)
        .values_list("status", "attempt_token", "run__status")
        .get()
    )
    return (
        status == OptimizationStep.Status.RUNNING
        and token == step.attempt_token
        and run_status not in FINISHED_RUN_STATUSES
    )


def _step_abandoned(step: OptimizationStep, hook: StepHook | None) -> OptimizationStep:
    """This attempt no longer counts (the stuck checker failed its step and run meanwhile, or a redelivery took
    the step over from it): its results are dropped and the step keeps what the checker or the later attempt
    writes. A step its finished run left running (still this attempt's) is failed."""
    logger.warning("optimization step %s of run %s ended after its run was finished or another attempt took it "
                   "over; results dropped", step.name, step.run_id)  # fmt: skip
    _step_owned(step).update(
        status=OptimizationStep.Status.FAILED,
        error="Its run was finished before this step ended; its results were dropped.",
        progress=1.0,
        progress_message=OptimizationStep.Status.FAILED.label,
        finished_at=timezone.now(),
    )
    step.refresh_from_db()
    if hook:
        hook(step, 1.0, step.progress_message)
    return step


def _store_recommendations(run: OptimizationRun, step: str, drafts) -> list[Recommendation]:
    """Store this run's proposals; the same proposal still pending from an earlier run is superseded, unless
    that run is still going with --apply: it is about to apply it (superseded, it would skip the change)."""
    with transaction.atomic():
        for draft in drafts:
            Recommendation.objects.filter(
                step=step, kind=draft.kind, subject=draft.subject, status=Recommendation.Status.PENDING
            ).exclude(run=run).exclude(
                run__apply=True, run__status__in=[OptimizationRun.Status.PENDING, OptimizationRun.Status.RUNNING]
            ).update(status=Recommendation.Status.SUPERSEDED)
        return Recommendation.objects.bulk_create(
            Recommendation(
                run=run,
                step=step,
                kind=draft.kind,
                subject=draft.subject,
                title=draft.title[:200],
                reason=draft.reason,
                change=draft.change,
                evidence=draft.evidence,
                actionable=draft.actionable,
            )
            for draft in drafts
        )


def service_verdicts(goals: Goals) -> list[dict]:
    """Each service's measured p95 (request rollups) against the run's target, or its own SLO: of the requests
    served, without the limiter's refusals (a flood of fast 429s read as a met target)."""
    from apps.metrics.selectors import RATE_LIMITED, latency_judged, route_latency
    from apps.services.models import Service

    services = Service.objects.filter(is_active=True).exclude(route_prefix="")
    if goals.service_slug:
        services = services.filter(slug=goals.service_slug)
    since = timezone.now() - timedelta(minutes=settings.OPTIMIZER_SERVICE_WINDOW_MINUTES)
    verdicts = []
    for service in services:
        latency = route_latency(route_prefixes=[service.route_prefix], since=since, exclude_status_classes=RATE_LIMITED)
        enough = latency_judged(latency["count"])
        goal = goals.response_time_ms if goals.response_time_ms is not None else float(service.slo_p95_ms)
        verdicts.append(
            verdict(
                target="response_time",
                subject=f"{service.slug} p95 over {settings.OPTIMIZER_SERVICE_WINDOW_MINUTES} min, "
                f"{latency['count']:,} requests",
                measured=latency["p95_ms"] if enough else None,
                goal=goal,
                unit="ms",
                higher_is_better=False,
            )
        )
    return verdicts


def optimization_run_cancel(*, run: OptimizationRun, by: str) -> bool:
    """Stop an unfinished run: its unfinished steps fail as cancelled (a step measuring stops at its next
    progress report, one applying applies nothing more), and the run is finished as failed, its report
    stored. False when the run had already finished."""
    with transaction.atomic():
        locked = OptimizationRun.objects.select_for_update().get(pk=run.pk)
        if locked.is_finished:
            return False
        OptimizationStep.objects.filter(run=locked).exclude(status__in=FINISHED_STEP_STATUSES).update(
            status=OptimizationStep.Status.FAILED,
            error=f"Cancelled by {by}.",
            progress_message=OptimizationStep.Status.FAILED.label,
            finished_at=timezone.now(),
        )
    optimization_run_finalize(run_id=run.pk, cancelled_by=by)
    return True


FINISHED_STEP_STATUSES = (
    OptimizationStep.Status.SUCCEEDED,
    OptimizationStep.Status.SKIPPED,
    OptimizationStep.Status.FAILED,
)


def optimization_run_finalize(*, run_id: int, cancelled_by: str = "") -> OptimizationRun:
    """Collect the verdicts, settle the run's status, and store its report. Safe to repeat."""
    with transaction.atomic():
        run = OptimizationRun.objects.select_for_update(of=("self",)).select_related("service").get(pk=run_id)
        if run.is_finished:
            return run
        steps = list(run.steps.order_by("position"))
        unfinished = [step.name for step in steps if not step.is_finished]
        verdicts = [v for step in steps for v in step.verdicts] + service_verdicts(run_goals(run))
        judged = [v["met"] for v in verdicts if v["met"] is not None]
        run.verdicts = verdicts
        run.targets_met = all(judged) if judged else None
        failed = [step.name for step in steps if step.status == OptimizationStep.Status.FAILED]
        if cancelled_by:
            run.status, run.error = OptimizationRun.Status.FAILED, f"Cancelled by {cancelled_by}."
        elif failed or unfinished:
            run.status = OptimizationRun.Status.FAILED
            run.error = "; ".join(
                [f"step {name} failed" for name in failed] + [f"step {name} never finished" for name in unfinished]
            )
        else:
            run.status = OptimizationRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.report_html = render_report(run)
        run.save()
    return run


def report_html_live(run: OptimizationRun) -> str:
    """A finished run's report as served: its stored figures, its recommendations' status as it is now."""
    return render_report(run, live_at=timezone.now())


def run_exit_code(run: OptimizationRun) -> int:
    """0 when the run finished and no measured target was missed; what `optimize` exits with."""
    if run.status != OptimizationRun.Status.SUCCEEDED:
        return 2
    return 1 if run.targets_met is False else 0


def _audit_decision(recommendation: Recommendation, user, via: str) -> None:
    audit_record(
        AuditEntry(
            actor_type=AuditEvent.ActorType.USER if user else AuditEvent.ActorType.SYSTEM,
            actor_id=user.pk if user else None,
            actor_name=user.get_username() if user else via,
            action=AuditEvent.Action.UPDATE,
            resource_type="OptimizationRecommendation",
            resource_id=f"{recommendation.pk}:{recommendation.status}",
            purpose_of_use="HOPERAT",  # healthcare operations (FHIR v3 PurposeOfUse)
        )
    )


def recommendation_apply(*, recommendation: Recommendation, user=None, via: str = "admin") -> Recommendation:
    """Make the recommended change through its optimizer, once; who applied it is recorded and audited.
    The recommendation is claimed (applying, committed) before the change is made: a second apply at the same
    moment (two admins, a double click, `optimize --apply` beside the admin) is refused with ValueError, as
    for any decided recommendation. A claim whose process was lost is failed by the stuck checker."""
    with transaction.atomic():
        recommendation = Recommendation.objects.select_for_update().get(pk=recommendation.pk)
        if recommendation.status != Recommendation.Status.PENDING:
            raise ValueError(f"Recommendation {recommendation.pk} is {recommendation.get_status_display().lower()}.")
        if not recommendation.actionable:
            raise ValueError(f"Recommendation {recommendation.pk} is advice: there is nothing to apply.")
        recommendation.status = Recommendation.Status.APPLYING
        recommendation.decided_by, recommendation.decided_via, recommendation.decided_at = user, via, timezone.now()
        recommendation.save(update_fields=["status", "decided_by", "decided_via", "decided_at"])
    # After the claim's commit (CREATE INDEX CONCURRENTLY cannot run inside a transaction, and a lock held
    # through the change would be released by the commit anyway): from here every other apply sees it taken.
    return _apply_claimed(recommendation, user=user, via=via)


def recommendation_apply_enqueue(*, recommendation: Recommendation, user=None, via: str = "admin") -> Recommendation:
    """Claim the recommendation (applying, committed) and send its change to a worker. Made in the web request,
    an index build (minutes on a large table) was killed half-way by gunicorn's timeout, leaving an INVALID index,
    while the admin page hung. Refused with ValueError as recommendation_apply refuses, except that one failed
    as interrupted, lost or never started may be applied again: the build drops the leftover of its earlier
    attempt. The task carries its claim's queued_at: one of an earlier claim does nothing. If the broker cannot
    take it, the claim is let go (status as before) and DispatchFailed raised."""
    with transaction.atomic():
        recommendation = Recommendation.objects.select_for_update().get(pk=recommendation.pk)
        before = {name: getattr(recommendation, name) for name in _CLAIM_FIELDS}
        again = recommendation.status == Recommendation.Status.FAILED and any(
            recommendation.outcome.get(key) for key in ("interrupted", "lost", "not_started")
        )
        if recommendation.status != Recommendation.Status.PENDING and not again:
            raise ValueError(f"Recommendation {recommendation.pk} is {recommendation.get_status_display().lower()}.")
        if not recommendation.actionable:
            raise ValueError(f"Recommendation {recommendation.pk} is advice: there is nothing to apply.")
        recommendation.status = Recommendation.Status.APPLYING
        recommendation.decided_by, recommendation.decided_via, recommendation.decided_at = user, via, timezone.now()
        recommendation.outcome = {"queued_at": recommendation.decided_at.isoformat(), "attempts": 0,
                                  **({"earlier": recommendation.outcome} if again else {})}  # fmt: skip
        recommendation.save(update_fields=_CLAIM_FIELDS)

    def send() -> None:
        from apps.optimizer.tasks import apply_recommendation

        try:
            apply_recommendation.apply_async(
                args=[recommendation.pk], kwargs={"queued_at": recommendation.outcome["queued_at"]}
            )
        except send_errors(apply_recommendation.app) as exc:
            Recommendation.objects.filter(pk=recommendation.pk, status=Recommendation.Status.APPLYING).update(**before)
            raise DispatchFailed(
                f"{recommendation.title}: not queued, {broker_failure(exc)}. Nothing was applied and it is left as "
                "it was: apply it again once the broker takes tasks."
            ) from exc

    transaction.on_commit(send)
    return recommendation


_CLAIM_FIELDS = ["status", "decided_by", "decided_via", "decided_at", "outcome"]


def recommendation_apply_queued(*, recommendation_id: int, queued_at: str | None = None) -> Recommendation:
    """The worker's part of recommendation_apply_enqueue: make the change of its claim. Safe to run twice (acks
    late: a worker lost mid-build gets the task again): a claim no longer applying is left as it is, and a later
    attempt resumes as a run's lost step does (index_create waits for the lost session's build and verifies the
    index valid, or drops its INVALID leftover and builds it again). `queued_at`: the claim the task was sent
    for; the task of an earlier claim (failed as never started or lost, then applied again, its message still
    queued) does nothing, or it took the new claim as its own and the new task "resumed" it beside it."""
    with transaction.atomic():
        recommendation = (
            Recommendation.objects.select_for_update(of=("self",)).select_related("decided_by")
            .filter(pk=recommendation_id).first()
        )  # fmt: skip
        if recommendation is None or recommendation.status != Recommendation.Status.APPLYING:
            return recommendation
        if "queued_at" not in recommendation.outcome:  # applied in its claimer's own process (optimize --apply)
            return recommendation
        if queued_at is not None and recommendation.outcome["queued_at"] != queued_at:
            logger.warning("recommendation %s: a task of its earlier claim (queued %s) does nothing",
                           recommendation_id, queued_at)  # fmt: skip
            return recommendation
        attempts = recommendation.outcome.get("attempts", 0) + 1
        recommendation.outcome = {**recommendation.outcome, "attempts": attempts,
                                  "started_at": timezone.now().isoformat()}  # fmt: skip
        recommendation.save(update_fields=["outcome"])
    if attempts > 1:
        logger.warning("recommendation %s: attempt %s resumes an apply whose worker was lost", recommendation_id,
                       attempts)  # fmt: skip
    queued = {key: recommendation.outcome[key] for key in ("queued_at", "attempts", "earlier")
              if key in recommendation.outcome}  # fmt: skip
    return _apply_claimed(
        recommendation, user=recommendation.decided_by, via=recommendation.decided_via, resumed=attempts > 1,
        queued=queued,
    )  # fmt: skip


def _apply_claimed(
    recommendation: Recommendation, *, user, via: str, resumed: bool = False, queued: dict | None = None
) -> Recommendation:
    """Make the change of a recommendation this process holds the claim of (applying), and record the outcome
    (with `queued`, where a worker applied it: when it was queued, its attempts). Interrupted (Ctrl-C,
    optimize's SIGTERM, a worker's shutdown: not Exceptions), the claim is failed with the reason before the
    interrupt goes on: left applying, the admin refused it for 2 h."""
    try:
        outcome = STEPS[recommendation.step].apply(
            recommendation.change, recommendation.subject, evidence=recommendation.evidence
        )
    except Exception as exc:
        logger.warning("recommendation %s could not be applied", recommendation.pk, exc_info=True)
        recommendation.status, recommendation.outcome = (
            Recommendation.Status.FAILED,
            {"error": f"{type(exc).__name__}: {exc}"},
        )
    except BaseException as interrupt:
        recommendation.status, recommendation.outcome = (
            Recommendation.Status.FAILED,
            {"error": f"Interrupted ({type(interrupt).__name__}) while it was being applied; nothing was kept "
             "(a build interrupted is dropped). Apply it again.", "interrupted": True, **(queued or {})},
        )  # fmt: skip
        _record_outcome(recommendation, user=user, via=via)
        raise
    else:
        if resumed:  # its lost attempt's session may have built it: made by this run all the same
            note = "verified valid after its lost attempt" if outcome.get("note") == "already present" else None
            outcome = {**outcome, "resumed": True, **({"note": note} if note else {})}
        recommendation.status, recommendation.outcome = Recommendation.Status.APPLIED, outcome
    recommendation.outcome = {**recommendation.outcome, **(queued or {})}
    _record_outcome(recommendation, user=user, via=via)
    return recommendation


def _record_outcome(recommendation: Recommendation, *, user, via: str) -> None:
    with transaction.atomic():
        # Still this apply's claim, or failed as lost by the stuck checker while the change went on: what
        # really happened is recorded over the checker's guess.
        finished = (
            Recommendation.objects.filter(pk=recommendation.pk)
            .filter(
                Q(status=Recommendation.Status.APPLYING) | Q(status=Recommendation.Status.FAILED, outcome__lost=True)
            )
            .update(status=recommendation.status, outcome=recommendation.outcome)
        )
        if finished:
            _audit_decision(recommendation, user, via)
        else:  # decided otherwise meanwhile (never by another apply: it found the claim)
            logger.warning("recommendation %s was decided while it was being applied", recommendation.pk)


def _recommendations_resume(step: OptimizationStep) -> None:
    """A step that starts again (its worker was lost) first finishes the applies its earlier attempt claimed:
    their change may still be going on in the lost worker's database session (an index being built), or be
    done, or have been dropped. The step's apply tells those apart (index_create waits for another session's
    build and verifies the index valid; a leftover is dropped and built again) and the true outcome is
    recorded. Measuring first took an index being built for present: nothing was applied, the run succeeded
    and the recommendation stayed applying."""
    claimed = step.run.recommendations.filter(
        step=step.name, status=Recommendation.Status.APPLYING, decided_via="optimize --apply"
    ).order_by("pk")
    for recommendation in claimed:
        logger.warning("run %s resumes the apply of recommendation %s its lost attempt claimed",
                       step.run_id, recommendation.pk)  # fmt: skip
        watching = database.build_abandoned.set(lambda: not _step_running(step))
        try:
            _apply_claimed(recommendation, user=None, via="optimize --apply", resumed=True)
        finally:
            database.build_abandoned.reset(watching)


APPLY_LOST_ERROR = (
    "Its apply did not finish within OPTIMIZER_RUN_DEADLINE_SECONDS: its process was lost. Check whether the "
    "change was made; apply it again from admin (an interrupted index build is dropped and built anew), or a later "
    "run proposes it again while it is still needed."
)


APPLY_NOT_STARTED_ERROR = (
    "No worker took its apply within OPTIMIZER_RUN_DEADLINE_SECONDS (is a worker consuming the inference queue "
    "running?): nothing was changed. Apply it again from admin once one runs; the task queued earlier does nothing "
    "if a worker takes it later."
)


def recommendations_fail_stuck(*, now=None) -> int:
    """Recommendations claimed by an apply longer ago than a run may last (the apply's process was lost
    between claim and outcome) are failed, so none stays applying for ever; the stuck checker calls this.
    An admin's apply is counted from its worker's start (it may have waited for a worker), and one no worker
    started is failed as such (nothing was changed; its task, taken later, does nothing): it was failed as
    lost, "check whether the change was made"."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.OPTIMIZER_RUN_DEADLINE_SECONDS)
    count = 0
    stuck = Recommendation.objects.filter(status=Recommendation.Status.APPLYING, decided_at__lt=deadline)
    for pk in stuck.values_list("pk", flat=True):
        with transaction.atomic():
            recommendation = (
                Recommendation.objects.select_for_update()
                .filter(pk=pk, status=Recommendation.Status.APPLYING, decided_at__lt=deadline)
                .first()
            )
            if recommendation is None:  # its apply finished meanwhile
                continue
            outcome = recommendation.outcome or {}
            if "queued_at" in outcome and not outcome.get("attempts"):  # the worker's start takes this row's lock
                kept = {key: outcome[key] for key in ("queued_at", "earlier") if key in outcome}
                recommendation.outcome = {"error": APPLY_NOT_STARTED_ERROR, "not_started": True, **kept}
            elif "started_at" in outcome and datetime.fromisoformat(outcome["started_at"]) >= deadline:
                continue  # started late, after waiting for a worker: its deadline counts from its start
            else:
                recommendation.outcome = {"error": APPLY_LOST_ERROR, "lost": True}
            recommendation.status = Recommendation.Status.FAILED
            recommendation.save(update_fields=["status", "outcome"])
            _audit_decision(recommendation, None, "stuck checker")
            count += 1
    if count:
        logger.warning("optimizer: %s recommendation(s) left applying (a lost process, or no worker) were failed",
                       count)  # fmt: skip
    return count


def recommendation_dismiss(*, recommendation: Recommendation, user=None, via: str = "admin") -> Recommendation:
    with transaction.atomic():
        recommendation = Recommendation.objects.select_for_update().get(pk=recommendation.pk)
        if recommendation.status != Recommendation.Status.PENDING:
            raise ValueError(f"Recommendation {recommendation.pk} is {recommendation.get_status_display().lower()}.")
        recommendation.status = Recommendation.Status.DISMISSED
        recommendation.decided_by, recommendation.decided_via, recommendation.decided_at = user, via, timezone.now()
        recommendation.save(update_fields=["status", "decided_by", "decided_via", "decided_at"])
        _audit_decision(recommendation, user, via)
    return recommendation


def optimization_runs_fail_stuck(*, now=None) -> int:
    """Runs past their deadline lost their worker (or never got one): mark them failed, never leave them.
    Recommendations an apply claimed as long ago are failed too (recommendations_fail_stuck)."""
    now = now or timezone.now()
    recommendations_fail_stuck(now=now)
    deadline = now - timedelta(seconds=settings.OPTIMIZER_RUN_DEADLINE_SECONDS)
    stuck = OptimizationRun.objects.filter(
        status__in=[OptimizationRun.Status.PENDING, OptimizationRun.Status.RUNNING], started_at__lt=deadline
    )
    count = _runs_fail_silent_steps()
    for run_id in stuck.values_list("pk", flat=True):
        with transaction.atomic():
            OptimizationStep.objects.filter(run_id=run_id).exclude(status__in=FINISHED_STEP_STATUSES).update(
                status=OptimizationStep.Status.FAILED, error="No worker finished it before the deadline."
            )
        optimization_run_finalize(run_id=run_id)
        count += 1
    return count


STEP_LOST_ERROR = (
    "Its worker was lost: no heartbeat for {seconds:.0f} s (OPTIMIZER_STEP_HEARTBEAT_SECONDS x 10), and no "
    "redelivery took it over."
)


def _heartbeat_owned() -> Q:
    """Steps whose heartbeat is their running attempt's: written a beat or more after the attempt's claim. A claim
    writes started_at and the first beat in one statement (database time); an older release's claim writes
    started_at only (its host's clock), so the heartbeat_at it leaves is an earlier, dead attempt's, older than
    its started_at. The beat of margin: an older release's host clock may run that much behind the database's
    before its attempt is read as heartbeat-owned; an attempt silent from its very start waits for the deadline."""
    return Q(heartbeat_at__gte=F("started_at") + timedelta(seconds=_heartbeat_seconds()))


def _runs_fail_silent_steps() -> int:
    """Runs with a running step whose heartbeat stopped (its worker lost, and its message acked by a redelivery
    that found it still beating, or never redelivered) are failed now, not at the run's deadline: the stale step
    as lost, the run's other unfinished steps as never finished. Not re-sent: the rest of the chain went with the
    lost worker's message. Steps without a heartbeat of their attempt's (an older release's attempt, even on a row
    an earlier attempt's heartbeat is left on) wait for the deadline, as before. When a silent step is failed:
    _step_lost_seconds."""
    seconds = _step_lost_seconds()
    silent = Q(status=OptimizationStep.Status.RUNNING, heartbeat_at__lt=Now() - timedelta(seconds=seconds))
    silent &= _heartbeat_owned()
    run_ids = (
        OptimizationStep.objects.filter(silent)
        .filter(run__status__in=[OptimizationRun.Status.PENDING, OptimizationRun.Status.RUNNING])
        .values_list("run_id", flat=True)
        .distinct()
    )
    count = 0
    for run_id in list(run_ids):
        with transaction.atomic():
            # Conditional: a redelivery that took the step over meanwhile wrote a fresh heartbeat.
            lost = OptimizationStep.objects.filter(silent, run_id=run_id).update(
                status=OptimizationStep.Status.FAILED,
                error=STEP_LOST_ERROR.format(seconds=seconds),
                progress_message=OptimizationStep.Status.FAILED.label,
                finished_at=timezone.now(),
            )
            if not lost:
                continue
            logger.warning("optimization run %s: a step's heartbeat stopped %.0f s ago; the run is failed",
                           run_id, seconds)  # fmt: skip
            OptimizationStep.objects.filter(run_id=run_id).exclude(status__in=FINISHED_STEP_STATUSES).update(
                status=OptimizationStep.Status.FAILED, error="Not run: an earlier step's worker was lost."
            )
        optimization_run_finalize(run_id=run_id)
        count += 1
    return count


NIGHTLY_OPTIMIZE = "Nightly optimize all (recommendations only)"


def optimizer_schedules_ensure() -> list[str]:
    """The control plane's editable schedules (django-celery-beat rows); existing rows keep an admin's edits.
    A new schedule gets a crontab row of its own, shared with no one (as nightly_benchmarks_ensure's)."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if PeriodicTask.objects.filter(name=NIGHTLY_OPTIMIZE).exists():
        return []
    with transaction.atomic():
        # A crontab of its own, never one found by its time: any 02:30 row was taken, an Operator's own among
        # them, and once "optimize all" (every service's, hidden ones too) used it the Operator could no longer
        # retime it (admin's shared-timing rule), nor could anyone retime one without the other.
        nightly = CrontabSchedule.objects.create(minute="30", hour="2", day_of_week="*", day_of_month="*",
                                                 month_of_year="*", timezone=settings.TIME_ZONE)  # fmt: skip
        _, created = PeriodicTask.objects.get_or_create(
            name=NIGHTLY_OPTIMIZE,
            defaults={
                "task": "optimizer.scheduled_run",
                "crontab": nightly,
                "kwargs": '{"target": "all"}',
                "queue": "default",
                "description": "Measures every optimizer's figures and stores recommendations; applies nothing.",
            },
        )
        if not created:  # made meanwhile by another caller, on its own crontab: this one is no one's
            nightly.delete()
    return [NIGHTLY_OPTIMIZE] if created else []


# --- history retention ------------------------------------------------------------------------------
# A failed apply that may be applied again (recommendation_apply_enqueue's `again`): still open.
APPLY_AGAIN_OUTCOMES = ("interrupted", "lost", "not_started")


def optimization_history_prune(*, older_than: datetime, batch_size: int) -> dict[str, int]:
    """Delete the optimization runs finished before `older_than`, with their steps and recommendations; the
    number of each. Kept however old: a run pending or running, or with a step not finished; one with an open
    recommendation (pending, being applied, or failed in a way that may be applied again); the latest finished
    run of each target and service (the overview's last run); the runs whose database counters the next
    database step counts its scans from (database_scan_baseline, for tables and for unused indexes). Kept until
    `older_than` passes it too: a run with a recommendation decided (applied, dismissed) after it."""
    from apps.core.services import newest_pks, rows_delete_in_batches
    from apps.optimizer.selectors import database_scan_baseline

    finished = OptimizationRun.objects.filter(status__in=FINISHED_RUN_STATUSES)
    kept = newest_pks(finished, per=("target", "service"), order_by=(F("started_at").desc(),))
    now = timezone.now().isoformat()
    for older_by in (timedelta(hours=1), timedelta(seconds=database.UNUSED_INDEX_MIN_WINDOW_SECONDS)):
        if baseline := database_scan_baseline(before=now, older_by=older_by):
            kept.add(baseline["run"])
    Status = Recommendation.Status
    again = Q()
    for key in APPLY_AGAIN_OUTCOMES:
        again |= Q(**{f"outcome__{key}": True})
    # decided since the cutoff: what changed, who decided, and the measure after it (followups_measure's) stay
    open_or_recent = Recommendation.objects.filter(run=OuterRef("pk")).filter(
        Q(status__in=[Status.PENDING, Status.APPLYING]) | Q(again, status=Status.FAILED) | Q(decided_at__gte=older_than)
    )
    unfinished = OptimizationStep.objects.filter(run=OuterRef("pk")).exclude(status__in=FINISHED_STEP_STATUSES)
    old = (
        finished.filter(Q(finished_at__lt=older_than) | Q(finished_at=None, started_at__lt=older_than))
        .exclude(Exists(open_or_recent))
        .exclude(Exists(unfinished))
        .only("pk")  # its report is not read to be deleted
    )
    labels = ("optimizer.OptimizationRun", "optimizer.OptimizationStep", "optimizer.Recommendation")
    return rows_delete_in_batches(old, batch_size=batch_size, labels=labels, kept=kept)
