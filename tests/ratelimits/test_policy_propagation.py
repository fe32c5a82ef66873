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
