"""What a process's threads do beside its reads. Pub/sub is one space for a whole Redis server, whatever db a client
selected: on one channel every deployment sharing the server (and make test's two pytest processes, on dbs 15 and
12) heard the others' invalidations, and each policy edit made this process's next read poll the database (a query
in a request's query budget). The counters' flushes belong to the flusher thread, which holds no lock a read's
poll needs."""

import time

import pytest
import redis
from django.conf import settings

from apps.caching.stack import INVALIDATIONS_CHANNEL
from tests.caching.support import make_stack
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_process_hears_its_own_dbs_invalidations_only():
    client = redis.Redis.from_url(settings.REDIS_URL)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    listener = make_stack(poll_interval=3600.0, subscribe=True)
    listener.get_or_load("vital_signs", ["latest", 30], lambda: {"n": 1}, scope="patient:30")  # starts its listener
    own = listener.invalidations_channel()
    try:
        assert own == f"{INVALIDATIONS_CHANNEL}:{db}"
        wait_for(lambda: dict(client.pubsub_numsub(own)).get(own.encode(), 0) > 0, 120, "the listener's subscription")
        client.publish(f"{INVALIDATIONS_CHANNEL}:{db + 100}", "patient:31 7")  # another db's write
        client.publish(own, "patient:33 7")  # then one of its own, heard after the other would have been
        wait_for(lambda: "patient:33" in listener._known_generations, 120, "its own db's invalidation heard")
        assert "patient:31" not in listener._known_generations
    finally:
        listener._listener_pid = None  # its listener ends
        client.close()


def test_with_a_flusher_thread_a_read_writes_no_counters(monkeypatch):
    """A flush is tens of statements (one row a namespace and tier): it landed on whichever read was due, every
    5 s, inside that request. With the flusher thread (`background`, every worker's stack) only the thread writes
    them; a stack without one still flushes on a read."""
    flushed = []
    for background in (True, False):
        stack = make_stack(background=background)
        monkeypatch.setattr(stack, "flush_stats", lambda background=background, **_: flushed.append(background))
        stack._flushed_at = time.monotonic() - 3600  # a flush long due
        stack.tick()  # a read's (its poll is due: never polled)
    assert flushed == [False]


def test_a_read_polls_while_the_flusher_thread_writes(monkeypatch):
    """The flusher thread held the poll's lock while it wrote: a read whose poll fell due meanwhile skipped it (a
    read never waits for that lock), and served L1 on the last poll's word. Now it holds none."""
    import threading

    from apps.caching import services

    writing, release = threading.Event(), threading.Event()
    record = services.cache_stats_record

    def slow_record(**kwargs):
        writing.set()
        release.wait(120)
        record(**kwargs)

    monkeypatch.setattr(services, "cache_stats_record", slow_record)
    stack = make_stack(background=True, flush_interval=0.05)
    try:
        stack.get_or_load("vital_signs", ["latest", 34], lambda: {"n": 1}, scope="patient:34")  # counted; starts it
        wait_for(writing.is_set, 120, "the flusher thread writing the counters")
        stack._polled_at = 0.0  # a read's poll falls due
        stack.tick()
        assert stack._polled_at != 0.0  # polled, though the flusher is mid-write
    finally:
        release.set()
        stack._flusher_pid = None  # its flusher ends
