"""`/ws/metrics/` over the real ASGI app and channel layer (Redis under `make test`)."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.metrics.consumers import LIVE_GROUP
from controlplane.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@database_sync_to_async
def _session_cookie(**user_fields) -> bytes:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("u", "u@example.org", "pw-not-used-1", **user_fields)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _connect(*headers):
    communicator = WebsocketCommunicator(application, "/ws/metrics/", headers=[ORIGIN, *headers])
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_anonymous_users_are_rejected():
    communicator, connected, code = await _connect()
    assert not connected
    assert code == 4401
    await communicator.disconnect()


async def test_signed_in_non_staff_users_are_rejected():
    cookie = await _session_cookie(is_staff=False)
    communicator, connected, code = await _connect((b"cookie", cookie))
    assert not connected
    assert code == 4403
    await communicator.disconnect()


async def test_foreign_origins_are_rejected():
    cookie = await _session_cookie(is_staff=True)
    communicator = WebsocketCommunicator(
        application, "/ws/metrics/", headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await communicator.disconnect()


async def test_staff_receive_heartbeats_snapshots_and_group_broadcasts():
    cookie = await _session_cookie(is_staff=True)
    communicator, connected, _ = await _connect((b"cookie", cookie))
    assert connected
    messages = [await communicator.receive_json_from(timeout=3) for _ in range(4)]
    heartbeats = [m["seq"] for m in messages if m["type"] == "heartbeat"]
    snapshots = [m["data"] for m in messages if m["type"] == "snapshot"]
    assert heartbeats == [1, 2]
    assert len(snapshots) == 2 and {"overall", "services", "host", "alerts", "cache_hit_rate"} <= set(snapshots[0])

    await get_channel_layer().group_send(LIVE_GROUP, {"type": "metrics.snapshot", "data": {"req_s": 12.5}})
    for _ in range(8):
        message = await communicator.receive_json_from(timeout=3)
        if message["type"] == "snapshot" and "req_s" in message["data"]:
            break
    assert message["data"] == {"req_s": 12.5}

    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    for _ in range(5):
        message = await communicator.receive_json_from(timeout=3)
        if message["type"] == "pong":
            break
    assert message["type"] == "pong"
    await communicator.disconnect()
