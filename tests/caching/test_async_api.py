"""The brief's API: MedicalAICache(redis_url), await initialize(), @cache_decorator(ttl=..., namespace=...)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from apps.caching.decorators import cached
from apps.caching.medical_ai_cache import MedicalAICache
from tests.caching.support import set_policy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_the_executor_connection():
    """The tiers are read in asgiref's shared thread; its connection goes back to the pool after."""
    yield
    await sync_to_async(connections.close_all)()


async def test_the_briefs_decorator_caches_a_coroutine_once_per_argument():
    cache = MedicalAICache(settings.REDIS_URL)
    await cache.initialize()
    fetched = []

    @cache.cache_decorator(ttl=1800, namespace="patient_data", scope=lambda patient_id: f"patient:{patient_id}")
    async def get_patient_data(patient_id):
        fetched.append(patient_id)
        await asyncio.sleep(0.05)
        return {"id": patient_id, "family_name": "Nakamura"}

    first = await asyncio.gather(*[get_patient_data(5) for _ in range(10)])
    assert first == [{"id": 5, "family_name": "Nakamura"}] * 10
    assert await get_patient_data(6) == {"id": 6, "family_name": "Nakamura"}
    assert fetched == [5, 6]  # ten concurrent misses of one key shared one load

    await cache.invalidate("patient:5")
    await get_patient_data(5)
    assert fetched == [5, 6, 5]
    assert cache.redis_available


async def test_concurrent_async_misses_in_separate_processes_load_once():
    """Other processes' coroutines wait on the same Redis lock as the sync path's callers."""
    from apps.caching.stack import CacheStack

    stacks = [CacheStack.from_settings(settings.REDIS_URL, subscribe=False) for _ in range(3)]
    calls = []

    async def slow_loader():
        calls.append(1)
        await asyncio.sleep(0.3)
        return {"answer": 42}

    results = await asyncio.gather(*[s.aget_or_load("ai_inference", ["async-q", 1], slow_loader) for s in stacks])
    assert results == [{"answer": 42}] * 3
    assert len(calls) == 1


async def test_an_uninitialized_cache_says_so():
    cache = MedicalAICache("redis://127.0.0.1:1/0")

    @cache.cache_decorator(ttl=60)
    async def answer():
        return 1

    with pytest.raises(RuntimeError, match="initialize"):
        await answer()


def test_the_sync_decorator_keys_by_arguments():
    calls = []

    @cached("ai_inference")
    def embed(text: str) -> list[float]:
        calls.append(text)
        return [float(len(text))]

    assert embed("chest pain") == [10.0]
    assert embed("chest pain") == [10.0]
    assert embed("fever") == [5.0]
    assert calls == ["chest pain", "fever"]


def test_the_decorator_keys_arguments_as_the_function_binds_them(stack):
    """Positional or keyword, a default given or left out: one call of the function, one entry."""
    calls = []

    @cached("ai_inference", stack=lambda: stack)
    def triage(patient_id: int, window: int = 24) -> dict:
        calls.append((patient_id, window))
        return {"patient": patient_id, "window": window}

    assert triage(7) == triage(patient_id=7) == triage(7, 24) == triage(7, window=24) == {"patient": 7, "window": 24}
    assert triage(7, 48) == {"patient": 7, "window": 48}
    assert calls == [(7, 24), (7, 48)]
    with pytest.raises(TypeError):  # a wrong call fails as the function would, nothing loaded
        triage(7, hours=3)
    assert len(calls) == 2


async def test_the_briefs_coroutine_decorator_keys_keyword_and_positional_calls_alike():
    cache = MedicalAICache(settings.REDIS_URL)
    await cache.initialize()
    fetched = []

    @cache.cache_decorator(ttl=1800, namespace="patient_data")
    async def get_patient_data(patient_id):
        fetched.append(patient_id)
        return {"id": patient_id}

    assert await get_patient_data(8) == await get_patient_data(patient_id=8) == {"id": 8}
    assert fetched == [8]


def test_a_cached_method_is_keyed_by_its_instance_s_own_text_and_an_address_is_never_a_key(stack):
    """`self`'s default text is its address (another key for each instance, and a freed instance's successor
    at the same address would get its entry), and its class alone would serve one instance's result for
    another's: Summarizer(patient 1) answering for patient 2. A method's instance must name its state."""
    calls = []

    class Summarizer:
        def __init__(self, patient_id: int) -> None:
            self.patient_id = patient_id

        @cached("ai_inference", stack=lambda: stack)
        def summary(self) -> dict:
            calls.append(self.patient_id)
            return {"patient": self.patient_id}

    with pytest.raises(TypeError, match="cannot be part of a cache key"):
        Summarizer(1).summary()
    assert calls == []

    class NamedSummarizer(Summarizer):
        def __str__(self) -> str:
            return f"summarizer of {self.patient_id}"

        @cached("ai_inference", stack=lambda: stack)
        def summary(self) -> dict:
            calls.append(self.patient_id)
            return {"patient": self.patient_id}

    assert NamedSummarizer(1).summary() == {"patient": 1}
    assert NamedSummarizer(2).summary() == {"patient": 2}
    assert NamedSummarizer(1).summary() == {"patient": 1}  # another instance, the same text: a hit
    assert calls == [1, 2]

    class Opaque:  # no text of its own
        pass

    @cached("ai_inference", stack=lambda: stack)
    def summary(context) -> dict:
        calls.append("summary")
        return {}

    with pytest.raises(TypeError, match="cannot be part of a cache key"):
        summary(Opaque())
    assert calls == [1, 2]


def test_sets_make_one_key_whatever_order_they_were_built_in():
    from apps.caching.layers import KeyHasher

    built_up, built_down = {1, 9}, {9, 1}  # 1 and 9 share a slot: iteration follows insertion
    assert list(built_up) != list(built_down)
    hasher = KeyHasher("secret")
    assert hasher.digest("codes", built_up) == hasher.digest("codes", built_down)
    assert hasher.digest("codes", frozenset(built_up)) == hasher.digest("codes", built_down)


def test_a_decorators_ttl_never_outlasts_the_policys(stack):
    """The brief's `ttl=1800` on a namespace whose TTL an admin shortened to 60 s: 60 s it is."""
    set_policy("ai_inference", ttl_seconds=60)
    stack.tick(force=True)

    @cached("ai_inference", ttl=1800, stack=lambda: stack)
    def answer(question: str) -> dict:
        return {"q": question}

    before = stack.clock()
    answer("dose")
    (entry,) = stack.l1._namespaces["ai_inference"].values()
    assert entry.fresh_until <= stack.clock() + 60
    assert entry.fresh_until >= before + 59
    for bad in (0, -5, 1.5):
        with pytest.raises(ValueError, match="ttl"):
            cached("ai_inference", ttl=bad)


def test_a_namespace_no_policy_can_have_is_refused_where_it_is_written():
    """A policy is created on a namespace's first read; one its slug cannot name failed every read (500)."""
    for bad in ("patient data", "notes/v2", "x" * 65, ""):
        with pytest.raises(ValueError, match="namespace"):
            cached(bad)
    cached("triage-v2")  # a namespace with no policy yet: created on first use


async def test_a_namespace_no_policy_can_have_is_refused_by_every_direct_read():
    """Only the decorator checked: `get_or_load("patient data", ...)` (and the brief's `cache.get_or_load`)
    failed on the first read with Django's ValidationError from the policy's creation, a 500 naming no cause."""
    from apps.caching import stack as cache_stack
    from apps.caching.models import CachePolicy

    cache = await MedicalAICache(settings.REDIS_URL).initialize()
    loaded = []

    async def aloader():
        loaded.append(1)
        return {"x": 1}

    def loader():
        loaded.append(1)
        return {"x": 1}

    for bad in ("patient data", "notes/v2", "x" * 65, "", 7):
        with pytest.raises(ValueError, match="cache namespace is 1-64 letters"):
            await cache.get_or_load(bad, ["q", 1], aloader)
        with pytest.raises(ValueError, match="cache namespace is 1-64 letters"):
            await cache_stack.aget_or_load(bad, ["q", 1], aloader)
        with pytest.raises(ValueError, match="cache namespace is 1-64 letters"):
            await sync_to_async(cache_stack.get_or_load)(bad, ["q", 1], loader)
    assert loaded == []
    assert not await CachePolicy.objects.exclude(namespace__regex=r"^[-a-zA-Z0-9_]{1,64}$").aexists()
    assert await cache.get_or_load("triage-v3", ["q", 1], aloader) == {"x": 1}  # created on first use


def test_coroutines_in_separate_event_loops_share_a_load_without_crossing_loops():
    """Sync code calling the cache's coroutines through async_to_sync runs one event loop per call: a
    waiter awaited a load's future from another loop (RuntimeError: attached to a different loop).

    On a cold stack, as a process's first reads are: the loops that skip the first poll (another thread is
    running it) ask Redis rather than take it for away and load by themselves."""
    import threading

    import redis
    from asgiref.sync import async_to_sync

    from apps.caching.stack import CacheStack

    def client():  # generous timeouts: a loaded machine's slow connect is not what this test is about
        return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=30, socket_connect_timeout=30)

    stack = CacheStack(
        redis_client_factory=client,
        key_secret=settings.CACHE_KEY_SECRET,
        encryption_keys=settings.CACHE_ENCRYPTION_KEYS,
        subscribe=False,
    )

    calls = []

    async def loader():
        calls.append(1)
        await asyncio.sleep(0.3)
        return {"v": 1}

    results: list = [None] * 4
    # The other loops wait on the Redis lock up to this long before loading themselves: 2 s by default, which
    # threads starting late on a loaded machine could pass (a second load, a flaky failure).
    stack.single_flight_wait = 30.0
    started = threading.Barrier(4)

    def read(index: int) -> None:
        try:
            started.wait(60)
            results[index] = async_to_sync(stack.aget_or_load)("ai_inference", ["loops", 1], loader)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [{"v": 1}] * 4
    assert len(calls) == 1  # the other loops waited on the Redis lock, as other processes do


async def test_a_cancelled_load_does_not_cancel_the_coroutines_waiting_for_it(stack):
    """A request whose client went away is cancelled mid-load; the others waiting for the same key were
    not, and get the value (loaded again) rather than a CancelledError."""
    started = asyncio.Event()
    calls = []

    async def loader():
        calls.append(1)
        started.set()
        await asyncio.sleep(0.5)
        return {"v": 1}

    leader = asyncio.create_task(stack.aget_or_load("ai_inference", ["cancel", 1], loader))
    await started.wait()
    waiter = asyncio.create_task(stack.aget_or_load("ai_inference", ["cancel", 1], loader))
    await asyncio.sleep(0.1)  # the waiter is waiting on the leader's load by now
    leader.cancel()
    assert await waiter == {"v": 1}
    assert leader.cancelled()
    assert len(calls) == 2


async def test_an_l1_hit_of_a_coroutine_does_not_wait_behind_the_sync_thread(stack):
    """Every async read hopped to asgiref's one sync thread, L1 hits included: a slow query running there
    (any sync_to_async call of the process) held every cached coroutine read behind it."""
    import threading

    await stack.aget_or_load("ai_inference", ["hot", 1], _answer)  # loaded: now in L1
    stack.poll_interval = 3600.0  # no poll due during the test (a poll queries, in that thread)
    release = threading.Event()
    blocker = asyncio.create_task(sync_to_async(release.wait)(30))  # the sync thread, busy
    await asyncio.sleep(0.05)
    try:
        assert await asyncio.wait_for(stack.aget_or_load("ai_inference", ["hot", 1], _answer), 10) == {"v": 1}
    finally:
        release.set()
        await blocker
    assert stack.stats()[("ai_inference", "l1")]["hits"] == 1


async def _answer() -> dict:
    return {"v": 1}


async def test_coroutines_waiting_for_a_hung_load_give_up_on_it_and_load(stack):
    """The sync path's waiters stop waiting once a load outlives a loader's lifetime; coroutines waited
    on a hung load (a source that never answers) for ever."""
    stack.loader_lifetime = 0.3  # 10 s by default
    never = asyncio.Event()
    calls = []

    async def loader():
        calls.append(1)
        if len(calls) == 1:
            await never.wait()  # the first load hangs
        return {"v": 1}

    hung = asyncio.create_task(stack.aget_or_load("ai_inference", ["hung", 1], loader))
    while not calls:
        await asyncio.sleep(0.01)
    try:
        assert await asyncio.wait_for(stack.aget_or_load("ai_inference", ["hung", 1], loader), 10) == {"v": 1}
    finally:
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
    assert len(calls) == 2


async def test_initializing_the_briefs_cache_again_keeps_its_stack():
    cache = MedicalAICache(settings.REDIS_URL)
    await asyncio.gather(cache.initialize(), cache.initialize())
    first = cache.stack
    await cache.initialize()
    assert cache.stack is first


async def test_an_async_read_after_a_write_is_not_given_a_load_that_began_before_it():
    """The async twin of the sync test: a coroutine reading right after a committed write joined the load in
    flight in its loop, which read the database before the write, and was given the card without the write."""
    from django.db import transaction

    from apps.caching.stack import CacheStack

    stack = CacheStack.from_settings(settings.REDIS_URL, subscribe=False)
    database = {"allergies": []}
    loading, written = asyncio.Event(), asyncio.Event()

    async def loader():
        value = {"allergies": list(database["allergies"])}  # what the database said when this reader looked
        if not loading.is_set():
            loading.set()
            await written.wait()  # ... and the write commits, and the writer reads, before this load returns
        return value

    def write():
        with transaction.atomic():
            database["allergies"] = ["penicillin"]
            stack.invalidate_scopes(["patient:13"])

    def read():
        return stack.aget_or_load("patient_data", ["card", 13], loader, scope="patient:13")

    early_read = asyncio.ensure_future(read())
    await asyncio.wait_for(loading.wait(), 5)
    await sync_to_async(write)()
    own_read = asyncio.ensure_future(read())
    (pending,) = stack._async_flights.values()
    for _ in range(500):  # until the writer's read waits on the load in flight (no sleep to guess it)
        if pending._callbacks:
            break
        await asyncio.sleep(0.01)
    assert pending._callbacks
    written.set()
    assert await own_read == {"allergies": ["penicillin"]}
    assert await early_read == {"allergies": []}
