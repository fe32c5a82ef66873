"""Clearing a namespace: the generation bump in the admin's transaction, the L3 rows deleted after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection, transaction

from apps.caching import services, tasks
from apps.caching.models import CacheEntry, CachePolicy
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deletes_time_out() -> Iterator[None]:
    """A real trigger that cancels any delete of L3 rows, as the worker's (or the statement's) timeout cancels
    the delete of a namespace of millions of rows."""
    if connection.vendor != "postgresql":
        pytest.skip("a PL/pgSQL trigger")
    table = CacheEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            """CREATE FUNCTION test_cancel_entry_delete() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = 'query_canceled';
            END $$"""
        )
        cursor.execute(
            f"CREATE TRIGGER test_cancel_entry_delete BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION test_cancel_entry_delete()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS test_cancel_entry_delete ON {table}")
        cursor.execute("DROP FUNCTION IF EXISTS test_cancel_entry_delete()")


def _fill(stack, namespace: str, count: int) -> None:
    for n in range(count):
        stack.get_or_load(namespace, ["summary", n], lambda n=n: {"summary": f"wrong {n}"})


def test_a_clear_whose_delete_of_the_l3_rows_times_out_still_clears(stack, deletes_time_out):
    """The rows were deleted inside the admin's transaction: on a large namespace the delete ran past the timeout
    and the whole clear rolled back, the wrong model outputs still served. The bump alone is the clear."""
    _fill(stack, "ai_inference", 3)
    generation = CachePolicy.objects.get(namespace="ai_inference").generation

    services.cache_namespace_clear(namespace="ai_inference")  # its delete, run on commit (conftest), is cancelled

    assert CachePolicy.objects.get(namespace="ai_inference").generation > generation
    assert CacheEntry.objects.filter(namespace="ai_inference").count() == 3  # left for the task (or the prune)
    other_process = make_stack()
    assert other_process.get_or_load("ai_inference", ["summary", 1], lambda: {"summary": "right"}) == {
        "summary": "right"
    }


def test_the_l3_rows_of_a_cleared_namespace_go_after_the_commit_in_batches(stack):
    _fill(stack, "ai_inference", 5)
    _fill(stack, "audit_logs", 2)

    with transaction.atomic():
        services.cache_namespace_clear(namespace="ai_inference")
        assert CacheEntry.objects.filter(namespace="ai_inference").count() == 5  # not in the clear's transaction
    assert not CacheEntry.objects.filter(namespace="ai_inference").exists()
    assert CacheEntry.objects.filter(namespace="audit_logs").count() == 2

    _fill(stack, "audit_logs", 5)
    assert services.cache_namespace_entries_delete(namespace="audit_logs", batch_size=2) == 5
    assert tasks.delete_namespace_entries("audit_logs") == 0


def test_a_clear_rolled_back_deletes_nothing(stack):
    _fill(stack, "ai_inference", 2)
    generation = CachePolicy.objects.get(namespace="ai_inference").generation
    with pytest.raises(RuntimeError), transaction.atomic():
        services.cache_namespace_clear(namespace="ai_inference")
        raise RuntimeError("the admin's request failed later")
    assert CachePolicy.objects.get(namespace="ai_inference").generation == generation
    assert CacheEntry.objects.filter(namespace="ai_inference").count() == 2


def test_a_clear_while_the_broker_is_away_still_clears(stack, monkeypatch, caplog):
    """The delete is sent after the commit: a broker that refuses it must not turn a done clear into an error."""
    from kombu.exceptions import OperationalError

    def broker_away(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    _fill(stack, "ai_inference", 2)
    generation = CachePolicy.objects.get(namespace="ai_inference").generation
    monkeypatch.setattr(tasks.delete_namespace_entries, "apply_async", broker_away)  # nothing here stops RabbitMQ
    services.cache_namespace_clear(namespace="ai_inference")
    assert CachePolicy.objects.get(namespace="ai_inference").generation > generation
    assert "left to the prune" in caplog.text
