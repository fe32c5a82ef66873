"""The brief's Python API over the same services:
`MedicalAIBenchmarkSuite().load_test(endpoint, concurrent_users=10, duration=300)`, `.stress_test(...)`,
`PerformanceRegressionDetector().generate_performance_report(results, "performance_report.html")`."""

from __future__ import annotations

from pathlib import Path

from django.db import IntegrityError, transaction

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.report import render_plan_report
from apps.services.models import Service


class MedicalAIBenchmarkSuite:
    """Runs plans inline (Locust as a subprocess of this process) and returns the stored runs."""

    def __init__(self, service: str | Service = "clinical-api"):
        self.service = service if isinstance(service, Service) else Service.objects.get(slug=service)

    def _plan(self, name: str, endpoint: str, **fields) -> BenchmarkPlan:
        """The plan of that name, created or updated, validated before it is saved: saved first, a refused
        value (20,000 users, a path without its /) stayed in the plan, overwriting a valid one of the same
        name, and a number past the column's range was a database error instead of a field error.

        Two callers creating the same plan at once both found none and both inserted it: the second's
        unique violation was an IntegrityError. The one that loses the insert updates the plan the other
        created, as it would had it come second."""
        for attempt in range(2):
            try:
                return self._plan_saved(name, endpoint, **fields)
            except IntegrityError:
                if attempt or not BenchmarkPlan.objects.filter(name=name).exists():
                    raise
        raise AssertionError("unreachable")

    @transaction.atomic
    def _plan_saved(self, name: str, endpoint: str, **fields) -> BenchmarkPlan:
        plan = BenchmarkPlan.objects.select_for_update().filter(name=name).first() or BenchmarkPlan(name=name)
        plan.service = self.service
        plan.requests = [{"name": endpoint, "method": "GET", "path": endpoint, "weight": 1}]
        for attribute, value in fields.items():
            setattr(plan, attribute, value)
        # Unique names are the database's to hold (a check by a read passes both of two creates at once).
        plan.full_clean(validate_unique=False)
        plan.save()
        return plan

    def _run(self, plan: BenchmarkPlan) -> BenchmarkRun:
        """Raises services.TargetBusy, the run cancelled, while another run loads the same target."""
        run = services.benchmark_run_create(plan=plan, requested_by="suite")
        try:
            return services.benchmark_run_execute(run_id=run.pk)
        except services.TargetBusy:
            services.benchmark_run_cancel(run=run)
            raise

    def load_test(self, endpoint: str, concurrent_users: int = 10, duration: int = 300) -> BenchmarkRun:
        plan = self._plan(f"load {endpoint} x{concurrent_users}", endpoint, kind=BenchmarkPlan.Kind.LOAD,
                          users=concurrent_users, spawn_rate=concurrent_users, duration_seconds=duration)  # fmt: skip
        return self._run(plan)

    def stress_test(self, endpoint: str, max_concurrent_users: int = 25, step_users: int = 5,
                    step_seconds: int = 20) -> BenchmarkRun:  # fmt: skip
        plan = self._plan(f"stress {endpoint} to {max_concurrent_users}", endpoint, kind=BenchmarkPlan.Kind.STRESS,
                          users=step_users, max_users=max_concurrent_users, step_users=step_users,
                          step_seconds=step_seconds)  # fmt: skip
        return self._run(plan)


class PerformanceRegressionDetector:
    """The history (runs, regressions) of the plans behind some runs, as one HTML report."""

    def generate_performance_report(self, results: list[BenchmarkRun] | BenchmarkRun, path: str) -> Path:
        runs = results if isinstance(results, list) else [results]
        plans = {run.plan_id: run.plan for run in runs}
        html = "\n".join(render_plan_report(plan) for plan in plans.values())
        target = Path(path)
        target.write_text(html, encoding="utf-8")
        return target
