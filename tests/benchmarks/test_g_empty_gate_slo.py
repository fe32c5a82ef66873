"""A plan with no gate of its own is judged by its service's SLO, throughput included."""

import pytest

from apps.benchmarks import analysis
from apps.benchmarks.models import BenchmarkPlan
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def _plan(**gates):
    service, _ = service_ensure(slug="slo-target", name="SLO target", base_url="http://127.0.0.1:9")
    service.slo_min_rps = 80.0
    service.save(update_fields=["slo_min_rps"])
    return BenchmarkPlan.objects.create(name="empty gate", service=service, **gates)


def test_an_empty_throughput_gate_is_the_services_slo_throughput():
    gates = _plan().gates()
    assert gates["min_rps"] == 80.0
    assert gates["p95_ms"] == BenchmarkPlan.objects.get().service.slo_p95_ms


def test_a_run_below_the_slo_throughput_fails_a_plan_with_no_gates_of_its_own():
    summary = {"p95_ms": 1.0, "p99_ms": 1.0, "avg_ms": 1.0, "error_rate_pct": 0.0, "rps": 5.0}
    verdicts = {v["gate"]: v["passed"] for v in analysis.verdicts(summary, _plan().gates())}
    assert verdicts["min_rps"] is False


def test_the_plans_own_throughput_gate_still_wins_even_at_zero():
    assert _plan(gate_min_rps=0.0).gates()["min_rps"] == 0.0
