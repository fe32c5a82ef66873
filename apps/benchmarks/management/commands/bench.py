import json as _json
import sys
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.exceptions import OperationalError

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun

# Exit statuses, for CI: 0 the run succeeded and met every gate (or, without --wait, was queued);
# GATE_MISSED when it finished otherwise (failed, cancelled, invalid, a gate missed), as `bench check`;
# RUN_DELETED when the run `bench run --wait` follows is deleted; 1 also for any other error, as Django's.
GATE_MISSED = 1
RUN_DELETED = 3
EXIT_STATUSES = (
    f"Exit status: 0 the run succeeded and met every gate (without --wait or --inline: it was queued); "
    f"{GATE_MISSED} it failed or missed a gate, or the command failed; {RUN_DELETED} the run followed with "
    f"--wait was deleted."
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
            "check", help="Judge the plan's latest finished run (for CI gates).",
            description=f"Judge the plan's latest finished run: exit status 0 if it succeeded and met every gate, "
            f"{GATE_MISSED} otherwise (or, with --fail-on-regression, if it regressed).",
        )  # fmt: skip
        check.add_argument("plan")
        check.add_argument("--fail-on-regression", action="store_true")

    def _plan(self, key: str) -> BenchmarkPlan:
        # isdecimal, not isdigit: "²" is a digit to isdigit and no number to int (a ValueError traceback).
        plan = BenchmarkPlan.objects.filter(pk=int(key)).first() if key.isdecimal() else None
        plan = plan or BenchmarkPlan.objects.filter(name=key).first()
        if plan is None:
            raise CommandError(f"No benchmark plan {key!r}.")
        return plan

    def handle(self, *args, action: str, plan: str, **options) -> None:
        plan_row = self._plan(plan)
        if action == "run":
            self._run(plan_row, **options)
        else:
            self._check(plan_row, **options)

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
            except OperationalError as exc:
                services.benchmark_run_cancel(run=run)
                raise CommandError(f"The broker is unreachable ({exc}); run #{run.pk} was not sent.") from exc
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
        self.stdout.write(f"Report: /benchmarks/runs/{run.pk}/report/")

    def _check(self, plan: BenchmarkPlan, *, fail_on_regression: bool, **options) -> None:
        run = plan.runs.exclude(status__in=[BenchmarkRun.Status.PENDING, BenchmarkRun.Status.RUNNING]).first()
        if run is None:
            raise CommandError(f"{plan} has no finished run.")
        self._print(run, as_json=False)
        regressions = list(run.regressions.all())
        for regression in regressions:
            self.stdout.write(f"REGRESSION {regression}")
        if _missed(run) or (fail_on_regression and regressions):
            sys.exit(GATE_MISSED)


def _missed(run: BenchmarkRun) -> bool:
    return run.status != BenchmarkRun.Status.SUCCEEDED or not run.passed
