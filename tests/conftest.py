"""Shared fixtures. The suite runs on the real PostgreSQL, Redis and RabbitMQ (see scripts/test.sh)."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts.services import api_client_create
from apps.metrics.recorder import recorder
from tests.helpers import (
    PROCESS_LOGS,
    WORKER_QUEUES,
    broker_connections_dropped,
    broker_vhost_deleted,
    celery_worker,
    log_tail,
    queue_consumers,
    wait_for,
)

# This process's tests flush request timings themselves (settings.METRICS_BACKGROUND_FLUSH); the
# servers they start keep the background flush. Nor does a request's thread flush them when
# METRICS_FLUSH_SECONDS have passed: that wrote every pending rollup inside whichever request came 5 s
# after the last flush, and a test counting a page's queries saw them now and then (a changelist's 5
# queries read as 49 on a slow run; tests/metrics/test_admin_alert_rules.py had fixed it for itself).
recorder.background = False
recorder.flush_interval = float("inf")

STARTED = datetime.now(UTC)  # before the test database is set up (and, new, migrated)

# A forked child (multiprocessing's fork: `load_synthetic --workers`) runs kombu's after-fork hook, which closes every
# pooled broker connection it inherited, on the socket it shares with this process: RabbitMQ closed this process's
# connection too, and the next purge (which, unlike a send, does not retry) raised ConnectionResetError, a CI flake
# of the next worker test's setup. The pools are dropped before each fork instead (made again on next use).
os.register_at_fork(before=broker_connections_dropped)


@pytest.fixture(scope="session", autouse=True)
def _close_the_audit_writers_connection(django_db_setup, django_db_blocker):
    """The audit writer keeps a connection of its own open; PostgreSQL will not drop the test database
    while it is."""
    yield
    from apps.audit.writer import writer

    writer.close()


@pytest.fixture(scope="session", autouse=True)
def _quick_password_hashes():
    """Test users' passwords are hashed with the product's PBKDF2 at few iterations (tests/hashers.py): at the
    default 1,000,000 each user a test made cost the CI up to 0.8 s, well over a thousand times a run. It
    replaces PBKDF2 in the list (an algorithm maps to one hasher), the other hashers stay."""
    from django.conf import settings
    from django.test import override_settings

    default = "django.contrib.auth.hashers.PBKDF2PasswordHasher"
    hashers = ["tests.hashers.QuickPBKDF2PasswordHasher" if h == default else h for h in settings.PASSWORD_HASHERS]
    assert hashers[0] == "tests.hashers.QuickPBKDF2PasswordHasher", settings.PASSWORD_HASHERS
    with override_settings(PASSWORD_HASHERS=hashers):
        yield


@pytest.fixture(scope="session", autouse=True)
def _teardown_flush_truncates_held_tables():
    """A transactional test's teardown flush truncates the tables holding rows, not all of them (tests/flush.py):
    the database after it is as empty, and about 0.6 s of each such test's teardown is gone."""
    from tests.flush import teardown_flush_of_held_tables

    with teardown_flush_of_held_tables():
        yield


@pytest.fixture(scope="session", autouse=True)
def _seeded_rows_under_reuse_db(django_db_setup, django_db_blocker, django_db_keepdb):
    """Under --reuse-db each run starts from the rows the migrations seeded, which the last run's flushes emptied
    (tests/reuse_db.py)."""
    if not django_db_keepdb:
        return
    from tests.reuse_db import seeded_rows_kept

    with django_db_blocker.unblock():
        seeded_rows_kept(STARTED)


@pytest.fixture(scope="session", autouse=True)
def _no_token_rate_points_from_batcher_threads():
    """The batchers' threads outlive the test that started them and commit `inference.tokens_per_s`
    points on their own connection, outside any test's transaction, at whatever minute their batch ends:
    a later test reading a series window found one (a CI failure). Tests of the meter install their own."""
    from apps.inference import serving

    serving.token_meter.interval = float("inf")


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (Redis db 15 under `make test`) and no request timings
    pending from the test before."""
    cache.clear()
    recorder.discard()
    yield
    cache.clear()


def periodic_refreshes_brought_up_to_date() -> None:
    """Every per-process refresh a request may find due, done now, so a query window opened next counts the view's
    queries alone. Due by the clock, not by the view: on a loaded machine the window opened a second or more after
    the test's first request, and the cache stack's once-a-second poll (its draw from the restore sequence), with
    now and then its counters' flush (3 statements a namespace and tier) or a generation Redis kept, fell in it."""
    from apps.caching.stack import default_stack

    recorder.flush()  # earlier tests' request timings (no request thread flushes them here either)
    default_stack().tick(force=True)  # the poll, its publish and lock retries, the counters' flush


@pytest.fixture
def query_budget(db, django_assert_max_num_queries):
    """django_assert_max_num_queries, opened with every periodic refresh up to date (see
    periodic_refreshes_brought_up_to_date): what it counts is the request's own cost. Never a raised budget
    instead, which would hide an N+1."""

    @contextmanager
    def window(num: int, *args, **kwargs):
        periodic_refreshes_brought_up_to_date()
        with django_assert_max_num_queries(num, *args, **kwargs) as captured:
            yield captured

    return window


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def issue_token(db) -> Callable[..., str]:
    """Create a machine client and return its bearer token."""
    counter = iter(range(1, 10_000))

    def issue(*scopes: str, name: str | None = None, **fields) -> str:
        return api_client_create(
            name=name or f"client-{next(counter)}", scopes=list(scopes) or ["patient:read"], **fields
        ).token

    return issue


@pytest.fixture
def staff_user(django_user_model):
    """Staff with no role: signed in to admin, but holding no model permission."""
    return django_user_model.objects.create_user("operator", "operator@example.org", "pw-operator-1", is_staff=True)


@pytest.fixture
def staff(django_user_model):
    """Makes staff users in the given roles' groups: `staff("op", OPERATORS)`; no group, no role."""
    from django.contrib.auth.models import Group

    def make(username: str, *groups: str):
        user = django_user_model.objects.create_user(username, f"{username}@example.org", "pw-Long-enough-1",
                                                     is_staff=True)  # fmt: skip
        user.groups.set(Group.objects.filter(name__in=groups))
        return user

    return make


@pytest.fixture
def operator_user(django_user_model):
    """A member of the Operators role: sees the control plane and edits its policies (deletes nothing)."""
    from django.contrib.auth.models import Group

    from apps.accounts.roles import OPERATORS

    user = django_user_model.objects.create_user("ops", "ops@example.org", "pw-operator-1", is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATORS))
    return user


@pytest.fixture
def staff_api(api, operator_user) -> APIClient:
    api.force_login(operator_user)
    return api


@pytest.fixture(autouse=True)
def _load_failures_forgotten():
    """A model that failed to load is remembered for a while (apps.inference.serving): not into the next test."""
    yield
    from apps.inference import serving

    serving._failures.clear()


@pytest.fixture(autouse=True)
def _fresh_cache_stack():
    """The process's cache stack, rate-limit policies and API clients are forgotten between tests, and the
    metrics' database breaker closed (a test's simulated outage must not skip the next test's figures).

    The clients too: cache.clear() removes their shared version, and a process that read it less than a second
    before kept using it; the next read of it (a second on, whichever request of the test that fell in) found a
    new version and read the token's client again, one query more than a query budget counted (a CI flake)."""
    from apps.accounts.services import api_clients_cache
    from apps.caching.stack import default_stack
    from apps.core.breaker import metrics_database_breaker
    from apps.ratelimits.selectors import policy_cache

    default_stack().clear_local()
    policy_cache.forget()
    api_clients_cache.forget()
    metrics_database_breaker.reset()
    yield
    default_stack().clear_local()
    policy_cache.forget()
    api_clients_cache.forget()
    metrics_database_breaker.reset()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test's report carries the tail of each log its processes wrote (tests.helpers.log_in_report)."""
    report = yield
    if report.failed:
        for title, path in item.stash.get(PROCESS_LOGS, []):
            report.sections.append((f"{title}: the end of {path}", log_tail(path)))
    return report


@pytest.fixture
def worker(request):
    """A real Celery worker process on the test database and the real broker, on the default and inference queues
    (optimizer steps and forecasts go to inference); yields its name once it consumes both, so a worker that fails to
    start fails the test's setup with its log, and a task sent then is its to take. Refused while another process
    (an earlier test's stray worker, on another database) still consumes them: it would take the test's tasks. The
    worker's log ends up in the report of a test that fails (tests.helpers.celery_worker)."""
    counted = queue_consumers(WORKER_QUEUES) is not None  # by RabbitMQ (the suite's broker), not a filesystem one
    if counted:  # a warm shutdown still under way ends first
        wait_for(lambda: not any(queue_consumers(WORKER_QUEUES).values()), 60, "an earlier test's worker to stop")
    with celery_worker(request, WORKER_QUEUES) as (name, process, log):
        if counted:
            wait_for(lambda: process.poll() is not None or all(queue_consumers(WORKER_QUEUES).values()), 120,
                     f"worker {name} to consume {', '.join(WORKER_QUEUES)}", log)  # fmt: skip
        assert process.poll() is None, f"worker {name} exited ({process.returncode}):\n{log_tail(log)}"
        yield name


@pytest.fixture
def broker_emptied():
    """A message the test sent and no worker took must not reach a later test's worker: the queues purged before
    and after (listed before `worker`, after its worker stopped too)."""
    from controlplane.celery import app

    app.control.purge()
    yield
    app.control.purge()


@pytest.fixture
def vhost_deleted():
    """This environment's RabbitMQ vhost (only its own, never another's) deleted for the test, created again after:
    the broker refusing every connection (NotAllowed), as when a vhost is down or credentials were rotated. Its value
    brings the vhost back before the test ends. The process's broker connections to the old vhost are dropped after
    (tests.helpers.broker_vhost_deleted)."""
    with broker_vhost_deleted() as restore:
        yield restore
