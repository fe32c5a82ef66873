"""A policy edit reaches the limiter of every process as it was committed, read replica or not."""

from __future__ import annotations

import pytest
from django.db import connections

from apps.ratelimits import selectors
from apps.ratelimits.models import RateLimitPolicy


@pytest.fixture(scope="module", autouse=True)
def replica_alias():
    """A `replica` alias (DATABASE_REPLICA_URL) on the test database, made before the test's database access is
    set up (module scope: pytest-django lets a test use only the aliases it knows of then)."""
    replica_settings = {**connections.settings["default"], "TEST": {"MIRROR": "default"}}  # as settings make it
    replica_settings["OPTIONS"] = {k: v for k, v in replica_settings["OPTIONS"].items() if k != "pool"}
    connections.settings["replica"] = replica_settings
    yield
    if "replica" in connections:
        connections["replica"].close()
        del connections["replica"]
    connections.settings.pop("replica")


@pytest.fixture
def lagging_replica():
    """The replica's reads held on a snapshot taken now: what a replica a moment behind the primary answers
    (a streaming replica's lag cannot be held still in a test)."""
    replica = connections["replica"]
    replica.ensure_connection()
    replica.connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    replica.connection.execute("SELECT count(*) FROM ratelimits_ratelimitpolicy")
    yield
    replica.connection.execute("ROLLBACK")


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])  # the edit commits, as an admin's does
def test_a_lowered_limit_is_loaded_from_the_primary_not_a_lagging_replica(lagging_replica):
    """The edit commits on the primary and bumps the policies' version; each process reloads and keeps what it
    read until the next edit (up to 5 minutes). Read from a replica a moment behind, that was the old limit."""
    policy = RateLimitPolicy.objects.create(scope="reports", requests=50)
    policy.requests = 5
    policy.save()
    selectors.policy_cache.forget()  # what the version bump does in every process
    assert selectors.active_policy("reports").requests == 5


def _another_process():
    """The policies as another process caches them: its own local entries, the shared version read on every get
    (a process checks it at most once a second; no wait here)."""
    from apps.core.local_cache import VersionedLocalCache

    cache = VersionedLocalCache(selectors.policy_cache.namespace, check_interval=0, ttl=300)
    return lambda: cache.get("all", lambda: {p.scope: p.effective_requests for p in RateLimitPolicy.objects.all()})


@pytest.mark.django_db
def test_an_admin_edit_reaches_another_process_once_committed(admin_client, django_capture_on_commit_callbacks):
    policies_there = _another_process()
    assert policies_there()["audit_logs"] == 30
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/ratelimits/ratelimitpolicy/", {
            "form-TOTAL_FORMS": 1, "form-INITIAL_FORMS": 1, "form-MIN_NUM_FORMS": 0, "form-MAX_NUM_FORMS": 1000,
            "_save": "Save", "form-0-id": policy.pk, "form-0-requests": 7, "form-0-enabled": "on",
        })  # fmt: skip
    assert response.status_code == 302
    assert policies_there()["audit_logs"] == 7


@pytest.mark.django_db
def test_an_adaptive_step_reaches_another_process_once_committed(django_capture_on_commit_callbacks):
    from apps.ratelimits import services

    policies_there = _another_process()
    assert policies_there()["audit_logs"] == 30
    with django_capture_on_commit_callbacks(execute=True):
        services.ratelimits_adapt(signals=services.LoadSignals(cpu_pct=95.0, p95_ms_by_service={}))
    assert policies_there()["audit_logs"] == 15
