"""Per-scope (per-patient) generation rows: started at a time-based number, pruned once idle."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.caching import services, tasks
from apps.caching.models import SCOPE_GENERATION_IDLE_SECONDS, CachePolicy, CacheScopeGeneration
from apps.caching.stack import GENERATION_KEY_MS, POLICY_SCOPE
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


def _write(stack, database: dict, scope: str, **changes) -> None:
    """A clinical write: the data and the scope's bump commit together."""
    with transaction.atomic():
        database.update(changes)
        stack.invalidate_scopes([scope])


def test_a_scope_whose_row_went_and_is_written_again_does_not_make_older_entries_valid(stack):
    """A scope's row restarted at generation 1 once it was gone: the card stored under generation 1 (after the
    first write) was valid again after the next write, in Redis (its generation key still said 1, and a publish
    only raises it) and in L3, so every process served the card from before the allergy."""
    database = {"allergies": [], "weight_kg": 70}
    _write(stack, database, "patient:31", weight_kg=71)
    card = ("patient_data", ["card", 31])
    assert stack.get_or_load(*card, lambda: dict(database), scope="patient:31") == database  # stored: L1, L2, L3
    # Days without a write to the patient: the row goes (as the hourly prune takes it).
    assert CacheScopeGeneration.objects.filter(scope=stack.scope_key("patient:31")).delete()[0] == 1

    _write(stack, database, "patient:31", allergies=["penicillin"])
    for other_process in (make_stack(), make_stack(redis_url="redis://127.0.0.1:1/0")):  # L2, then L3 alone
        assert other_process.get_or_load(*card, lambda: dict(database), scope="patient:31") == {
            "allergies": ["penicillin"],
            "weight_kg": 71,
        }


def test_a_new_scope_row_starts_past_every_generation_a_row_of_it_had():
    stack = make_stack()
    before = int(timezone.now().timestamp() * 1_000_000)
    _write(stack, {}, "patient:32")
    generation = CacheScopeGeneration.objects.get(scope=stack.scope_key("patient:32")).generation
    assert generation >= before
    _write(stack, {}, "patient:32")
    assert CacheScopeGeneration.objects.get(scope=stack.scope_key("patient:32")).generation > generation


def _age(scope_key: str, hours: float) -> None:
    CacheScopeGeneration.objects.filter(scope=scope_key).update(updated_at=timezone.now() - timedelta(hours=hours))


def test_rows_of_scopes_idle_longer_than_any_entry_lives_are_pruned_from_beat(stack):
    """One row per patient ever written stayed for ever."""
    for n in (1, 2, 3):
        _write(stack, {}, f"patient:{n}")
    stack.invalidate_scopes([POLICY_SCOPE])  # the policies' row is never pruned
    idle, recent, policies = stack.scope_key("patient:1"), stack.scope_key("patient:2"), POLICY_SCOPE
    _age(idle, 49)
    _age(recent, 47)  # an entry stored since its last write may still be alive: kept
    _age(policies, 24 * 30)

    assert tasks.prune_scope_generations() == 1  # the beat task's body
    assert set(CacheScopeGeneration.objects.values_list("scope", flat=True)) == {
        recent,
        policies,
        stack.scope_key("patient:3"),
    }
    assert tasks.prune_scope_generations() == 0


@pytest.mark.django_db(transaction=False)  # the migration's rows, before a transactional test flushes them
def test_the_prune_runs_hourly_from_beat():
    schedule = PeriodicTask.objects.get(task="caching.prune_scope_generations")
    assert schedule.enabled and (schedule.interval.every, schedule.interval.period) == (1, "hours")


def test_the_prune_waits_twice_the_longest_life_of_an_entry(stack):
    """48 h is twice the 24 h admin allows TTL and stale window together; a policy given longer outside admin's
    validation (a raw update) is waited for."""
    assert SCOPE_GENERATION_IDLE_SECONDS * 1000 == GENERATION_KEY_MS  # the database as Redis
    services.cache_policy_ensure(namespace="audit_logs")
    CachePolicy.objects.filter(namespace="audit_logs").update(ttl_seconds=30 * 3600, stale_while_revalidate_seconds=0)
    _write(stack, {}, "patient:4")
    _age(stack.scope_key("patient:4"), 59)
    assert services.cache_scope_generations_prune() == 0
    _age(stack.scope_key("patient:4"), 61)
    assert services.cache_scope_generations_prune() == 1


def test_the_prune_deletes_in_batches(stack):
    for n in range(5):
        _write(stack, {}, f"patient:{n}")
    CacheScopeGeneration.objects.update(updated_at=timezone.now() - timedelta(days=3))
    assert services.cache_scope_generations_prune(batch_size=2) == 5
    assert not CacheScopeGeneration.objects.exists()
