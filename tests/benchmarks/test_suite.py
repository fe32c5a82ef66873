"""The brief's Python API (apps.benchmarks.suite) validates a plan before it stores it. No run starts in
these tests: each plan is refused before Locust would be."""

import pytest
from django.core.exceptions import ValidationError

from apps.benchmarks.models import MAX_USERS, BenchmarkPlan
from apps.benchmarks.suite import MedicalAIBenchmarkSuite
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def suite():
    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    return MedicalAIBenchmarkSuite(service)


def test_a_refused_load_test_stores_no_plan(suite):
    """The plan was saved, then validated: 20,000 users and a path without its / stayed in the database,
    a plan every nightly run would skip and every admin form would refuse to save unchanged."""
    with pytest.raises(ValidationError) as refused:
        suite.load_test("card", concurrent_users=MAX_USERS * 2)
    assert {"users", "requests"} <= set(refused.value.message_dict)
    assert not BenchmarkPlan.objects.exists()


def test_a_number_past_the_columns_range_is_a_field_error_not_a_database_error(suite):
    with pytest.raises(ValidationError) as refused:
        suite.load_test("/card", concurrent_users=10**10)
    assert "users" in refused.value.message_dict
    assert not BenchmarkPlan.objects.exists()


def test_a_refused_stress_test_leaves_the_valid_plan_of_its_name_as_it_was(suite):
    kept = BenchmarkPlan.objects.create(
        name="stress /card to 25", service=suite.service, kind="stress", users=5, max_users=25, step_users=5,
        step_seconds=20, requests=[{"name": "/card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        suite.stress_test("/card", max_concurrent_users=25, step_users=5, step_seconds=1)
    assert "step_seconds" in refused.value.message_dict
    kept.refresh_from_db()
    assert kept.step_seconds == 20
    assert kept.runs.count() == 0
