"""A policy saved from a copy loaded before a clear (the admin's form, open while another admin clicks *Clear*)
must not write the old generation back: the entries the clear orphaned would be valid again in every tier."""

from __future__ import annotations

import pytest

from apps.caching import services
from apps.caching.models import CachePolicy
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _policy():
    """The seeded row (a transactional test's flush empties the table)."""
    services.cache_policy_ensure(namespace="ai_inference")


def _generation(namespace: str) -> int:
    return CachePolicy.objects.get(namespace=namespace).generation


def test_saving_a_copy_loaded_before_a_clear_keeps_the_clear():
    loaded = CachePolicy.objects.get(namespace="ai_inference")  # the admin's change form
    services.cache_namespace_clear(namespace="ai_inference")  # another admin clears it meanwhile
    cleared = _generation("ai_inference")
    assert cleared > loaded.generation

    loaded.l1_max_entries = 10_002
    loaded.full_clean()
    loaded.save()

    assert _generation("ai_inference") == cleared
    assert loaded.generation == cleared  # the instance is told the row's generation
    assert CachePolicy.objects.get(namespace="ai_inference").l1_max_entries == 10_002


def test_an_orphaning_edit_of_a_stale_copy_moves_on_from_the_rows_generation():
    loaded = CachePolicy.objects.get(namespace="ai_inference")
    services.cache_namespace_clear(namespace="ai_inference")
    cleared = _generation("ai_inference")

    loaded.ttl_seconds = max(1, loaded.ttl_seconds // 2)  # shorter: entries stored under the longer TTL go
    loaded.save()

    assert _generation("ai_inference") > cleared


def test_entries_a_clear_orphaned_stay_orphaned_after_the_stale_save():
    stack = make_stack()
    assert stack.get_or_load("ai_inference", ["q"], lambda: {"answer": "wrong"}) == {"answer": "wrong"}
    loaded = CachePolicy.objects.get(namespace="ai_inference")
    services.cache_namespace_clear(namespace="ai_inference")
    loaded.description = "edited meanwhile"
    loaded.save()

    other_process = make_stack()
    assert other_process.get_or_load("ai_inference", ["q"], lambda: {"answer": "right"}) == {"answer": "right"}


def test_a_save_with_update_fields_naming_the_generation_does_not_write_it():
    loaded = CachePolicy.objects.get(namespace="ai_inference")
    services.cache_namespace_clear(namespace="ai_inference")
    cleared = _generation("ai_inference")
    loaded.save(update_fields=["generation", "description"])
    assert _generation("ai_inference") == cleared


def test_a_new_policy_still_starts_at_the_time_in_microseconds():
    policy = CachePolicy(namespace="d-new-namespace", ttl_seconds=60)
    policy.save()
    assert policy.generation > 10**15
    assert _generation("d-new-namespace") == policy.generation
