"""A value read before a database restore is cached in no tier once the restore is seen (review f, finding 1).

A load still running when its process learned of a restore epoch filled L1 after the drop, L2 under the new epoch's
keys and L3, all with the scope's generation of before the restore; a write after the restore bumps the generation
back to that number, so the value the restore took back was served for its whole TTL, in every process."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection, connections

from apps.caching.models import CacheEntry, CacheScopeGeneration
from apps.caching.stack import RESTORE_EPOCH_KEY, RESTORE_SEQUENCE, CacheStack
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)
SCOPE = "patient:77"
KEY_PARTS = ["card", 77]
TAKEN_BACK = {"family": "name the restore took back"}
RESTORED = {"family": "from the database"}
WAIT = 120  # seconds: a loaded CI machine


@pytest.fixture
def restore():
    """`restore(stack)`: the database goes back to `restore.backup()` (SCOPE's generation one write back, the rows of
    L3 written since and the draws from RESTORE_SEQUENCE taken back with it), and a restore epoch starts: another
    process's compare starts it (Redis's clock, as `_NOTE_RESTORE_MARK` writes it) and this one reads it, or, `here`,
    this process's own poll draws at or below the mark and starts it; not `seen`: no process has seen it yet.
    Returns the generation the restore took back."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    sequence: list = []

    def backup() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT last_value, is_called FROM {RESTORE_SEQUENCE}")  # noqa: S608 - a constant
            sequence[:] = cursor.fetchone()

    def go(stack: CacheStack, *, seen: bool = True, here: bool = False) -> int:
        row = CacheScopeGeneration.objects.get(scope=stack.scope_key(SCOPE))
        CacheScopeGeneration.objects.filter(pk=row.pk).update(generation=row.generation - 1)
        CacheEntry.objects.filter(scope=row.scope, generation=row.generation).delete()  # taken back with it
        if here:
            with connection.cursor() as cursor:
                cursor.execute("SELECT setval(%s, %s, %s)", [RESTORE_SEQUENCE, *sequence])
            epoch = client.get(RESTORE_EPOCH_KEY)
            stack.tick(force=True)  # draws at or below the mark: this process starts the epoch, and drops L1
            assert client.get(RESTORE_EPOCH_KEY) != epoch, "no restore epoch started"
        elif seen:
            see(stack)
        return row.generation

    def see(stack: CacheStack) -> None:
        seconds, micros = client.time()
        client.set(RESTORE_EPOCH_KEY, f"{seconds}{micros:06d}")
        stack.tick(force=True)  # this process's probe reads the new epoch: drops L1 and the local caches

    go.see, go.backup = see, backup
    yield go
    client.delete(RESTORE_EPOCH_KEY)
    client.close()


def _written_twice(restore) -> tuple[CacheStack, str]:
    stack = make_stack()
    stack.invalidate_scopes([SCOPE])
    stack.tick(force=True)
    restore.backup()
    stack.invalidate_scopes([SCOPE])  # the second write: the one the restore will take back
    stack.tick(force=True)
    return stack, stack.key(stack.policy("patient_data"), KEY_PARTS)


def _read(stack: CacheStack) -> dict:
    return stack.get_or_load("patient_data", KEY_PARTS, lambda: RESTORED, scope=SCOPE)


def _in_thread(target) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
        finally:
            connections.close_all()  # this thread's: the test database is dropped at the end of the run

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _during_a_slow_load(stack: CacheStack, during):
    """`during()` runs while another thread's load reads the database as it was before the restore; returns what
    the load's caller got and what `during` returned."""
    started, release = threading.Event(), threading.Event()

    def slow_loader():
        started.set()
        release.wait(WAIT)
        return TAKEN_BACK

    reader, out = _in_thread(lambda: stack.get_or_load("patient_data", KEY_PARTS, slow_loader, scope=SCOPE))
    try:
        assert started.wait(WAIT)
        result = during()
    finally:
        release.set()
        reader.join(WAIT)
    return out, result


def _nothing_cached_of_before(stack: CacheStack, key: str, generation: int) -> None:
    assert stack.l1.get("patient_data", key) is None, "L1 filled after the restore was seen"
    assert stack.redis().get(stack._l2_key("v", key)) is None, "L2 filled under the new epoch's key space"
    assert not CacheEntry.objects.filter(key=key, generation=generation).exists(), "L3 row of the lost generation"


def _after_a_write_every_process_reads_the_database(stack: CacheStack) -> None:
    assert _read(stack) == RESTORED, "served what the restore took back once the restore was seen"
    stack.invalidate_scopes([SCOPE])  # a write after the restore: the generation back to the lost one's
    assert _read(stack) == RESTORED, "served what the restore took back after a write made after the restore"
    assert _read(make_stack()) == RESTORED, "another process served what the restore took back"


@pytest.mark.parametrize("here", [False, True], ids=["epoch-read", "epoch-started-here"])
def test_a_load_begun_before_the_restore_epoch_stores_in_no_tier(restore, here):
    """The epoch read from Redis (another process started it: `_probe_l2`), or started by this process's own poll
    (`_check_restored`), while another thread of it loads."""
    stack, key = _written_twice(restore)
    out, lost = _during_a_slow_load(stack, lambda: restore(stack, here=here))
    assert out == {"value": TAKEN_BACK}, "the read that raced the restore still gets its value"
    _nothing_cached_of_before(stack, key, lost)
    _after_a_write_every_process_reads_the_database(stack)


def test_a_coroutine_load_begun_before_the_restore_epoch_stores_in_no_tier(restore):
    """The async path (`aget_or_load`, medical_ai_cache, the decorator on coroutines) stores through `store` too."""
    stack, key = _written_twice(restore)
    started, release = threading.Event(), threading.Event()

    async def slow_loader():
        started.set()
        await asyncio.to_thread(release.wait, WAIT)
        return TAKEN_BACK

    reader, out = _in_thread(
        lambda: async_to_sync(stack.aget_or_load)("patient_data", KEY_PARTS, slow_loader, scope=SCOPE)
    )
    try:
        assert started.wait(WAIT)
        lost = restore(stack)
    finally:
        release.set()
        reader.join(WAIT)
    assert out == {"value": TAKEN_BACK}
    _nothing_cached_of_before(stack, key, lost)
    _after_a_write_every_process_reads_the_database(stack)


def test_a_load_stored_after_the_restore_but_before_its_epoch_was_seen_leaves_no_l3_row(restore):
    """The restore lands while the load runs, and this process's poll sees it only after the store: L1 is dropped
    then, L2 was written under the key space of before, but the L3 row (in the restored database) carried the
    generation of before, valid again once a write bumped the restored one back to it."""
    stack, key = _written_twice(restore)
    out, lost = _during_a_slow_load(stack, lambda: restore(stack, seen=False))
    assert out == {"value": TAKEN_BACK}
    assert not CacheEntry.objects.filter(key=key, generation=lost).exists(), "L3 row of the lost generation"
    restore.see(stack)
    _after_a_write_every_process_reads_the_database(stack)


def test_an_l2_hit_read_before_the_restore_epoch_does_not_fill_l1_after_it(restore, monkeypatch):
    """Not a load: a lookup read a value from L2 under the key space of before, another thread's poll saw the epoch
    and dropped L1, then the lookup copied the value into L1, where it was served for its TTL."""
    stack, key = _written_twice(restore)
    assert stack.get_or_load("patient_data", KEY_PARTS, lambda: TAKEN_BACK, scope=SCOPE) == TAKEN_BACK
    stack.l1.clear()  # the next read finds it in L2
    read_l2, release = threading.Event(), threading.Event()
    l2_get = stack._l2_get

    def slow_l2_get(*args, **kwargs):
        found = l2_get(*args, **kwargs)
        if threading.current_thread() is not threading.main_thread() and not read_l2.is_set():
            read_l2.set()
            release.wait(WAIT)
        return found

    monkeypatch.setattr(stack, "_l2_get", slow_l2_get)
    reader, out = _in_thread(lambda: stack.get_or_load("patient_data", KEY_PARTS, lambda: RESTORED, scope=SCOPE))
    try:
        assert read_l2.wait(WAIT)
        restore(stack)
    finally:
        release.set()
        reader.join(WAIT)
    assert out == {"value": TAKEN_BACK}, "the read that raced the restore is served what it found"
    assert stack.l1.get("patient_data", key) is None, "L1 filled after the restore was seen"
    _after_a_write_every_process_reads_the_database(stack)
