"""`/ws/metrics/` over the real ASGI app on a Redis channel layer of the test's own (port 9601), configured as the
settings configure it: a Redis restart under an open feed, and a feed whose channel stays idle past a read timeout.

channels reads the consumer's channel from Redis beside the socket; a Redis that restarted made that read raise
ConnectionError, which ended the consumer with an ASGI traceback and the browser's socket with a bare 1006."""

import asyncio
import copy
import json
import logging
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from apps.accounts.roles import VIEWERS
from apps.metrics.consumers import CLOSE_TRY_AGAIN_LATER, LIVE_GROUP, snapshot_publisher
from controlplane.asgi import application
from tests.helpers import start_redis

pytestmark = pytest.mark.django_db(transaction=True)

PORT = 9601
WAIT_SECONDS = 120


@pytest.fixture
def own_redis(settings):
    """A redis-server on PORT behind the channel layer, with the settings' host options (its read timeout);
    `restart()` stops it and returns a function that starts it again. Stopped at teardown."""
    layers = copy.deepcopy(django_settings.CHANNEL_LAYERS)
    assert layers["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"  # REDIS_URL set
    (host,) = layers["default"]["CONFIG"]["hosts"]
    host["address"] = f"redis://127.0.0.1:{PORT}/0"
    processes = [start_redis(PORT)]
    settings.CHANNEL_LAYERS = layers  # channels drops its cached layers on this setting's change

    def stop():
        processes[-1].terminate()  # SIGTERM: redis shuts down and closes its clients' connections
        processes[-1].wait(timeout=WAIT_SECONDS)
        return lambda: processes.append(start_redis(PORT))

    yield stop
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=WAIT_SECONDS)


@database_sync_to_async
def _viewer_cookie(username: str) -> bytes:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username, f"{username}@example.org", "pw-not-used-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=VIEWERS))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _open_feed(username: str) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"cookie", await _viewer_cookie(username))]
    communicator = WebsocketCommunicator(application, "/ws/metrics/", headers=headers)
    connected, _ = await communicator.connect(timeout=WAIT_SECONDS)
    assert connected
    return communicator


async def _until(communicator: WebsocketCommunicator, wanted) -> dict:
    """The first output `wanted(output)` accepts, skipping heartbeats and the like, within WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        output = await communicator.receive_output(timeout=WAIT_SECONDS)
        if wanted(output):
            return output
    raise AssertionError(f"nothing wanted in {WAIT_SECONDS} s")


def _snapshot(output: dict) -> bool:
    return output["type"] == "websocket.send" and json.loads(output["text"])["type"] == "snapshot"


async def test_f_a_redis_restart_under_an_open_feed_closes_it_with_try_again_later(own_redis, caplog):
    """The dashboard retries a 1013 with its backoff; no exception leaves the consumer, and it leaves the
    snapshot publisher, which would otherwise build snapshots for the gone dashboard as long as the process lives."""
    communicator = await _open_feed("watcher")
    await _until(communicator, _snapshot)  # joined, and its channel is being read from Redis

    with caplog.at_level(logging.WARNING, logger="apps.metrics.consumers"):
        start_again = own_redis()
        try:
            # An ASGI exception here (the old code) is raised by receive_output itself.
            close = await _until(communicator, lambda output: output["type"] == "websocket.close")
        finally:
            start_again()
        await communicator.wait(timeout=WAIT_SECONDS)  # the consumer ended, and without an exception
    assert close["code"] == CLOSE_TRY_AGAIN_LATER
    failed = [r for r in caplog.records if "closed with 1013" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is None, [r.getMessage() for r in caplog.records]
    assert snapshot_publisher().listeners == {}

    # The dashboard's retries get a live feed again from the restarted Redis. The first may be refused with 1013
    # too: redis-py hands out a pooled connection the restart closed once, and drops it on that error.
    deadline = time.monotonic() + WAIT_SECONDS
    for attempt in range(1, 100):
        again = await _open_feed(f"watcher-again-{attempt}")
        output = await _until(again, lambda output: _snapshot(output) or output["type"] == "websocket.close")
        await again.disconnect()
        if _snapshot(output) or time.monotonic() > deadline:
            break
        assert output["code"] == CLOSE_TRY_AGAIN_LATER
    assert _snapshot(output), output


async def test_f_a_feed_whose_channel_stays_idle_past_the_read_timeout_still_gets_a_later_broadcast(
    own_redis, monkeypatch
):
    """channels_redis blocks each read of the channel (BZPOPMIN) for brpop_timeout, 5 s; the layer's socket
    timeout must stay above it, or an idle channel's read raised TimeoutError and ended the feed."""
    monkeypatch.setattr("apps.metrics.consumers.SNAPSHOT_SECONDS", 3600)  # one snapshot, then an idle channel
    communicator = await _open_feed("idle")
    await _until(communicator, _snapshot)
    layer = get_channel_layer()
    await asyncio.sleep(layer.brpop_timeout * 2 + 2)  # two whole blocks and more with nothing for the channel

    await layer.group_send(LIVE_GROUP, {"type": "metrics.snapshot", "data": {"after": "idle"}})
    output = await _until(communicator, lambda output: _snapshot(output) or output["type"] == "websocket.close")
    assert json.loads(output.get("text", "{}")).get("data") == {"after": "idle"}, output
    await communicator.disconnect()
