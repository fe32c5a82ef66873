"""The multi-level cache on the real Redis and PostgreSQL: tiers, keys, encryption, invalidation, races."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from apps.caching import selectors, services
from apps.caching.layers import CodecError, Entry, KeyHasher, MemoryTier, ValueCodec, deep_size
from apps.caching.models import CacheEntry, CachePolicy, CacheScopeGeneration
from apps.caching.stack import cache_reads_reset, served_from_cache
from tests.caching.support import make_stack, set_policy
from tests.helpers import start_redis

pytestmark = pytest.mark.django_db(transaction=True)

PATIENT = {"id": 41, "mrn": "MRN-0041", "family_name": "Okonkwo", "given_name": "Adaeze"}


def threads_of(*targets: Callable[[], object]) -> list[object]:
    """Run each target in its own thread (closing its database connection after), return their results."""
    results: list[object] = [None] * len(targets)

    def run(index: int, target: Callable[[], object]) -> None:
        try:
            results[index] = target()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def counting(value):
    calls = []

    def loader():
        calls.append(1)
        return value

    return loader, calls


def test_a_miss_loads_once_then_each_tier_serves_in_turn(stack):
    loader, calls = counting(PATIENT)
    assert stack.get_or_load("patient_data", ["patient", 41], loader, scope="patient:41") == PATIENT
    assert stack.get_or_load("patient_data", ["patient", 41], loader, scope="patient:41") == PATIENT
    assert len(calls) == 1
    counts = stack.stats()
    assert counts[("patient_data", "l1")]["hits"] == 1

    other_process = make_stack()  # no L1 yet: Redis serves it
    assert other_process.get_or_load("patient_data", ["patient", 41], loader, scope="patient:41") == PATIENT
    assert other_process.stats()[("patient_data", "l2")]["hits"] == 1

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # Redis lost everything: the database tier serves
    third = make_stack()
    assert third.get_or_load("patient_data", ["patient", 41], loader, scope="patient:41") == PATIENT
    assert third.stats()[("patient_data", "l3")]["hits"] == 1
    assert len(calls) == 1


def test_keys_and_stored_values_carry_no_patient_data(stack):
    stack.get_or_load("patient_data", ["mrn", PATIENT["mrn"]], lambda: PATIENT, scope="patient:41")
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.keys("cpc:*"))
    assert keys
    for key in keys:
        assert (b"MRN-0041" not in key and b"41" not in key.split(b":")[-1][:2]) or len(key) > 60
        raw = client.get(key) or b""
        assert b"Okonkwo" not in raw and b"MRN-0041" not in raw
    row = CacheEntry.objects.get()
    assert b"Okonkwo" not in bytes(row.value) and "41" not in row.scope


def test_a_namespace_without_phi_may_be_stored_in_the_clear(stack):
    CachePolicy.objects.create(namespace="model_catalog", contains_phi=False, encrypt=False)
    stack.get_or_load("model_catalog", ["all"], lambda: {"models": ["minilm"]})
    raw = next(v for v in (redis.Redis.from_url(settings.REDIS_URL).get(k) for k in
                           redis.Redis.from_url(settings.REDIS_URL).keys("cpc:*:v:*")) if v)  # fmt: skip
    assert b"minilm" in raw


def test_encryption_keys_rotate_without_losing_entries():
    old_key, new_key = ValueCodec.derive_key("old"), ValueCodec.derive_key("new")
    sealed = ValueCodec([old_key]).encode(PATIENT, encrypt=True)
    rotated_codec = ValueCodec([new_key, old_key])
    assert rotated_codec.decode(sealed) == PATIENT
    resealed = rotated_codec.rotate(sealed)
    assert ValueCodec([new_key]).decode(resealed) == PATIENT
    with pytest.raises(CodecError):
        ValueCodec([new_key]).decode(sealed)


def test_a_sealed_value_opens_only_under_its_own_cache_key_and_known_keys():
    codec = ValueCodec([ValueCodec.derive_key("k")])
    sealed = codec.encode(PATIENT, encrypt=True, context=b"key-of-patient-41")
    assert codec.decode(sealed, b"key-of-patient-41") == PATIENT
    with pytest.raises(CodecError):
        codec.decode(sealed, b"key-of-patient-42")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(CodecError):
        codec.decode(tampered, b"key-of-patient-41")
    with pytest.raises(CodecError, match="no longer configured"):
        ValueCodec([ValueCodec.derive_key("other")]).decode(sealed, b"key-of-patient-41")
    for garbage in (b"", b"G", b"G\x00\x01", b"Pnot json", b"X{}", b"P\xff\xfe"):
        with pytest.raises(CodecError):
            codec.decode(garbage)
    with pytest.raises(ValueError, match="32 random bytes"):
        ValueCodec(["too-short"])


def test_keys_differ_by_type_and_remembered_keys_equal_computed_ones():
    hasher = KeyHasher("secret")
    variants = [("v", 1), ("v", True), ("v", 1.0), ("v", "1"), ("v", None), ("v", (1, 2)), ("v", (1, True)),
                ("v", [1, True]), ("v", {"a": 1}), ("v", 1, 2)]  # fmt: skip
    first = [hasher.digest(*parts) for parts in variants]
    assert len(set(first)) == len(variants) - 1 and first[6] == first[7]  # a tuple and a list spell the same
    assert [hasher.digest(*parts) for parts in variants] == first  # the second time from memory: the same
    assert [KeyHasher("secret")._mac_of(*parts) for parts in variants] == first
    assert KeyHasher("other").digest("v", 1) != first[0]


def test_long_text_parts_are_hashed_but_never_remembered():
    """The memo keeps its keys' parts: a model's inputs or a note would stay in memory, 8,192 of them."""
    hasher = KeyHasher("secret")
    note = "Patient reports chest pain radiating to the left arm. " * 40
    assert hasher.digest("ai", note) == hasher._mac_of("ai", note)
    assert hasher.digest("ai", "short") == hasher._mac_of("ai", "short")
    assert hasher._remembered.cache_info().currsize == 1  # the short key only


def test_parts_that_contain_the_separators_never_spell_other_parts():
    """One client's text must not produce another's key (an embedding request keys by its texts: a text
    holding the part separator would otherwise read another client's cached vectors)."""
    hasher = KeyHasher("secret")
    pairs = [
        (("m", "embed", "a", "b"), ("m", "embed", "a\x1fstr:b")),
        (("m", "embed", "a", "b"), ("m", "embed", "a\x1fstr:1:b")),
        ((["x", "y"],), (["x,str:y"],)),
        ((["x", "y"],), (["x,str:1:y"],)),
        (({"a": "b", "c": "d"},), ({"a": "b,str:1:c:str:1:d"},)),
        (("1:a",), ("1", "a")),
    ]
    for left, right in pairs:
        assert hasher.digest(*left) != hasher.digest(*right), (left, right)


def test_a_card_copied_under_another_patients_key_is_not_served(stack):
    """Someone with write access to Redis moves patient 41's sealed card under patient 42's key: the read of
    42 does not open it (it is bound to 41's key), counts an error and loads 42's own card."""
    stack.get_or_load("patient_data", ["patient", 41], lambda: PATIENT, scope="patient:41")
    other = {**PATIENT, "id": 42, "mrn": "MRN-0042"}
    stack.get_or_load("patient_data", ["patient", 42], lambda: other, scope="patient:42")
    client = redis.Redis.from_url(settings.REDIS_URL)
    policy = stack.policy("patient_data")
    key_41, key_42 = (stack._l2_key("v", stack.key(policy, ["patient", pid])) for pid in (41, 42))
    generation, fresh, stale, _ = client.get(key_42).split(b"|", 3)
    sealed_41 = client.get(key_41).split(b"|", 3)[3]
    client.set(key_42, b"|".join([generation, fresh, stale, sealed_41]))

    CacheEntry.objects.filter(key=stack.key(policy, ["patient", 42])).delete()  # the database tier has no copy

    fresh_process = make_stack()  # no L1: Redis is asked first
    loader, calls = counting(other)
    assert fresh_process.get_or_load("patient_data", ["patient", 42], loader, scope="patient:42") == other
    assert calls == [1]
    assert fresh_process.stats()[("patient_data", "l2")]["errors"] == 1


def test_a_value_planted_in_the_clear_under_a_phi_key_is_not_served(stack):
    """Someone with write access to Redis (or the table) replaces patient 41's sealed card with one of their
    own, in the clear: an encrypted namespace only ever stores sealed values, so a read refuses it (an
    error), and loads the real card, rather than serving made-up clinical data under the patient's key."""
    stack.get_or_load("patient_data", ["patient", 41], lambda: PATIENT, scope="patient:41")
    forged = b"P" + json.dumps({**PATIENT, "allergies": []}).encode()
    client = redis.Redis.from_url(settings.REDIS_URL)
    policy = stack.policy("patient_data")
    key = stack.key(policy, ["patient", 41])
    generation, fresh, stale, _ = client.get(stack._l2_key("v", key)).split(b"|", 3)
    client.set(stack._l2_key("v", key), b"|".join([generation, fresh, stale, forged]))
    CacheEntry.objects.filter(key=key).update(value=forged)

    fresh_process = make_stack()  # no L1: Redis is asked first, then the table
    loader, calls = counting(PATIENT)
    assert fresh_process.get_or_load("patient_data", ["patient", 41], loader, scope="patient:41") == PATIENT
    assert calls == [1]
    assert fresh_process.stats()[("patient_data", "l2")]["errors"] == 1
    assert fresh_process.stats()[("patient_data", "l3")]["errors"] == 1


@pytest.mark.parametrize("tier", ["l2", "l3"])
def test_an_earlier_sealed_card_given_the_current_generation_and_freshness_is_not_served(stack, tier):
    """Someone with write access to Redis (or the table) keeps patient 41's sealed card from before the allergy
    and, after the write, puts it back under the current generation with a far-future freshness: only the
    value was sealed, not the header, so every process served the card without the allergy. The header is
    authenticated with the value now: the record is an error and a miss."""
    before, after = {"id": 41, "allergies": []}, {"id": 41, "allergies": ["penicillin"]}
    stack.get_or_load("patient_data", ["patient", 41], lambda: before, scope="patient:41")
    key = stack.key(stack.policy("patient_data"), ["patient", 41])
    client = redis.Redis.from_url(settings.REDIS_URL)
    earlier_sealed = client.get(stack._l2_key("v", key)).split(b"|", 3)[3]
    earlier_row = CacheEntry.objects.get(key=key).value
    with transaction.atomic():
        stack.invalidate_scopes(["patient:41"])
    stack.get_or_load("patient_data", ["patient", 41], lambda: after, scope="patient:41")

    if tier == "l2":
        generation = client.get(stack._l2_key("v", key)).split(b"|", 1)[0]
        client.set(stack._l2_key("v", key), b"|".join([generation, b"9000000000.0", b"9000000000.0", earlier_sealed]))
    else:
        client.delete(stack._l2_key("v", key))
        CacheEntry.objects.filter(key=key).update(value=earlier_row, fresh_until=9e9, stale_until=9e9)

    fresh_process = make_stack()  # no L1: Redis is asked first, then the table
    loader, calls = counting(after)
    assert fresh_process.get_or_load("patient_data", ["patient", 41], loader, scope="patient:41") == after
    assert calls == ([] if tier == "l2" else [1])  # L2's forgery is a miss, and L3 still holds the current card
    assert fresh_process.stats()[("patient_data", tier)]["errors"] == 1


def test_a_sealed_card_whose_freshness_was_extended_or_stored_before_the_upgrade_is_a_miss(stack):
    """A header edited alone (the current card made fresh for ever) does not match its seal; nor does an entry
    sealed before the header was (the cache key alone): each is an error and a miss, the card loaded again."""
    stack.get_or_load("patient_data", ["patient", 41], lambda: PATIENT, scope="patient:41")
    key = stack.key(stack.policy("patient_data"), ["patient", 41])
    client = redis.Redis.from_url(settings.REDIS_URL)
    generation, fresh, stale, sealed = client.get(stack._l2_key("v", key)).split(b"|", 3)
    CacheEntry.objects.filter(key=key).delete()
    old_format = stack.codec.encode(PATIENT, encrypt=True, context=key.encode())
    for record in (
        b"|".join([generation, b"9000000000.0", stale, sealed]),
        b"|".join([generation, fresh, stale, old_format]),
    ):
        client.set(stack._l2_key("v", key), record)
        fresh_process = make_stack()
        loader, calls = counting(PATIENT)
        assert fresh_process.get_or_load("patient_data", ["patient", 41], loader, scope="patient:41") == PATIENT
        assert calls == [1]
        assert fresh_process.stats()[("patient_data", "l2")]["errors"] == 1
        CacheEntry.objects.filter(key=key).delete()


def test_a_write_invalidates_every_tier_and_other_processes_l1(stack):
    other_process = make_stack()
    version = {"n": 1}

    def loader():
        return {"vitals": version["n"]}

    assert stack.get_or_load("vital_signs", ["latest", 7], loader, scope="patient:7") == {"vitals": 1}
    assert other_process.get_or_load("vital_signs", ["latest", 7], loader, scope="patient:7") == {"vitals": 1}

    with transaction.atomic():
        version["n"] = 2
        stack.invalidate_scopes(["patient:7"])
    assert stack.get_or_load("vital_signs", ["latest", 7], loader, scope="patient:7") == {"vitals": 2}
    time.sleep(0.06)  # the other process's poll interval in this test
    assert other_process.get_or_load("vital_signs", ["latest", 7], loader, scope="patient:7") == {"vitals": 2}


def test_a_reader_that_started_before_a_write_cannot_store_a_stale_value(stack):
    """The stale-read race: the load reads old data, the write commits, then the load stores."""
    database = {"heart_rate": 70}
    loading, written = threading.Event(), threading.Event()

    def slow_loader():
        value = dict(database)  # what the database said when the reader looked
        loading.set()
        written.wait(5)  # ... and the write commits before this reader stores
        return value

    def writer():
        loading.wait(5)
        with transaction.atomic():
            database["heart_rate"] = 120
            stack.invalidate_scopes(["patient:9"])
        connection.close()
        written.set()

    thread = threading.Thread(target=writer)
    thread.start()
    stale = stack.get_or_load("vital_signs", ["latest", 9], slow_loader, scope="patient:9")
    thread.join()
    assert stale == {"heart_rate": 70}  # that reader got what it read; nobody after it may
    for reader in (stack, make_stack(), make_stack()):
        assert reader.get_or_load("vital_signs", ["latest", 9], lambda: dict(database), scope="patient:9") == {
            "heart_rate": 120
        }


def test_a_read_after_a_write_is_not_given_a_load_that_began_before_it(stack):
    """A clinician's read that began before another's write is loading the card; the write commits; the
    writer reads the card at once in the same process. That read must not share the load in flight (it read
    the database before the write), as it shared it before: the writer was shown the card without its write."""
    database = {"allergies": []}
    loading, written = threading.Event(), threading.Event()
    key = stack.key(stack.policy("patient_data"), ["card", 12])

    def loader():
        value = {"allergies": list(database["allergies"])}  # what the database said when this reader looked
        if not loading.is_set():
            loading.set()
            written.wait(5)  # ... and the write commits, and the writer reads, before this load returns
        return value

    class WaitSeen(threading.Event):
        """The flight's event, telling the test when a thread waits on it (no sleep to guess it)."""

        def wait(self, timeout=None):
            waiting.set()
            return super().wait(timeout)

    waiting = threading.Event()

    def read():
        try:
            return stack.get_or_load("patient_data", ["card", 12], loader, scope="patient:12")
        finally:
            connection.close()

    early_read = threading.Thread(target=read)
    early_read.start()
    assert loading.wait(5)
    stack._flights[key].done.__class__ = WaitSeen  # the same event, now telling when it is waited on
    with transaction.atomic():
        database["allergies"] = ["penicillin"]
        stack.invalidate_scopes(["patient:12"])

    results = []
    own_read = threading.Thread(target=lambda: results.append(read()))
    own_read.start()
    assert waiting.wait(5)  # the writer's read joined the load in flight
    written.set()
    own_read.join()
    early_read.join()
    assert results == [{"allergies": ["penicillin"]}]


def test_an_evicted_scope_generation_does_not_make_an_invalidated_entry_valid_again(stack):
    """Redis under memory pressure (allkeys-lru) evicts a scope's generation key but not the old entry: the
    key read as generation 0, which the entry stored before the scope's first write carried, and every
    process served the card from before the write again."""
    database = {"allergies": []}
    stack.get_or_load("patient_data", ["card", 23], lambda: dict(database), scope="patient:23")
    with transaction.atomic():
        database["allergies"] = ["penicillin"]
        stack.invalidate_scopes(["patient:23"])
    # Hours later (the pollers' repair of lost publishes looks back seconds), the generation key is evicted.
    CacheScopeGeneration.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    redis.Redis.from_url(settings.REDIS_URL).delete(stack._l2_key("g", stack.scope_key("patient:23")))

    for reader in (make_stack(), make_stack()):  # the first loads (and sets the key again), the second hits L2
        assert reader.get_or_load("patient_data", ["card", 23], lambda: dict(database), scope="patient:23") == {
            "allergies": ["penicillin"]
        }
    assert reader.stats()[("patient_data", "l2")]["hits"] == 1
    # Nor does a generation key stay for ever (one per patient scope read or written): its expiry is safe now.
    assert redis.Redis.from_url(settings.REDIS_URL).pttl(stack._l2_key("g", stack.scope_key("patient:23"))) > 0


def test_a_read_after_a_long_idle_waits_for_the_poll_another_thread_is_running(stack):
    """A process idle for an hour, whose channel missed a write (Redis restarted, say): the first read polls
    and drops the old entry; a read arriving while that poll runs skipped it and was served the old card."""
    reader = make_stack()
    database = {"allergies": []}
    reader.get_or_load("patient_data", ["card", 24], lambda: dict(database), scope="patient:24")
    with transaction.atomic():
        database["allergies"] = ["penicillin"]
        stack.invalidate_scopes(["patient:24"])  # in another process; the reader hears nothing of it

    asked = threading.Event()

    class WatchedLock:
        """The reader's poll lock, telling the test when a thread asks for it."""

        def __init__(self, lock):
            self.lock = lock

        def acquire(self, blocking=True, timeout=-1):
            asked.set()
            return self.lock.acquire(blocking, timeout)

        def release(self):
            self.lock.release()

    poll_lock = threading.Lock()
    reader._tick_lock = WatchedLock(poll_lock)
    reader._polled_at = time.monotonic() - 3600  # idle for an hour
    poll_lock.acquire()  # another thread's poll is running
    results = []

    def read():
        try:
            results.append(reader.get_or_load("patient_data", ["card", 24], lambda: dict(database), scope="patient:24"))
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    assert asked.wait(5)
    poll_lock.release()
    thread.join()
    assert results == [{"allergies": ["penicillin"]}]


def test_a_read_never_waits_for_a_slow_poll_another_thread_is_running(stack):
    """A poll slower than the interval (the database pool waiting under load): every read then found the last
    poll overdue and waited up to 1 s for the running one, L1 hits included. A read goes on now: from L1 while
    the last poll started under two intervals ago, else from L2 (which checks generations), never waiting."""
    reader = make_stack(poll_interval=0.5)
    card = {"allergies": []}
    assert reader.get_or_load("patient_data", ["card", 25], lambda: card, scope="patient:25") == card
    polling, poll_released = threading.Event(), threading.Event()
    waits: list[bool] = []

    class WatchedLock:
        """The reader's poll lock, counting the threads that would wait for it."""

        def __init__(self) -> None:
            self.lock = threading.Lock()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if blocking:
                waits.append(True)
            return self.lock.acquire(blocking, timeout)

        def release(self) -> None:
            self.lock.release()

    def slow_poll() -> None:
        polling.set()
        poll_released.wait(10)

    reader._tick_lock = WatchedLock()
    reader._poll = slow_poll
    reader._polled_at = time.monotonic() - 0.6  # due, not yet overdue: the next read polls
    poller = threading.Thread(
        target=lambda: threads_of(lambda: reader.get_or_load("patient_data", ["card", 25], dict, scope="patient:25"))
    )
    poller.start()
    try:
        assert polling.wait(5)
        before = reader.stats()
        # The running poll, slow: started 0.6 s after the last (L1 is served), then 1.1 s (past two intervals: L2).
        for polled_ago, tier in ((0.6, "l1"), (1.1, "l2")):
            reader._polled_at = time.monotonic() - polled_ago
            read = threads_of(lambda: reader.get_or_load("patient_data", ["card", 25], dict, scope="patient:25"))
            assert waits == [] and not poll_released.is_set()  # served while the poll still ran, without waiting
            assert read == [card]
            after = reader.stats()
            assert after[("patient_data", tier)]["hits"] == before.get(("patient_data", tier), {}).get("hits", 0) + 1
            before = after
    finally:
        poll_released.set()
        poller.join()


def test_other_processes_hear_of_a_committed_write_at_once(stack):
    """Read your writes across processes: the committing process tells every listener, so another
    process's L1 copy is gone long before its next poll (a minute away here)."""
    other_process = make_stack(poll_interval=60.0, subscribe=True)
    version = {"n": 1}
    assert other_process.get_or_load("vital_signs", ["latest", 14], lambda: dict(version), scope="patient:14") == {
        "n": 1
    }
    _hears_the_channel(stack, other_process)
    with transaction.atomic():
        stack.invalidate_scopes(["patient:14"])
        version["n"] = 2

    # Well under the poll's minute. It was 1 s after a 0.3 s sleep for the listener to subscribe: on a loaded
    # host the listener subscribed after the write was published, and the test waited for a poll a minute away.
    def latest() -> dict:
        return other_process.get_or_load("vital_signs", ["latest", 14], lambda: dict(version), scope="patient:14")

    assert wait_for(lambda: latest() == {"n": 2}, 10), latest()
    other_process._listener_pid = None  # its listener ends


def _hears_the_channel(stack, other_process) -> None:
    """Until `other_process`'s listener has subscribed: a write to a scope of its own, published until the
    other process's copy of it is gone (read again: loaded a second time)."""
    loads = []

    def probe() -> dict:
        loads.append(1)
        return {"probe": len(loads)}

    other_process.get_or_load("vital_signs", ["probe", 15], probe, scope="patient:15")

    def heard() -> bool:
        with transaction.atomic():
            stack.invalidate_scopes(["patient:15"])
        other_process.get_or_load("vital_signs", ["probe", 15], probe, scope="patient:15")
        return len(loads) > 1

    assert wait_for(heard, 30), "the other process's listener never heard a write on the channel"


class SilencingProxy:
    """A TCP proxy to Redis whose open connections can go silent: a NAT or load balancer that dropped them
    while idle, telling neither end (no reset, nothing). Connections made after that still go through."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.silenced: set[int] = set()
        self.links: list[tuple[int, socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            link = len(self.links)
            self.links.append((link, client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(link, source, sink), daemon=True).start()

    def _pump(self, link: int, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if link not in self.silenced:
                    sink.sendall(data)

    def silence_open_connections(self) -> None:
        self.silenced.update(link for link, _, _ in self.links)

    def close(self) -> None:
        self.server.close()
        for _, client, upstream in self.links:
            client.close()
            upstream.close()


def test_a_listener_whose_connection_died_silently_connects_again():
    """The invalidation channel's connection is dropped silently while idle (a cloud load balancer's idle
    timeout): a subscriber sends nothing, so it never noticed, and the process heard no committed write on
    the channel again, for ever; its L1 served each patient's old data until its next poll (a second in
    production: the gap after a clinician's own write that the channel exists to close)."""
    server = redis.Redis.from_url(settings.REDIS_URL).connection_pool.connection_kwargs
    proxy = SilencingProxy((server["host"], server["port"]))
    listener = make_stack(
        f"redis://127.0.0.1:{proxy.port}/{server['db']}",
        poll_interval=3600.0,
        subscribe=True,
        listener_ping_seconds=0.2,
    )
    writer = make_stack()
    scope, parts = "patient:22", ["latest", 22]
    key = listener.key(listener.policy("vital_signs"), parts)

    def written_and_heard() -> bool:
        listener.get_or_load("vital_signs", parts, lambda: {"heart_rate": 80}, scope=scope)
        with transaction.atomic():
            writer.invalidate_scopes([scope])
        return wait_for(lambda: listener.l1.get("vital_signs", key) is None, seconds=0.5)

    try:
        assert wait_for(written_and_heard, seconds=10)  # the listener hears writes
        proxy.silence_open_connections()
        # Its poll is an hour away here: only the channel can tell it of a write.
        assert wait_for(written_and_heard, seconds=15)
    finally:
        listener._listener_pid = None  # its listener ends
        proxy.close()


def test_a_process_whose_first_cache_call_is_a_write_announces_it_at_once():
    """A worker that writes vitals before it ever read the cache did not know the Redis server's run id
    (learned on a read's poll), so its publish was held back: other processes' L2 served the old value
    until a poll somewhere re-published the generation."""
    reader = make_stack(poll_interval=60.0)  # its poll, a backstop, is not due in this test
    reader.get_or_load("vital_signs", ["latest", 15], lambda: {"n": 1}, scope="patient:15")
    writer = make_stack()  # no read yet
    with transaction.atomic():
        writer.invalidate_scopes(["patient:15"])
    reader.l1.clear()  # its L1 aside (the channel's business): L2 must not serve the old value
    assert reader.get_or_load("vital_signs", ["latest", 15], lambda: {"n": 2}, scope="patient:15") == {"n": 2}


def test_a_write_that_commits_long_after_its_invalidation_still_reaches_other_processes(monkeypatch):
    """The bump is stamped before the commit; a transaction that commits after the other processes'
    polls have looked past that stamp is stamped again on commit, so their L1 copies still drop."""
    monkeypatch.setattr("apps.caching.stack.POLL_MARGIN", timedelta(seconds=0.3))
    writer, reader = make_stack(), make_stack()
    version = {"n": 1}
    assert reader.get_or_load("vital_signs", ["latest", 11], lambda: dict(version), scope="patient:11") == {"n": 1}
    committed = threading.Event()

    def slow_write():  # on a connection of its own, as another process's would be
        with transaction.atomic():
            writer.invalidate_scopes(["patient:11"])
            version["n"] = 2
            time.sleep(1)
        connection.close()
        committed.set()

    thread = threading.Thread(target=slow_write)
    thread.start()
    while not committed.is_set():  # the reader polls many times while the write is open
        reader.tick(force=True)
        time.sleep(0.05)
    thread.join()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        seen = reader.get_or_load("vital_signs", ["latest", 11], lambda: dict(version), scope="patient:11")
        if seen == {"n": 2}:
            break
        time.sleep(0.05)
    assert seen == {"n": 2}


def test_invalidations_reach_other_processes_whatever_their_clocks_say(monkeypatch):
    """Stamps and polls use the database's clock: a writer host a minute behind is heard all the same."""
    writer, reader = make_stack(), make_stack()
    version = {"n": 1}
    assert reader.get_or_load("vital_signs", ["latest", 12], lambda: dict(version), scope="patient:12") == {"n": 1}
    reader.tick(force=True)
    behind = timezone.now() - timedelta(seconds=60)
    with transaction.atomic(), monkeypatch.context() as writer_host:
        writer_host.setattr("apps.caching.stack.timezone.now", lambda: behind)
        writer.invalidate_scopes(["patient:12"])
        version["n"] = 2
    time.sleep(0.2)  # a few of the reader's 50 ms polls
    assert reader.get_or_load("vital_signs", ["latest", 12], lambda: dict(version), scope="patient:12") == {"n": 2}


def test_a_load_slower_than_the_memory_of_writes_does_not_fill_l1_with_what_it_read(stack, monkeypatch):
    """A process remembers the writes it heard of for 2 x POLL_MARGIN. A load that outlasts that memory
    asks the database before its value goes into L1, which serves hits without checking generations."""
    monkeypatch.setattr("apps.caching.stack.POLL_MARGIN", timedelta(seconds=0.2))
    database = {"heart_rate": 70}
    loading, release = threading.Event(), threading.Event()

    def slow_loader():
        value = dict(database)
        loading.set()
        release.wait(5)
        return value

    def writer_then_polls():
        loading.wait(5)
        with transaction.atomic():
            database["heart_rate"] = 120
            make_stack().invalidate_scopes(["patient:13"])
        for _ in range(16):  # this process keeps serving: it hears of the write, then forgets it
            stack.tick(force=True)
            time.sleep(0.05)
        connection.close()
        release.set()

    thread = threading.Thread(target=writer_then_polls)
    thread.start()
    assert stack.get_or_load("vital_signs", ["latest", 13], slow_loader, scope="patient:13") == {"heart_rate": 70}
    thread.join()
    assert stack.get_or_load("vital_signs", ["latest", 13], lambda: dict(database), scope="patient:13") == {
        "heart_rate": 120
    }


def test_concurrent_misses_in_one_process_run_one_loader(stack):
    calls = []

    def slow_loader():
        calls.append(1)
        time.sleep(0.3)
        return {"embedding": [0.1, 0.2]}

    results = threads_of(*[lambda: stack.get_or_load("ai_inference", ["e", 1], slow_loader)] * 8)
    assert len(calls) == 1
    assert results == [{"embedding": [0.1, 0.2]}] * 8


def test_threads_waiting_for_a_slow_load_of_their_own_process_do_not_each_run_it():
    """A model slower than the single-flight wait: each waiting thread gave up on the load running in
    its own process after that wait and ran the model itself."""
    stack = make_stack(single_flight_wait=0.2)
    calls = []

    def slow_model():
        calls.append(1)
        time.sleep(1.0)
        return {"label": "sepsis"}

    results = threads_of(*[lambda: stack.get_or_load("ai_inference", ["slow", 1], slow_model)] * 6)
    assert results == [{"label": "sepsis"}] * 6
    assert len(calls) == 1


def test_concurrent_misses_in_separate_stacks_run_one_loader_through_the_redis_lock():
    stacks = [make_stack() for _ in range(6)]
    calls = []

    def slow_loader():
        calls.append(1)
        time.sleep(0.3)
        return {"answer": 42}

    results = threads_of(*[lambda s=s: s.get_or_load("ai_inference", ["q", 2], slow_loader) for s in stacks])
    assert len(calls) == 1
    assert results == [{"answer": 42}] * 6


@pytest.mark.parametrize("outcome", ["none", "error"])
def test_waiters_share_a_load_that_returns_nothing_or_fails(stack, outcome):
    """None (an unknown patient) is never stored and an error stores nothing: the threads that waited for
    that load get its outcome instead of each loading again, and other processes stop waiting once its
    lock is let go, instead of waiting out the single-flight limit."""
    calls = []

    def slow_loader():
        calls.append(1)
        time.sleep(0.3)
        if outcome == "error":
            raise LookupError("source unavailable")
        return None

    def read(reader):
        started = time.monotonic()
        try:
            result = reader.get_or_load("patient_data", ["gone", 3], slow_loader, scope="patient:3")
        except LookupError as exc:
            result = exc
        return result, time.monotonic() - started

    other_processes = [make_stack(single_flight_wait=5.0) for _ in range(2)]
    results = threads_of(*[lambda: read(stack)] * 4, *[lambda s=s: read(s) for s in other_processes])
    in_process, elsewhere = results[:4], results[4:]
    assert len(calls) <= 1 + len(other_processes)  # one per process at most, never one per thread
    assert all((value is None) if outcome == "none" else isinstance(value, LookupError) for value, _ in results)
    assert max(seconds for _, seconds in elsewhere) < 2.0  # not the 5 s limit
    assert len(in_process) == 4


def test_a_shorter_ttl_or_encryption_turned_on_orphans_what_is_stored(stack):
    """Entries carry the freshness they were stored with: an edit they would not honour moves the keys on."""
    set_policy("clinical_data", ttl_seconds=1200, encrypt=False, contains_phi=False)
    stack.tick(force=True)
    loader, calls = counting({"v": 1})
    stack.get_or_load("clinical_data", ["k"], loader)
    set_policy("clinical_data", ttl_seconds=1300)  # longer: stored entries still honour it
    stack.tick(force=True)
    stack.get_or_load("clinical_data", ["k"], loader)
    assert len(calls) == 1
    for change in ({"ttl_seconds": 2}, {"stale_while_revalidate_seconds": 0}, {"encrypt": True}):
        set_policy("clinical_data", **change)
        stack.tick(force=True)
        stack.get_or_load("clinical_data", ["k"], loader)
    assert len(calls) == 4  # each such edit: loaded afresh


def test_a_request_knows_whether_all_its_cached_reads_were_served_from_the_cache(stack):
    def account(*reads: tuple) -> bool:
        cache_reads_reset()
        for namespace, key in reads:
            stack.get_or_load(namespace, key, lambda: {"v": 1}, scope="patient:7")
        return served_from_cache()

    assert account() is False  # no cached read at all: nothing came from the cache
    assert account(("patient_data", ["p", 7])) is False  # loaded
    assert account(("patient_data", ["p", 7])) is True
    assert account(("patient_data", ["p", 7]), ("vital_signs", ["v", 7])) is False  # one of two loaded
    assert account(("vital_signs", ["v", 7]), ("patient_data", ["p", 7])) is True
    set_policy("vital_signs", enabled=False)
    stack.tick(force=True)
    assert account(("patient_data", ["p", 7]), ("vital_signs", ["v", 7])) is False  # straight to the source

    async def async_read() -> bool:
        cache_reads_reset()
        await stack.aget_or_load("patient_data", ["p", 7], _async_value)
        await sync_to_async(connections.close_all)()  # asgiref's thread read the tiers: its connection goes back
        return served_from_cache()

    assert asyncio.run(async_read()) is True


async def _async_value() -> dict:
    return {"v": 1}


async def _async_read(read):
    """An async read, and asgiref's thread's connection (it read the tiers) back to the pool after."""
    try:
        return await read
    finally:
        await sync_to_async(connections.close_all)()


def test_inside_the_stale_window_one_caller_reloads_and_the_others_get_the_old_value(stack):
    set_policy("clinical_data", ttl_seconds=1, stale_while_revalidate_seconds=30)
    stack.tick(force=True)
    stack.get_or_load("clinical_data", ["enc", 3], lambda: {"v": 1})
    time.sleep(1.05)
    release = threading.Event()
    calls = []

    def slow_reload():
        calls.append(1)
        release.wait(5)
        return {"v": 2}

    def others() -> list:
        time.sleep(0.1)  # the reloader is inside its load by now
        served = [make_stack().get_or_load("clinical_data", ["enc", 3], slow_reload) for _ in range(3)]
        served.append(stack.get_or_load("clinical_data", ["enc", 3], slow_reload))
        release.set()
        return served

    _, served = threads_of(lambda: stack.get_or_load("clinical_data", ["enc", 3], slow_reload), others)
    assert served == [{"v": 1}] * 4
    assert len(calls) == 1
    assert stack.get_or_load("clinical_data", ["enc", 3], slow_reload) == {"v": 2}


def test_a_stale_serve_is_counted_on_the_tier_that_served_it(stack):
    """A process with no L1 copy served L2's stale value while its reload ran: counted as L1's."""
    set_policy("clinical_data", ttl_seconds=1, stale_while_revalidate_seconds=30)
    stack.tick(force=True)
    stack.get_or_load("clinical_data", ["enc", 4], lambda: {"v": 1})
    time.sleep(1.05)
    reader = make_stack()  # another process: the stale value it finds is L2's
    release = threading.Event()

    def slow_reload():
        release.wait(5)
        return {"v": 2}

    def second_reader():
        time.sleep(0.1)  # the first one is inside its reload by now
        try:
            return reader.get_or_load("clinical_data", ["enc", 4], slow_reload)
        finally:
            release.set()

    threads_of(lambda: reader.get_or_load("clinical_data", ["enc", 4], slow_reload), second_reader)
    counts = reader.stats()
    assert counts[("clinical_data", "l2")]["stale_serves"] == 1
    assert counts[("clinical_data", "l1")]["stale_serves"] == 0


def test_a_redis_restarted_from_an_older_snapshot_does_not_bring_invalidated_values_back(tmp_path, monkeypatch):
    """The snapshot holds a value and its scope's generation from before a write: consistent with each
    other again, so without more the old value would pass the generation check. L2 is keyed by the
    server's run id, and a restarted server is a new, empty key space."""
    from tests.helpers import free_port

    port = free_port()

    def start():
        return start_redis(port, "--dir", str(tmp_path), "--dbfilename", "snapshot.rdb")

    server = start()
    try:
        url = f"redis://127.0.0.1:{port}/0"
        writer = make_stack(url)
        version = {"n": 1}
        assert writer.get_or_load("vital_signs", ["latest", 15], lambda: dict(version), scope="patient:15") == {"n": 1}
        redis.Redis(port=port).save()  # the snapshot: the value and generation before the write
        with transaction.atomic():
            writer.invalidate_scopes(["patient:15"])
            version["n"] = 2
        monkeypatch.setattr("apps.caching.stack.POLL_MARGIN", timedelta(seconds=0.2))
        time.sleep(0.5)  # the write has left the polls' look-back: only Redis would tell of it
        server.kill()
        server.wait()
        server = start()  # loads the older snapshot
        fresh_process = make_stack(url)
        assert fresh_process.get_or_load("vital_signs", ["latest", 15], lambda: dict(version), scope="patient:15") == {
            "n": 2
        }
    finally:
        server.kill()
        server.wait()


def test_redis_going_down_fails_no_read_opens_the_breaker_and_recovers(own_redis):
    url, servers = own_redis
    stack = make_stack(url, breaker_seconds=0.5)
    loader, calls = counting({"score": 0.93})
    assert stack.get_or_load("ai_inference", ["triage", 1], loader) == {"score": 0.93}
    servers[0].kill()
    servers[0].wait()
    stack.clear_local()  # L1 gone too: the database tier must serve
    for _ in range(20):
        assert stack.get_or_load("ai_inference", ["triage", 1], loader) == {"score": 0.93}
    assert stack.get_or_load("ai_inference", ["triage", 2], loader) == {"score": 0.93}  # a miss still loads
    assert len(calls) == 2
    assert stack.breaker.state == "open"
    assert stack.breaker.trips >= 1

    servers.append(start_redis(int(url.rsplit(":", 1)[1].split("/")[0])))  # Redis comes back, empty
    # Past the breaker's open window the next call starts a probe in the background.
    assert wait_for(
        lambda: stack.get_or_load("ai_inference", ["triage", 2], loader) and stack.breaker.state == "closed"
    )
    stack.get_or_load("ai_inference", ["triage", 3], loader)  # stored in L2 again
    stack.clear_local()
    before = stack.stats().get(("ai_inference", "l2"), {}).get("hits", 0)
    assert stack.get_or_load("ai_inference", ["triage", 3], loader) == {"score": 0.93}
    assert stack.stats()[("ai_inference", "l2")]["hits"] == before + 1  # L2 serves again


def test_a_hung_redis_makes_no_read_wait_on_it_twice(own_redis):
    """A stopped Redis (SIGSTOP: what a partition looks like) answers nothing until the socket timeout
    (0.5 s here). The read that finds out pays it once; after that the breaker's probe runs in the
    background, never in a read, however many back-off periods pass, and L2 serves once Redis answers."""
    url, servers = own_redis
    stack = make_stack(url, breaker_seconds=0.2)
    loader, _calls = counting({"score": 0.5})
    stack.get_or_load("ai_inference", ["triage", 1], loader)
    os.kill(servers[0].pid, signal.SIGSTOP)
    try:
        stack.clear_local()
        stack.get_or_load("ai_inference", ["triage", 1], loader)  # pays the timeout, opens the breaker
        assert stack.breaker.state == "open"
        slowest, reads = 0.0, 0
        until = time.monotonic() + 1.2  # six back-off periods
        while time.monotonic() < until:
            stack.clear_local()
            started = time.monotonic()
            assert stack.get_or_load("ai_inference", ["triage", 1], loader) == {"score": 0.5}
            slowest, reads = max(slowest, time.monotonic() - started), reads + 1
            time.sleep(0.01)
        assert reads > 10
        assert slowest < 0.25, f"a read waited {slowest:.2f} s on the hung Redis"
        assert stack.breaker.state == "open"  # every background probe timed out
    finally:
        os.kill(servers[0].pid, signal.SIGCONT)
    assert wait_for(
        lambda: stack.get_or_load("ai_inference", ["triage", 1], loader) and stack.breaker.state == "closed"
    )
    stack.clear_local()
    before = stack.stats().get(("ai_inference", "l2"), {}).get("hits", 0)
    stack.get_or_load("ai_inference", ["triage", 1], loader)
    assert stack.stats()[("ai_inference", "l2")]["hits"] == before + 1


def wait_for(condition: Callable[[], object], seconds: float = 5.0) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_reader_waiting_for_another_process_stops_waiting_when_redis_goes_down(own_redis):
    url, servers = own_redis
    holder, reader = make_stack(url), make_stack(url, single_flight_wait=5)
    policy = holder.policy("ai_inference")
    assert holder._redis_lock(policy, holder.key(policy, ["triage", 9]))  # another process is loading it
    killer = threading.Timer(0.3, servers[0].kill)
    killer.start()
    started = time.monotonic()
    assert reader.get_or_load("ai_inference", ["triage", 9], lambda: {"score": 0.5}) == {"score": 0.5}
    killer.join()
    assert time.monotonic() - started < 2.5  # loaded once Redis was gone, not after the whole 5 s wait


def test_a_policy_turned_off_goes_to_the_source_and_a_clear_orphans_everything(stack):
    loader, calls = counting({"x": 1})
    stack.get_or_load("medications", ["m", 1], loader, scope="patient:1")
    services.cache_namespace_clear(namespace="medications")
    stack.tick(force=True)  # this stack stands for another process: it polls within its interval
    stack.get_or_load("medications", ["m", 1], loader, scope="patient:1")
    assert len(calls) == 2
    set_policy("medications", enabled=False)
    stack.tick(force=True)
    stack.get_or_load("medications", ["m", 1], loader, scope="patient:1")
    stack.get_or_load("medications", ["m", 1], loader, scope="patient:1")
    assert len(calls) == 4


def test_a_policy_deleted_and_created_again_does_not_bring_back_what_a_clear_orphaned(stack):
    """An admin clears a namespace that held wrong model outputs, then deletes its policy (the code creates it
    again with the defaults): the new policy's keys are not those of the entries the clear orphaned in Redis."""
    stack.get_or_load("ai_inference", ["summary", "note-7"], lambda: {"summary": "wrong"})
    services.cache_namespace_clear(namespace="ai_inference")
    CachePolicy.objects.get(namespace="ai_inference").delete()

    other_process = make_stack()
    loader, calls = counting({"summary": "right"})
    assert other_process.get_or_load("ai_inference", ["summary", "note-7"], loader) == {"summary": "right"}
    assert calls == [1]


def test_counters_are_flushed_and_summed_per_namespace_and_tier(stack):
    for _ in range(9):
        stack.get_or_load("audit_logs", ["page", 1], lambda: {"rows": []})
    stack.flush_stats()
    make_stack().get_or_load("audit_logs", ["page", 1], lambda: {"rows": []})
    summary = selectors.cache_stats(namespace="audit_logs")["audit_logs"]
    assert summary["requests"] == 9  # the second stack has not flushed yet
    assert summary["hit_rate"] == pytest.approx(8 / 9, abs=1e-3)
    assert summary["tiers"]["l1"]["hits"] == 8
    assert summary["tiers"]["l1"]["entries"] == 1


def test_reads_of_a_disabled_namespace_or_a_failing_loader_count_as_loads_not_hits(stack):
    """Both went to the source on every read; the admin page showed them as a 100% hit rate."""
    set_policy("medications", enabled=False)
    stack.tick(force=True)
    for _ in range(3):
        stack.get_or_load("medications", ["m", 1], lambda: {"x": 1})
    asyncio.run(_async_read(stack.aget_or_load("medications", ["m", 1], _async_value)))

    def failing():
        raise LookupError("source unavailable")

    for _ in range(2):
        with pytest.raises(LookupError):
            stack.get_or_load("audit_logs", ["page", 9], failing)
    stack.flush_stats()
    summary = selectors.cache_stats()
    assert summary["medications"]["requests"] == 4
    assert summary["medications"]["hit_rate"] == 0
    assert summary["audit_logs"]["hit_rate"] == 0
    assert summary["audit_logs"]["tiers"]["source"]["errors"] == 2


def test_the_l1_memory_shown_is_that_of_processes_still_running(stack):
    """Each process's L1 entries and bytes were summed for ever: every restarted worker (a new pid) left
    its last figures in the total. And the stamp that says a process is alive never moved after its
    row was created (update() does not apply auto_now)."""
    from apps.caching.models import CacheStat

    an_hour_ago = timezone.now() - timedelta(hours=1)
    CacheStat.objects.create(namespace="audit_logs", tier="l1", process="gone:1", hits=5, entries=500, bytes=10**6)
    stack.get_or_load("audit_logs", ["page", 3], lambda: {"rows": []})
    stack.flush_stats()
    CacheStat.objects.update(updated_at=an_hour_ago)  # both silent for an hour
    stack.get_or_load("audit_logs", ["page", 3], lambda: {"rows": []})
    stack.flush_stats()  # this one is not
    l1 = selectors.cache_stats(namespace="audit_logs")["audit_logs"]["tiers"]["l1"]
    assert l1["entries"] == 1
    assert l1["hits"] == 6  # counters stay in the totals


def test_the_counters_of_processes_long_gone_are_folded_into_one_row_not_lost(stack):
    """Every restarted worker left namespaces x tiers rows for ever: a year of daily deploys of ten processes
    is ~90,000 rows, summed on every dashboard read. Silent for a day, they are folded into one row per
    namespace and tier; the totals do not move, and a process that was only idle starts a new row."""
    from apps.caching.models import CacheStat
    from apps.caching.tasks import prune_entries

    for pid in range(3):
        CacheStat.objects.create(
            namespace="audit_logs", tier="l2", process=f"gone:{pid}", hits=5, misses=1, bytes=100
        )  # L2's bytes: what it wrote, a counter like the others (L1's are what a process holds: a gauge)
        CacheStat.objects.create(namespace="audit_logs", tier="l1", process=f"gone:{pid}", hits=2, entries=9)
    CacheStat.objects.update(updated_at=timezone.now() - timedelta(days=2))
    stack.get_or_load("audit_logs", ["page", 4], lambda: {"rows": []})
    stack.flush_stats()  # this process is alive
    before = selectors.cache_stats(namespace="audit_logs")["audit_logs"]["tiers"]
    prune_entries()  # the beat task's body
    after = selectors.cache_stats(namespace="audit_logs")["audit_logs"]["tiers"]
    assert not CacheStat.objects.filter(process__startswith="gone:").exists()
    assert CacheStat.objects.filter(process=services.RETIRED_PROCESS).count() == 2  # l1 and l2
    assert after["l2"]["hits"] == before["l2"]["hits"] == 15 and after["l2"]["misses"] == before["l2"]["misses"]
    assert after["l2"]["bytes"] == before["l2"]["bytes"] > 300
    assert after["l1"]["hits"] == before["l1"]["hits"] and after["l1"]["entries"] == before["l1"]["entries"] == 1
    prune_entries()  # folding again adds nothing twice
    assert selectors.cache_stats(namespace="audit_logs")["audit_logs"]["tiers"]["l2"]["hits"] == 15


def test_after_a_clear_the_l1_entries_and_bytes_shown_are_none(stack):
    """The L1 gauges of a cleared namespace were never reported again, so the admin page kept showing
    the entries and bytes it held before the clear."""
    stack.get_or_load("audit_logs", ["page", 2], lambda: {"rows": [1, 2, 3]})
    stack.flush_stats()
    assert selectors.cache_stats(namespace="audit_logs")["audit_logs"]["tiers"]["l1"]["entries"] == 1
    services.cache_namespace_clear(namespace="audit_logs")
    stack.tick(force=True)  # hears of the clear (and flushes its counters)
    l1 = selectors.cache_stats(namespace="audit_logs")["audit_logs"]["tiers"]["l1"]
    assert (l1["entries"], l1["bytes"]) == (0, 0)


def test_the_l1_entry_bound_evicts_the_least_recently_used(stack):
    set_policy("ai_inference", l1_max_entries=3)
    stack.tick(force=True)
    for n in range(5):
        stack.get_or_load("ai_inference", ["n", n], lambda n=n: {"n": n})
    assert stack.l1.usage()["ai_inference"][0] == 3
    assert stack.stats()[("ai_inference", "l1")]["evictions"] == 2


def _card(n: int) -> dict:
    identifiers = [{"system": "http://hospital.example.org/mrn", "value": f"S{n:08d}"}]
    return {"id": n, "family_name": f"Family{n:06d}", "given_name": "Given", "birth_date": "1970-01-01",
            "sex": "female", "identifiers": identifiers}  # fmt: skip


def test_the_l1_byte_bound_counts_what_values_take_in_memory():
    """A decoded card takes several times its JSON; the bound is on the memory, not the stored bytes."""
    tier = MemoryTier(max_bytes=1_000_000)
    for n in range(5_000):
        value = _card(n)
        tier.put("patient_data", f"k{n}", Entry(value, 0, 1e12, 1e12, "", len(json.dumps(value))), max_entries=10**6)
    held = [entry.value for entries in tier._namespaces.values() for entry in entries.values()]
    assert 0.7e6 < sum(map(deep_size, held)) + len(held) * MemoryTier.ENTRY_OVERHEAD_BYTES <= 1.2e6
    assert tier.usage()["patient_data"][1] <= 1_000_000


def test_a_value_too_large_for_l1_is_not_kept_and_pushes_nothing_out():
    """A 1 MB report under a 100 kB bound: it evicted every other entry and stayed, 10x over the bound."""
    tier = MemoryTier(max_bytes=100_000)
    for n in range(10):
        tier.put("ai_inference", f"k{n}", Entry({"n": n}, 0, 1e12, 1e12, "", 7), max_entries=100)
    report = "x" * 1_000_000
    assert tier.put("ai_inference", "report", Entry(report, 0, 1e12, 1e12, "", 1_000_002), max_entries=100) == 0
    assert tier.get("ai_inference", "report") is None
    assert tier.usage()["ai_inference"][0] == 10
    assert tier._total_bytes <= 100_000


def test_a_value_too_large_as_stored_is_not_walked_to_be_measured(monkeypatch):
    """Every read of such a value (an L2 hit, then an L1 fill) walked all of it, then dropped it anyway."""
    from apps.caching import layers

    walked = []
    monkeypatch.setattr(layers, "deep_size", lambda value: walked.append(1) or 10**9)
    tier = MemoryTier(max_bytes=100_000)
    tier.put("ai_inference", "report", Entry("x" * 1_000_000, 0, 1e12, 1e12, "", 1_000_002), max_entries=100)
    assert walked == [] and tier.get("ai_inference", "report") is None


def test_a_large_value_is_counted_by_what_it_takes_not_by_the_namespaces_small_values():
    """Sized by a ratio sampled on small dicts (30x their JSON), a 200 kB text was counted as 6 MB and
    pushed every card out of a 2 MB L1."""
    tier = MemoryTier(max_bytes=2_000_000)
    for n in range(20):
        tier.put("clinical_data", f"k{n}", Entry({"n": n}, 0, 1e12, 1e12, "", 8), max_entries=100)
    note = "y" * 200_000
    tier.put("clinical_data", "note", Entry(note, 0, 1e12, 1e12, "", 200_002), max_entries=100)
    assert tier.usage()["clinical_data"][0] == 21
    assert tier._sizes[("clinical_data", "note")] <= deep_size(note) + MemoryTier.ENTRY_OVERHEAD_BYTES


def test_when_l1_is_full_the_least_recently_used_entry_goes_whatever_its_namespace():
    tier = MemoryTier(max_bytes=200_000)
    for n in range(2_000):  # written once, never read again: L1 is full of them
        tier.put("ai_inference", f"once{n}", Entry([0.1] * 32, 0, 1e12, 1e12, "", 200), max_entries=10**6)
    for n in range(100):  # then cards, read again and again
        tier.put("patient_data", f"hot{n}", Entry(_card(n), 0, 1e12, 1e12, "", 200), max_entries=10**6)
        for hot in range(n + 1):
            assert tier.get("patient_data", f"hot{hot}") is not None
    assert tier.usage()["patient_data"][0] == 100  # every card kept: the unread entries made room


def test_l1_entries_past_their_stale_window_are_dropped_first():
    tier = MemoryTier(max_bytes=10**9)
    tier.put("vital_signs", "old", Entry({"v": 1}, 0, 10.0, 20.0, "patient:1", 10), max_entries=100, now=5.0)
    tier.put("vital_signs", "new", Entry({"v": 2}, 0, 100.0, 200.0, "patient:1", 10), max_entries=100, now=30.0)
    assert tier.get("vital_signs", "old") is None and tier.get("vital_signs", "new") is not None
    assert tier.usage()["vital_signs"][0] == 1 and tier._by_scope == {"patient:1": {("vital_signs", "new")}}


def test_a_value_reads_back_the_same_from_every_tier_and_to_the_caller_that_loaded_it(stack):
    """JSON makes text of integer keys and lists of tuples: L1 kept the loader's own object, so the same
    read gave `{7: (1, 2)}` from L1 and `{"7": [1, 2]}` from L2, depending on which process answered."""
    loaded = stack.get_or_load("ai_inference", ["shape", 1], lambda: {7: (1, 2)})
    from_l1 = stack.get_or_load("ai_inference", ["shape", 1], lambda: {7: (1, 2)})
    from_l2 = make_stack().get_or_load("ai_inference", ["shape", 1], lambda: {7: (1, 2)})
    assert loaded == from_l1 == from_l2 == {"7": [1, 2]}

    async def async_loader():
        return ("a", 1)

    assert asyncio.run(_async_read(stack.aget_or_load("ai_inference", ["shape", 2], async_loader))) == ["a", 1]


def test_values_that_are_not_json_are_refused_clearly(stack):
    with pytest.raises(TypeError, match="JSON"):
        stack.get_or_load("ai_inference", ["bad"], lambda: {"when": object()})


def test_a_lost_publish_is_repaired_by_any_process_that_polls():
    from tests.helpers import closed_port

    database = {"v": "old"}
    reader = make_stack()
    assert reader.get_or_load("vital_signs", ["x", 5], lambda: dict(database), scope="patient:5") == {"v": "old"}
    writer = make_stack(f"redis://127.0.0.1:{closed_port()}/0")  # the writer cannot reach Redis at all
    with transaction.atomic():
        database["v"] = "new"
        writer.invalidate_scopes(["patient:5"])
    assert writer._pending_publishes  # its own publish failed
    another_process = make_stack()
    another_process.tick(force=True)  # polls the generations that changed, and publishes them
    fresh = make_stack()
    fresh._poll_since = timezone.now() + timedelta(hours=1)  # it starts after the change left the poll window
    assert fresh.get_or_load("vital_signs", ["x", 5], lambda: dict(database), scope="patient:5") == {"v": "new"}


def test_cached_loads_read_the_primary_even_with_a_replica():
    from controlplane.db_router import PrimaryReplicaRouter, reads_from_primary

    router = PrimaryReplicaRouter()
    from django.db import connections

    connections.settings["replica"] = connections.settings["default"]  # a replica is configured
    try:
        assert router.db_for_read(CachePolicy) == "replica"
        with reads_from_primary():
            assert router.db_for_read(CachePolicy) == "default"
        assert router.db_for_read(CachePolicy) == "replica"
    finally:
        del connections.settings["replica"]
