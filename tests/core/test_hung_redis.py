"""A hung Redis (SIGSTOP: what a partition or a blocked server looks like) answers nothing until the
socket timeout. No request may wait on it more than once, /readyz answers inside the Kubernetes probe's
3 s, and everything comes back once Redis does. A Redis server of the test's own, really stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time

import pytest
from django.conf import settings
from django.test import override_settings

from apps.core import selectors
from apps.core.local_cache import VersionedLocalCache, shared_cache_breaker
from apps.core.selectors import DEGRADED, ERROR, OK, readiness_report
from apps.core.services import worker_heartbeat_record
from apps.ratelimits.throttling import limiter
from tests.helpers import free_port, start_redis, wait_for

# Twice settings.py's, so that a call that waited on the socket stands apart from a slow machine.
SOCKET_TIMEOUT = 1.0
BREAKER_SECONDS = 1.0
# A call that did not wait on the socket, generous for a loaded 2-core machine: a bypassed local-cache
# read takes microseconds, an API request tens of milliseconds. A quarter of the socket's timeout: 50 ms
# failed a CI run whose machine ran three other test jobs (a thread descheduled that long), while a read that
# waited on the socket takes the whole second.
NO_WAIT = SOCKET_TIMEOUT / 4
# A request that waited on the socket takes the whole timeout and more; one under load (a CI run beside other
# test jobs) took 0.7 s without touching Redis.
NO_WAIT_REQUEST = 0.9 * SOCKET_TIMEOUT


class HungRedis:
    def __init__(self, process: subprocess.Popen):
        self.process = process

    def stop(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def hung_redis():
    """The cache, the limiter and the channel layer on a Redis of the test's own, which the test stops."""
    port = free_port()
    process = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    own_cache = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    own_cache["default"]["OPTIONS"] = {**own_cache["default"].get("OPTIONS", {}), "SOCKET_TIMEOUT": SOCKET_TIMEOUT}
    own_layer = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url], "prefix": "cp:t"}}
    }
    saved_backend = limiter._backend
    try:
        with override_settings(CACHES=own_cache, CHANNEL_LAYERS=own_layer, CACHE_REDIS_BREAKER_SECONDS=BREAKER_SECONDS):
            shared_cache_breaker.reset()
            limiter._backend = None  # built again on the overridden cache's connection
            limiter.breaker.success()
            yield HungRedis(process)
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait()
        limiter._backend = saved_backend
        limiter.breaker.success()
        shared_cache_breaker.reset()


def _timed(call):
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def test_local_caches_wait_on_a_hung_redis_once_then_bypass_without_waiting_and_recover(hung_redis):
    tokens = VersionedLocalCache("hung-tokens", check_interval=0.05)
    policies = VersionedLocalCache("hung-policies", check_interval=0.05)
    loads = []

    def load():
        loads.append(1)
        return "fresh"

    tokens.get("k", load), policies.get("k", load)
    assert len(loads) == 2

    hung_redis.stop()
    time.sleep(0.06)  # both versions are due again
    # Eight threads at once: one reads the version and waits out the socket, the others bypass.
    barrier = threading.Barrier(8)
    waits: list[float] = []

    def read():
        barrier.wait()
        waits.append(_timed(lambda: tokens.get("k", load))[0])

    threads = [threading.Thread(target=read) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sum(w > NO_WAIT for w in waits) <= 1, waits
    assert max(waits) < 2 * SOCKET_TIMEOUT

    # Past two breaker periods: a probe is due twice, and made in the background each time; the other
    # namespace shares the breaker, so it never waits either. Every read goes to the loader, never to an
    # entry whose version is unknown.
    loads.clear()
    reads = 0
    started = time.monotonic()
    while time.monotonic() - started < 2.5 * BREAKER_SECONDS:
        for local in (tokens, policies):
            took, value = _timed(lambda: local.get("k", load))  # noqa: B023 - called at once
            assert value == "fresh"
            assert took < NO_WAIT, f"a read waited {took:.3f}s on the hung Redis"
            reads += 1
        time.sleep(0.01)
    assert len(loads) == reads
    assert shared_cache_breaker.state == "open"

    hung_redis.resume()  # the next read past the back-off starts a probe, which finds Redis back

    def recovered() -> bool:
        tokens.get("k", load)
        return shared_cache_breaker.state == "closed"

    wait_for(recovered, BREAKER_SECONDS + 2 * SOCKET_TIMEOUT + 1, "the shared cache's breaker to close")
    for local in (tokens, policies):
        local.get("k", load)
        loads.clear()
        assert local.get("k", load) == "fresh"
        assert not loads  # served locally again


@pytest.mark.django_db
def test_api_requests_with_redis_hung_do_not_wait_on_it(api, issue_token, hung_redis):
    token = issue_token("audit:read")

    def request():
        return api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert request()["RateLimit-Limit"] == "30"  # the limiter and both local caches on this Redis
    hung_redis.stop()
    time.sleep(1.1)  # the token and policy caches' versions are due

    first, response = _timed(request)
    assert response.status_code == 200  # the limiter fails open, the policies come from the database
    assert first < 2 * SOCKET_TIMEOUT  # one socket timeout at most: the first version read that failed

    # Past two breaker periods: neither the local caches nor the limiter probe from a request.
    took = []
    started = time.monotonic()
    while time.monotonic() - started < 2.5 * BREAKER_SECONDS:
        elapsed, response = _timed(request)
        assert response.status_code == 200
        assert "RateLimit-Limit" not in response  # no limiter decision: it never reached Redis
        took.append(elapsed)
    assert max(took) < NO_WAIT_REQUEST, f"{len(took)} requests, slowest {max(took):.3f}s"

    hung_redis.resume()
    wait_for(
        lambda: request().has_header("RateLimit-Limit"),
        BREAKER_SECONDS + 2 * SOCKET_TIMEOUT + 1,
        "the limiter to decide again",
    )


@pytest.mark.django_db
def test_readyz_with_redis_hung_answers_inside_the_probe_timeout_and_degraded(client, hung_redis):
    worker_heartbeat_record(hostname="celery@test")
    overall, checks = readiness_report()
    assert overall == OK, checks

    hung_redis.stop()
    took, (overall, checks) = _timed(readiness_report)
    assert took < selectors.REPORT_DEADLINE_SECONDS + 0.5 < 3  # deploy/k8s: timeoutSeconds 3
    assert overall == DEGRADED, checks  # Redis is not required: the pod stays in its load balancer
    for name in ("cache", "channel_layer", "worker"):
        assert checks[name]["status"] == ERROR, checks
        assert checks[name]["latency_ms"] <= selectors.REPORT_DEADLINE_SECONDS * 1000 + 500
    assert checks["database"]["status"] == OK

    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["status"] == DEGRADED

    hung_redis.resume()
    # A ceiling, not the expected time (a breaker period, 1 s): 5 s was short for a loaded machine.
    wait_for(lambda: readiness_report()[0] == OK, 30, "/readyz to be ok again")


@pytest.fixture
def hanging_check(monkeypatch):
    """A check that answers only when the test lets it: any dependency that ignores every timeout."""
    release = threading.Event()
    calls = []

    def probe():
        calls.append(1)
        release.wait(60)  # far past any report's deadline: a report that waited for it would read ok
        return OK, ""

    monkeypatch.setattr(selectors, "REPORT_DEADLINE_SECONDS", 0.3)
    yield probe, calls, release
    release.set()


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "overall"), [("broker", DEGRADED), ("database", ERROR)])
def test_a_check_without_an_answer_by_the_deadline_is_an_error_as_required_says(
    monkeypatch, hanging_check, name, overall
):
    probe, calls, release = hanging_check
    monkeypatch.setitem(selectors.CHECKS, name, probe)
    worker_heartbeat_record(hostname="celery@test")

    # The report returns while the check still hangs (released only below; a report that waited for it would
    # read ok): the deadline ended it. Not timed (it was took < 0.8 s, which a descheduled thread can miss).
    status, checks = readiness_report()
    assert status == overall
    assert checks[name]["status"] == ERROR
    assert "no answer within 0.3s" in checks[name]["detail"]
    assert checks[name]["latency_ms"] >= 300

    # Still hanging: the next report does not start a second thread for it.
    status, checks = readiness_report()
    assert checks[name]["detail"] == "no answer yet from the previous check"
    assert len(calls) == 1

    release.set()
    wait_for(lambda: readiness_report()[1][name]["status"] == OK, 30, f"the {name} check to answer ok")


@pytest.mark.django_db(transaction=True)
async def test_readyz_under_asgi_round_trips_on_the_servers_loop_beside_a_receiving_consumer():
    """channels_redis refuses receive() from a second event loop while one is receiving, and the live
    feed's consumers always are: the check uses the server's loop, and the consumers' channel prefix so
    that the one holding the receive lock hands its message over (another prefix waits ~5 s for it)."""
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    consumer = asyncio.ensure_future(layer.receive(await layer.new_channel()))  # as a consumer names itself
    await asyncio.sleep(0.05)
    try:
        _, checks = await sync_to_async(readiness_report)()  # how Django's ASGI handler runs the view
    finally:
        consumer.cancel()
    assert checks["channel_layer"]["status"] == OK, checks
