import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.apps import apps as django_apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.links import absolute_url
from apps.optimizer import services
from apps.optimizer.models import OptimizationRun, OptimizationStep
from apps.services.models import Service

logger = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, Kubernetes, `timeout`), raised where Ctrl-C raises KeyboardInterrupt so that it takes
    the same path: the run is cancelled, not left running until the stuck checker fails it (up to 2 h). A
    KeyboardInterrupt, so psycopg cancels a query it interrupts and no `except Exception` in a step swallows it."""


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises Terminated in the main thread while the command runs; any later one is ignored until
    the process exits, so that it cannot stop the cancelling nor turn exit status 2 into -15 (systemd and
    Kubernetes follow with SIGKILL after their grace period)."""
    if threading.current_thread() is not threading.main_thread():  # call_command from a thread: no signals
        yield
        return

    terminated = threading.Event()

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        terminated.set()
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        # Once terminated, the process is on its way out with exit status 2: a handler put back here let a
        # later SIGTERM (a supervisor repeating it) kill it on the way, with -15 instead.
        if not terminated.is_set():
            signal.signal(signal.SIGTERM, previous)


def _stopped_by(interrupt: KeyboardInterrupt) -> tuple[str, str]:
    """Who cancelled the run (stored on it) and what the command says."""
    if isinstance(interrupt, Terminated):
        return "manage.py optimize (terminated: SIGTERM)", "Terminated (SIGTERM)"
    return "manage.py optimize (interrupted)", "Interrupted"


class Command(BaseCommand):
    help = (
        "Measure and optimize the system: each step runs on a Celery worker (or here with --inline). "
        "Without --apply nothing is changed. Exits 1 when a measured target is missed, 2 when the run failed or "
        "could not run (a refused option, a timeout, a change --apply could not make), 3 when only --report failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", choices=[choice for choice, _ in OptimizationRun.Target.choices])
        parser.add_argument("subject", nargs="?", default="", help="model: only this deployment (its name).")
        parser.add_argument("--response-time", type=float, help="Target p95 response time in seconds (e.g. 1.5).")
        parser.add_argument("--cache-hit-rate", type=float, help="Target cache hit rate, 0-1 (e.g. 0.85).")
        parser.add_argument("--service", help="Judge only this service (its slug).")
        parser.add_argument("--apply", action="store_true", help="Apply the recommendations that are safe to apply.")
        # --no-wait only means something on the workers: given with --inline it was silently ignored.
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--inline", action="store_true", help="Run every step in this process, not on workers.")
        where.add_argument("--no-wait", action="store_true", help="Send the steps to the workers and return.")
        parser.add_argument("--timeout", type=float, default=3600, help="Seconds to wait for the workers.")
        parser.add_argument("--report", help="Also write the HTML report to this file.")

    def handle(self, *args, **options) -> None:
        """The exit status is the contract (0 met, 1 missed, 2 failed): whatever stops the command before a
        verdict (a refused option, a lost database, a timeout) exits 2, never the 1 of "a target missed" that
        a plain CommandError or an uncaught exception would give a script reading it."""
        try:
            with _sigterm_interrupts():
                self._optimize(*args, **options)
        except CommandError as exc:
            exc.returncode = 2 if exc.returncode == 1 else exc.returncode
            raise
        except Exception as exc:
            logger.exception("manage.py optimize failed")
            raise CommandError(f"The run could not finish: {type(exc).__name__}: {exc}", returncode=2) from exc

    def _optimize(self, *args, target: str, subject: str = "", **options) -> None:
        if subject and target != OptimizationRun.Target.MODEL:
            raise CommandError("Only `optimize model` takes a subject (a deployment name).")
        if subject:
            self._check_deployment(subject)
        response_time = options["response_time"]
        if response_time is not None and not (math.isfinite(response_time * 1000) and response_time > 0):
            raise CommandError("--response-time must be a positive, finite number of seconds.")
        hit_rate = options["cache_hit_rate"]
        if hit_rate is not None and not (math.isfinite(hit_rate) and 0 < hit_rate <= 1):
            raise CommandError("--cache-hit-rate must be above 0 and at most 1.")
        # A NaN timeout would never be reached: the command would wait forever.
        if not (math.isfinite(options["timeout"]) and options["timeout"] > 0):
            raise CommandError("--timeout must be a positive, finite number of seconds.")
        service = None
        if options["service"]:
            service = Service.objects.filter(slug=options["service"]).first()
            if service is None:
                raise CommandError(f"No service {options['service']!r}.")
        try:
            run = services.optimization_run_create(
                target=target,
                apply=options["apply"],
                response_time_ms=response_time * 1000 if response_time is not None else None,
                cache_hit_rate=hit_rate,
                service=service,
                subject=subject,
                requested_by="manage.py optimize",
                inline=options["inline"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Optimization run #{run.pk}: {', '.join(run.steps.values_list('name', flat=True))}")
        if options["inline"]:
            try:
                run = services.optimization_run_inline(run, hook=self._progress)
            except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (Terminated)
                # Left as it was, the run would show as running (live feed, admin) until the stuck checker.
                by, what = _stopped_by(interrupt)
                services.optimization_run_cancel(run=run, by=by)
                raise CommandError(f"{what}: run #{run.pk} is cancelled.", returncode=2) from None
        else:
            try:
                services.optimization_run_dispatch(run)
            except services.DispatchFailed as exc:
                raise CommandError(f"{exc} Use --inline to run it here.", returncode=2) from exc
            if options["no_wait"]:
                page = absolute_url(f"/admin/optimizer/optimizationrun/{run.pk}/change/")
                self.stdout.write(f"Sent to the workers; follow it at {page}")
                return
            try:
                run = self._follow(run, timeout=options["timeout"])
            except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (Terminated)
                # Left alone, the run would go on (or start whenever a worker comes) with no one following it.
                by, what = _stopped_by(interrupt)
                services.optimization_run_cancel(run=run, by=by)
                raise CommandError(f"{what}: run #{run.pk} is cancelled.", returncode=2) from None
        self._summarize(run)
        if options["report"]:
            try:
                with open(options["report"], "w", encoding="utf-8") as handle:
                    handle.write(run.report_html)
            except OSError as exc:
                raise CommandError(
                    f"Run #{run.pk} is stored, but its report could not be written to {options['report']}: "
                    f"{exc.strerror}",
                    returncode=3,
                ) from exc
        code = services.run_exit_code(run)
        if code:
            sys.exit(code)

    def _check_deployment(self, name: str) -> None:
        """Refuse a name no deployment has before the run is stored, rather than a run that skips its step."""
        if len(name) > OptimizationRun._meta.get_field("subject").max_length:
            raise CommandError(f"No model deployment has a name that long ({len(name)} characters).")
        if not django_apps.is_installed("apps.inference"):
            return
        from apps.inference.models import ModelDeployment

        if not ModelDeployment.objects.filter(name=name).exists():
            raise CommandError(f"No model deployment named {name!r} (admin: Model deployments).")

    def _progress(self, step: OptimizationStep, fraction: float, message: str) -> None:
        self.stderr.write(f"  [{step.name:<8} {fraction:4.0%}] {message}")

    def _follow(self, run: OptimizationRun, *, timeout: float) -> OptimizationRun:
        """Print each step's progress as the workers report it, until the run is finished."""
        deadline, shown, warned, attempts = time.monotonic() + timeout, {}, False, {}
        started = time.monotonic()
        while True:
            run.refresh_from_db()
            for step in run.steps.order_by("position"):
                if attempts.get(step.pk, 0) >= 1 and step.attempts > attempts[step.pk]:
                    # Its worker was lost and the step was sent again: its progress starts over. Not a step's
                    # first start (0 to 1): said "restarted (attempt 1)" for every step of a run on the workers.
                    self.stderr.write(
                        f"  [{step.name:<8}] restarted (attempt {step.attempts}): its worker was lost; "
                        "progress starts over"
                    )
                attempts[step.pk] = step.attempts
                state = (step.status, step.progress_message)
                if step.status != OptimizationStep.Status.PENDING and shown.get(step.pk) != state:
                    shown[step.pk] = state
                    self._progress(step, step.progress, step.progress_message)
            if run.is_finished:
                return run
            if not warned and not shown and time.monotonic() - started > 15:
                warned = True
                self.stderr.write("  No worker has started it yet: is one running (`make run` starts one)?")
            if time.monotonic() > deadline:
                raise CommandError(f"Run #{run.pk} did not finish within {timeout:.0f} s; it goes on on the workers.")
            time.sleep(0.5)

    def _summarize(self, run: OptimizationRun) -> None:
        for step in run.steps.order_by("position"):
            note = step.error or step.findings.get("skipped", "")
            self.stdout.write(f"{step.name:<9} {step.status:<10} {note}")
            for pattern in step.findings.get("patterns", []):
                timing = (
                    f"{pattern['wall_ms']:>8.3f} ms"
                    if pattern.get("wall_ms") is not None
                    else f"TIMED OUT at {pattern.get('timed_out_ms')} ms"
                )
                after = f" -> {pattern['wall_ms_after']:.3f} ms" if pattern.get("wall_ms_after") else ""
                if pattern.get("timed_out_ms_after"):
                    after = f" -> TIMED OUT at {pattern['timed_out_ms_after']} ms"
                # Measured again after --apply: the plan shown is the one after the change.
                remeasured = "indexes_used_after" in pattern
                seq_scans = pattern.get("seq_scans_after", pattern["seq_scans"]) if remeasured else pattern["seq_scans"]
                scans = f"  SEQ SCAN {', '.join(seq_scans)}" if seq_scans else ""
                used = ", ".join(pattern["indexes_used_after"] if remeasured else pattern["indexes_used"]) or "-"
                if remeasured:
                    used = f"after: {used}"
                self.stdout.write(f"  {pattern['pattern']:<26}{timing}{after}  {used}{scans}")
            if window := step.findings.get("scan_window"):
                # Indexes have a window of their own (20 h or more where runs allow: the unused-index advice's).
                index_window = step.findings.get("index_window", window)
                notes = [w["note"] for w in (window, index_window) if w.get("note")]
                notes = f" ({'; '.join(dict.fromkeys(notes))})" if notes else ""
                if index_window["text"] == window["text"]:
                    self.stdout.write(f"  table and index scans counted {window['text']}{notes}")
                else:
                    self.stdout.write(f"  table scans counted {window['text']}; index scans {index_window['text']}"
                                      f"{notes}")  # fmt: skip
            for namespace in step.findings.get("namespaces", []):
                rate = "-" if namespace["hit_rate"] is None else f"{namespace['hit_rate']:.3f}"
                self.stdout.write(
                    f"  {namespace['namespace']:<16} reads {namespace['reads']:>9,}  hit rate {rate:>6}  "
                    f"TTL {namespace['ttl_seconds']} s"
                )
            for summary in step.findings.get("services", []):
                plan = summary.get("plan")
                model = summary.get("forecast", {}).get("model", "no forecast")
                replicas = f"replicas {plan['min']}-{plan['peak']}" if plan else "no plan"
                self.stdout.write(
                    f"  {summary['service']:<20} {model:<20} {replicas}  cluster: {summary['apply_state']}"
                )
        for recommendation in run.recommendations.order_by("step", "id"):
            label = {"applied": "APPLIED  ", "failed": "FAILED   ", "applying": "APPLYING "}.get(
                recommendation.status, "RECOMMEND"
            )
            if recommendation.status == "applied" and recommendation.outcome.get("note") == "already present":
                label = "ALREADY PRESENT"  # nothing was made: another apply or session had made it
            self.stdout.write(f"{label} [{recommendation.step}] {recommendation.title}: {recommendation.reason}")
            if recommendation.change.get("sql"):
                self.stdout.write(f"          {recommendation.change['sql']}")
        for verdict in run.verdicts:
            state = {True: "MET    ", False: "MISSED ", None: "UNKNOWN"}[verdict["met"]]
            measured = "not measured" if verdict["measured"] is None else f"{verdict['measured']:.3f}"
            sign = "<=" if verdict["unit"] == "ms" else ">="
            self.stdout.write(
                f"{state} {verdict['target']}: {verdict['subject']}: {measured} {sign} {verdict['goal']:.3f}"
                f"{' ms' if verdict['unit'] == 'ms' else ''}"
            )
        self.stdout.write(
            f"Optimization run #{run.pk} {run.status}; report at {absolute_url(f'/optimizer/runs/{run.pk}/report/')}"
            + (f" ({run.error})" if run.error else "")
        )
