import json as _json
import sys
import time

from celery import current_app
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.selectors import latest_finished_run
from apps.core.broker_errors import broker_failure, send_errors
from apps.core.links import absolute_url

# Exit statuses, for CI: 0 the run succeeded and met every gate (or, without --wait, was queued);
# GATE_MISSED when it finished otherwise (failed, cancelled, invalid, a gate missed), as `bench check`;
# RUN_DELETED when the run `bench run --wait` follows is deleted; NO_FINISHED_RUN when a plan `bench check`
# judges has no finished run (nothing to judge is no pass); 1 also for any other error, as Django's.
GATE_MISSED = 1
RUN_DELETED = 3
NO_FINISHED_RUN = 4
EXIT_STATUSES = (
    f"Exit status: 0 the run succeeded and met every gate (without --wait or --inline: it was queued); "
    f"{GATE_MISSED} it failed or missed a gate, or the command failed; {RUN_DELETED} the run followed with "
    f"--wait was deleted; {NO_FINISHED_RUN} (check) a plan has no finished run."
)


class Command(BaseCommand):
    help = (
        "Benchmarks: run a plan (on the benchmark workers, or here with --inline), or check its latest run. "
        + EXIT_STATUSES
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        run = commands.add_parser("run", help="Run a plan.", description=f"Run a plan. {EXIT_STATUSES}")
        run.add_argument("plan", help="The plan's name or id.")
        run.add_argument(
            "--wait", action="store_true",
            help=f"Follow the run until it finishes (exit status {RUN_DELETED} if it is deleted meanwhile).",
        )  # fmt: skip
        run.add_argument("--inline", action="store_true", help="Run Locust from this process, not on a worker.")
        run.add_argument(
            "--json", action="store_true",
            help="Print the run's results as JSON (without --wait: the queued run, {run, plan, status}).",
        )  # fmt: skip
        check = commands.add_parser(
            "check", help="Judge each plan's latest finished run (for CI gates).",
            description=f"Judge each plan's latest finished run (a run pending or running is not judged): exit "
            f"status 0 if each succeeded and met every gate, {GATE_MISSED} if one did not (or, with "
            f"--fail-on-regression, regressed, a regression someone acknowledged aside), else {NO_FINISHED_RUN} "
            f"if a plan has no finished run.",
        )  # fmt: skip
        check.add_argument("plan", nargs="*", help="Plans' names or ids (none: every enabled plan).")
        check.add_argument("--fail-on-regression", action="store_true")

    def _plan(self, key: str) -> BenchmarkPlan:
        # isdecimal, not isdigit: "²" is a digit to isdigit and no number to int (a ValueError traceback).
        plan = BenchmarkPlan.objects.filter(pk=int(key)).first() if key.isdecimal() else None
        plan = plan or BenchmarkPlan.objects.filter(name=key).first()
        if plan is None:
            raise CommandError(f"No benchmark plan {key!r}.")
        return plan

    def handle(self, *args, action: str, plan: str | list[str], **options) -> None:
        if action == "run":
            self._run(self._plan(plan), **options)
            return
        plans = [self._plan(key) for key in plan] if plan else list(BenchmarkPlan.objects.filter(enabled=True))
        if not plans:
            raise CommandError("No enabled benchmark plan to check.", returncode=NO_FINISHED_RUN)
        outcomes = [self._check(each, **options) for each in plans]
        if GATE_MISSED in outcomes:
            sys.exit(GATE_MISSED)
        if NO_FINISHED_RUN in outcomes:
            unjudged = [str(each) for each, code in zip(plans, outcomes, strict=True) if code]
            verb = "has" if len(unjudged) == 1 else "have"
            raise CommandError(f"{', '.join(unjudged)} {verb} no finished run.", returncode=NO_FINISHED_RUN)

    def _run(self, plan: BenchmarkPlan, *, wait: bool, inline: bool, json: bool, **options) -> None:
        try:
            run = services.benchmark_run_create(plan=plan, requested_by="manage.py bench")
        except ValidationError as invalid:
            raise CommandError(f"Fix the plan first: {'; '.join(invalid.messages)}") from invalid
        except services.RunInProgress as busy:
            raise CommandError(f"Not started: {busy}.") from busy
        if inline:
            try:
                run = services.benchmark_run_execute(run_id=run.pk)
            except services.TargetBusy as busy:
                services.benchmark_run_cancel(run=run)
                raise CommandError(f"Not started: {busy}.") from busy
        else:
            try:
                services.benchmark_run_dispatch(run)
            except send_errors(current_app) as exc:
                services.benchmark_run_cancel(run=run)
                raise CommandError(f"Run #{run.pk} was not sent: {broker_failure(exc)}.") from exc
            self.stderr.write(f"Run #{run.pk} sent to the benchmark workers.")
            if not wait:
                if json:
                    # A script's only handle on the run it queued: its id, to follow or check later.
                    self.stdout.write(_json.dumps({"run": run.pk, "plan": plan.name, "status": run.status}))
                return
            shown = ""
            while not run.is_finished:
                time.sleep(1)
                try:
                    run.refresh_from_db()
                except BenchmarkRun.DoesNotExist:
                    raise CommandError(
                        f"Run #{run.pk} was deleted while waiting for it (its plan deleted?): it has no result.",
                        returncode=RUN_DELETED,
                    ) from None
                if run.progress_message != shown:
                    shown = run.progress_message
                    self.stderr.write(f"  {run.status} {run.progress:4.0%} {shown}")
        self._print(run, as_json=json)
        if _missed(run):
            # A CI job that runs `bench run --wait` is to fail with the run, as one running `bench check` does.
            sys.exit(GATE_MISSED)

    def _print(self, run: BenchmarkRun, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(_json.dumps({"run": run.pk, "status": run.status, "passed": run.passed,
                                          "summary": run.summary, "verdicts": run.verdicts}))  # fmt: skip
            return
        summary = run.summary
        p95 = summary.get("p95_ms")
        latency = f"p95 {p95} ms" if p95 is not None else "no successful request"
        self.stdout.write(
            f"Run #{run.pk} {run.status}: {summary.get('requests', 0)} requests, {summary.get('rps', 0)} req/s, "
            f"{latency}, errors {summary.get('error_rate_pct', 0)}%"
        )
        for verdict in run.verdicts:
            self.stdout.write(f"  {'PASS' if verdict['passed'] else 'FAIL'} {verdict['gate']}: {verdict['measured']} "
                              f"(limit {verdict['limit']})")  # fmt: skip
        if run.error:
            self.stdout.write(f"  {run.error}")
        self.stdout.write(f"Report: {absolute_url(f'/benchmarks/runs/{run.pk}/report/')}")

    def _check(self, plan: BenchmarkPlan, *, fail_on_regression: bool, **options) -> int:
        """Judge the plan's latest finished run: its exit status (0, GATE_MISSED or NO_FINISHED_RUN)."""
        run = latest_finished_run(plan)
        if run is None:
            self.stderr.write(f"{plan} has no finished run.")
            return NO_FINISHED_RUN
        self.stdout.write(f"{plan}:")
        self._print(run, as_json=False)
        standing = []
        for regression in run.regressions.all():
            if regression.acknowledged_at is None:
                standing.append(regression)
                self.stdout.write(f"REGRESSION {regression}")
            else:  # someone looked at it and accepted it: reported, no longer a reason to fail
                self.stdout.write(f"REGRESSION {regression}, acknowledged")
        return GATE_MISSED if _missed(run) or (fail_on_regression and standing) else 0


def _missed(run: BenchmarkRun) -> bool:
    return run.status != BenchmarkRun.Status.SUCCEEDED or not run.passed
