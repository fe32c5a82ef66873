"""A scope's generation key in Redis that is not a number (an operator's SET, a corrupted key): the readers and
the pollers take it for unset, replace it with the database's generation, and serve nothing stale."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.caching.models import CacheScopeGeneration
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)

CARD = ("patient_data", ["card", 61])
SCOPE = "patient:61"
NOT_A_NUMBER = b"MRN-0061 was here"  # whatever was written: it may hold an identifier, so it is never logged


def _write(stack, database: dict, **changes) -> None:
    with transaction.atomic():
        database.update(changes)
        stack.invalidate_scopes([SCOPE])


def _generation_key(stack) -> str:
    stack.tick(force=True)  # the server's run id, part of the key
    return stack._l2_key("g", stack.scope_key(SCOPE))


def test_a_reader_of_a_scope_whose_generation_key_is_not_a_number_is_served_and_the_key_repaired(stack, caplog):
    """The value was parsed outside the Redis call: every read of the patient's card raised ValueError (a 500)."""
    database = {"allergies": []}
    _write(stack, database)
    # Written to hours later: no poll publishes the scope's generation again.
    CacheScopeGeneration.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    client, key = redis.Redis.from_url(settings.REDIS_URL), _generation_key(stack)
    client.set(key, NOT_A_NUMBER)

    readers = [make_stack(), make_stack(), make_stack()]
    with caplog.at_level(logging.WARNING, logger="apps.caching.stack"):
        for reader in readers:
            assert reader.get_or_load(*CARD, lambda: dict(database), scope=SCOPE) == database
    # Replaced by the database's generation, so the second and third readers were served from L2.
    assert int(client.get(key)) > 0
    assert [reader.stats()[(CARD[0], "l2")]["hits"] for reader in readers] == [0, 1, 1]
    assert all(reader.breaker.state == "closed" for reader in readers)
    warnings = [r for r in caplog.records if "not a number" in r.getMessage()]
    assert len(warnings) == 1
    assert "MRN" not in caplog.text


def test_a_publish_onto_a_generation_key_that_is_not_a_number_replaces_it_and_keeps_the_breaker_closed(stack):
    """The set-if-greater script compared the published number with nil: a Lua error on every poll of every
    process (each re-publishes what it sees), so the breaker opened again and again and the cache stayed
    degraded; the key was never repaired."""
    database = {"allergies": []}
    _write(stack, database)
    client, key = redis.Redis.from_url(settings.REDIS_URL), _generation_key(stack)
    client.set(key, NOT_A_NUMBER)

    poller = make_stack()
    poller.tick(force=True)
    _write(stack, database, allergies=["penicillin"])  # published by the writer, and again by the poller
    poller.tick(force=True)
    poller.tick(force=True)
    assert stack.breaker.state == "closed"
    assert poller.breaker.state == "closed"
    generation = int(client.get(key))
    assert generation > 0
    assert poller.get_or_load(*CARD, lambda: dict(database), scope=SCOPE) == {"allergies": ["penicillin"]}


def test_an_entry_stored_before_the_key_went_bad_is_not_served_after_a_write(stack):
    """The card stored before the allergy keeps its generation; the write's generation is what replaces the bad
    key (the database's, never behind), so the old card is never valid again in any tier."""
    database = {"allergies": []}
    _write(stack, database)
    assert stack.get_or_load(*CARD, lambda: dict(database), scope=SCOPE) == database  # L1, L2, L3
    client, key = redis.Redis.from_url(settings.REDIS_URL), _generation_key(stack)
    _write(stack, database, allergies=["penicillin"])
    client.set(key, NOT_A_NUMBER)

    for other_process in (make_stack(), make_stack(), make_stack(redis_url="redis://127.0.0.1:1/0")):
        assert other_process.get_or_load(*CARD, lambda: dict(database), scope=SCOPE) == {"allergies": ["penicillin"]}
    assert int(client.get(key)) > 0


def test_a_generation_key_of_another_type_is_replaced_too_and_keeps_the_breaker_closed(stack):
    """A list (or any type but a string) at the key: GET answered WRONGTYPE, in the reader's lock round trip and
    in the publish script, and each was taken for Redis being away (the breaker opened on every read of the
    patient and every poll)."""
    database = {"allergies": []}
    _write(stack, database)
    client, key = redis.Redis.from_url(settings.REDIS_URL), _generation_key(stack)
    client.delete(key)
    client.rpush(key, NOT_A_NUMBER)

    reader = make_stack()
    assert reader.get_or_load(*CARD, lambda: dict(database), scope=SCOPE) == database
    assert reader.breaker.state == "closed"
    assert int(client.get(key)) > 0

    client.delete(key)
    client.rpush(key, NOT_A_NUMBER)
    _write(stack, database, allergies=["penicillin"])  # its publish replaces the key
    assert stack.breaker.state == "closed"
    assert make_stack().get_or_load(*CARD, lambda: dict(database), scope=SCOPE) == {"allergies": ["penicillin"]}
    assert int(client.get(key)) > 0


def test_a_generation_key_set_ahead_of_the_database_is_set_back_at_the_next_write(stack, caplog):
    """A number past the database's (an operator's SET, a database restored from a backup under a Redis that kept
    its keys): every publish was lower, so set-if-greater dropped it, and the card stored before the allergy
    stayed valid in Redis for every process. The writer finds the key ahead and sets it back to the database's
    generation, only if it still holds what was found."""
    database = {"allergies": []}
    _write(stack, database)
    client, key = redis.Redis.from_url(settings.REDIS_URL), _generation_key(stack)
    client.set(key, int(client.get(key)) + 10**12)  # a bump moves on to the time in microseconds: 11 days ahead
    assert make_stack().get_or_load(*CARD, lambda: dict(database), scope=SCOPE) == database  # stored in L2

    with caplog.at_level(logging.WARNING, logger="apps.caching.stack"):
        _write(stack, database, allergies=["penicillin"])
    assert make_stack().get_or_load(*CARD, lambda: dict(database), scope=SCOPE) == {"allergies": ["penicillin"]}
    assert int(client.get(key)) == CacheScopeGeneration.objects.get(scope=stack.scope_key(SCOPE)).generation
    assert len([r for r in caplog.records if "ahead of the database" in r.getMessage()]) == 1


def test_a_late_publish_of_an_older_generation_leaves_the_newer_one(stack):
    """Out of order, a publish of a generation the database has moved past is dropped, as before."""
    database = {"allergies": []}
    _write(stack, database)
    older = CacheScopeGeneration.objects.get(scope=stack.scope_key(SCOPE)).generation
    _write(stack, database, allergies=["penicillin"])
    newer = CacheScopeGeneration.objects.get(scope=stack.scope_key(SCOPE)).generation
    client, key = redis.Redis.from_url(settings.REDIS_URL), _generation_key(stack)
    assert int(client.get(key)) == newer > older
    stack._queue_publish(stack.scope_key(SCOPE), older)
    stack._retry_publishes()
    assert int(client.get(key)) == newer
