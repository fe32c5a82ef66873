"""`/ws/metrics/` over the real ASGI app and channel layer (Redis under `make test`)."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.accounts.roles import OPERATORS, VIEWERS
from apps.metrics.consumers import LIVE_GROUP
from controlplane.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@database_sync_to_async
def _session_cookie(*groups: str, username: str = "u", **user_fields) -> bytes:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username, f"{username}@example.org", "pw-not-used-1", **user_fields)
    user.groups.set(Group.objects.filter(name__in=groups))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _connect(*headers):
    communicator = WebsocketCommunicator(application, "/ws/metrics/", headers=[ORIGIN, *headers])
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def _close_code(*headers) -> int:
    """Refusals complete the handshake, then close with their code: a browser sees 4401/4403 (a refusal
    before the handshake reaches it as 1006, which a dashboard cannot tell from a dropped network)."""
    communicator, connected, _ = await _connect(*headers)
    assert connected
    message = await communicator.receive_output(timeout=3)
    assert message["type"] == "websocket.close"
    await communicator.disconnect()
    return message["code"]


async def test_anonymous_users_are_rejected():
    assert await _close_code() == 4401


async def test_signed_in_non_staff_users_are_rejected():
    cookie = await _session_cookie(is_staff=False)
    assert await _close_code((b"cookie", cookie)) == 4403


async def test_staff_without_the_metrics_view_permission_are_rejected():
    cookie = await _session_cookie(is_staff=True)  # staff, but no role grants metrics.view_metricpoint
    assert await _close_code((b"cookie", cookie)) == 4403


async def test_foreign_origins_are_rejected():
    cookie = await _session_cookie(VIEWERS, is_staff=True)
    communicator = WebsocketCommunicator(
        application, "/ws/metrics/", headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await communicator.disconnect()


async def test_staff_receive_heartbeats_snapshots_and_group_broadcasts():
    cookie = await _session_cookie(VIEWERS, is_staff=True)
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


@database_sync_to_async
def _services_one_hidden_from_outsiders() -> None:
    from django.contrib.auth.models import Group

    from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
    from apps.metrics.models import Alert, AlertRule
    from apps.metrics.recorder import Recorder
    from apps.services.services import service_ensure

    hidden, _ = service_ensure(slug="onco-triage", name="Oncology triage", route_prefix="api/onco/")
    hidden.visible_to.add(Group.objects.create(name="Oncology AI"))
    service_ensure(slug="open-svc", name="Open service", route_prefix="api/open/")
    rule = AlertRule.objects.create(name="Oncology p95", metric="p95_ms", threshold=100, service=hidden)
    Alert.objects.create(rule=rule, state="firing", value=180, last_value=180, message="p95 over 100 ms")
    BenchmarkRun.objects.create(plan=BenchmarkPlan.objects.create(name="onco nightly", service=hidden),
                                status="running")  # fmt: skip
    recorder = Recorder(flush_interval=3600)
    for route, count in (("api/onco/<int:id>/", 30), ("api/open/<int:id>/", 5)):
        for _ in range(count):
            recorder.record(route=route, method="GET", status=200, client="app", elapsed_us=1000)
    recorder.flush()


async def _first_snapshot(cookie: bytes) -> dict:
    communicator, connected, _ = await _connect((b"cookie", cookie))
    assert connected
    for _ in range(6):
        message = await communicator.receive_json_from(timeout=3)
        if message["type"] == "snapshot":
            break
    await communicator.disconnect()
    return message["data"]


async def test_each_dashboard_sees_only_the_services_its_user_sees():
    await _services_one_hidden_from_outsiders()
    outsider = await _first_snapshot(await _session_cookie(OPERATORS, username="outsider", is_staff=True))
    member = await _first_snapshot(await _session_cookie(OPERATORS, "Oncology AI", username="member", is_staff=True))

    assert [row["service"] for row in outsider["services"]] == ["open-svc"]
    assert outsider["alerts"] == [] and outsider["work"] == []
    assert {row["service"] for row in member["services"]} == {"open-svc", "onco-triage"}
    assert [alert["rule"] for alert in member["alerts"]] == ["Oncology p95"]
    assert [item["name"] for item in member["work"]] == ["onco nightly"]
    # The overall row of each covers what that user sees (35 and 5 requests). Rates are compared within one
    # snapshot: two snapshots a few seconds apart divide by different windows (the minute's seconds so far).
    member_rps = {row["service"]: row["rps"] for row in member["services"]}
    assert member_rps["onco-triage"] == pytest.approx(6 * member_rps["open-svc"], abs=0.1)
    assert member["overall"]["rps"] == pytest.approx(member_rps["onco-triage"] + member_rps["open-svc"], abs=0.02)
    assert outsider["overall"]["rps"] == pytest.approx(outsider["services"][0]["rps"], abs=0.02)


async def test_malformed_messages_get_an_error_and_leave_the_feed_running():
    from apps.metrics.consumers import snapshot_publisher

    cookie = await _session_cookie(VIEWERS, is_staff=True)
    communicator, connected, _ = await _connect((b"cookie", cookie))
    assert connected
    for bad in ("{not json", "[1, 2]", '"ping"', "[" * 100_000):
        await communicator.send_to(text_data=bad)
        for _ in range(6):
            message = await communicator.receive_json_from(timeout=3)
            if message["type"] == "error":
                break
        assert message == {"type": "error", "detail": "Messages are JSON objects."}
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    for _ in range(6):
        message = await communicator.receive_json_from(timeout=3)
        if message["type"] == "pong":
            break
    assert message["type"] == "pong"  # still served

    await communicator.send_to(bytes_data=b"\x00\x01")  # binary: closed as unsupported, and cleaned up
    for _ in range(6):
        output = await communicator.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 1003
    await communicator.disconnect()  # what the server sends after a close; the consumer did not crash
    assert snapshot_publisher().listeners == {}  # disconnect ran: no publisher left polling for it


async def _next(communicator, kind: str, attempts: int = 12) -> dict:
    """The next output of `kind` ("websocket.close", or a JSON message type), skipping the others."""
    for _ in range(attempts):
        output = await communicator.receive_output(timeout=3)
        if output["type"] == kind:
            return output
        if output["type"] == "websocket.send" and json.loads(output["text"])["type"] == kind:
            return json.loads(output["text"])
    raise AssertionError(f"no {kind} in {attempts} messages")


@database_sync_to_async
def _change_user(username: str, **changes) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.get(username=username)
    for name in changes.pop("groups", ()):
        user.groups.add(Group.objects.get(name=name))
    for field, value in changes.items():
        setattr(user, field, value)
    user.save()


@database_sync_to_async
def _end_sessions() -> None:
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (_end_sessions, 4401),  # signed out (or the session expired) in another tab
        (lambda: _change_user("watcher", is_active=False), 4401),  # deactivated: Django signs it out
        (lambda: _change_user("watcher", is_staff=False), 4403),
    ],
    ids=["signed-out", "deactivated", "no-longer-staff"],
)
async def test_an_open_feed_ends_when_its_viewer_loses_access(monkeypatch, change, code):
    monkeypatch.setattr("apps.metrics.consumers.ACCESS_RECHECK_SECONDS", 0.5)
    communicator, connected, _ = await _connect((b"cookie", await _session_cookie(VIEWERS, username="watcher",
                                                                                 is_staff=True)))  # fmt: skip
    assert connected
    await _next(communicator, "snapshot")
    await change()
    assert (await _next(communicator, "websocket.close"))["code"] == code
    await communicator.disconnect()


async def test_an_open_feed_follows_its_viewers_group_changes(monkeypatch):
    monkeypatch.setattr("apps.metrics.consumers.ACCESS_RECHECK_SECONDS", 0.5)
    await _services_one_hidden_from_outsiders()
    cookie = await _session_cookie(OPERATORS, username="joiner", is_staff=True)
    communicator, connected, _ = await _connect((b"cookie", cookie))
    assert connected
    assert [row["service"] for row in (await _next(communicator, "snapshot"))["data"]["services"]] == ["open-svc"]

    await _change_user("joiner", groups=["Oncology AI"])
    for _ in range(5):  # a recheck within half a second, then the next second's snapshot
        services = {row["service"] for row in (await _next(communicator, "snapshot"))["data"]["services"]}
        if "onco-triage" in services:
            break
    assert services == {"open-svc", "onco-triage"}
    await communicator.disconnect()


async def test_a_channel_layer_that_does_not_answer_closes_the_feed_to_be_retried(settings):
    """Redis down (or timing out) when a dashboard connects: a clean close with 1013 (try again later),
    which the dashboard retries, instead of an ASGI exception that reaches the browser as a bare 1006."""
    from tests.helpers import closed_port

    cookie = await _session_cookie(OPERATORS, is_staff=True)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{closed_port()}/0"]},
        }
    }
    assert await _close_code((b"cookie", cookie)) == 1013


async def _snapshot_to_every_audience(data: dict, *, built: float) -> None:
    """A snapshot event as this process's publisher sends it, built at `built` (time.time())."""
    from apps.metrics.consumers import snapshot_publisher

    publisher = snapshot_publisher()
    for audience in list(publisher.listeners):
        event = {"type": "metrics.snapshot", "at": "2026-12-05T07:00:00+00:00", "data": data, "built": built}
        await get_channel_layer().group_send(publisher.audience_group(audience), event)


async def test_a_snapshot_that_waited_in_a_slow_dashboards_queue_is_dropped_not_sent_as_live():
    """A dashboard whose sends block (a slow link) has its snapshots queued by the channel layer, up to 100:
    once it drains, it was sent a minute of old snapshots, each shown as live. Old ones are dropped now."""
    import time

    communicator, connected, _ = await _connect((b"cookie", await _session_cookie(VIEWERS, is_staff=True)))
    assert connected
    await _next(communicator, "snapshot")  # joined: the publisher knows this dashboard's audience
    await _snapshot_to_every_audience({"backlog": True}, built=time.time() - 30)
    await _snapshot_to_every_audience({"fresh": True}, built=time.time())
    seen = []
    for _ in range(12):
        message = await _next(communicator, "snapshot")
        seen.append(message["data"])
        if message["data"] == {"fresh": True}:
            break
    assert {"fresh": True} in seen
    assert {"backlog": True} not in seen
    await communicator.disconnect()


async def test_a_figure_that_is_not_a_number_reaches_the_browser_as_null_in_strict_json():
    """json.dumps writes NaN bare, which the browser's JSON.parse refuses: the dashboard dropped the frame
    and every later one like it, and kept the last snapshot it could read on screen."""
    import time

    communicator, connected, _ = await _connect((b"cookie", await _session_cookie(VIEWERS, is_staff=True)))
    assert connected
    await _next(communicator, "snapshot")
    data = {"overall": {"rps": float("nan"), "p95_ms": float("inf")}, "services": [{"rps": [float("-inf"), 1.5]}]}
    await _snapshot_to_every_audience(data, built=time.time())
    for _ in range(12):
        output = await communicator.receive_output(timeout=3)
        if output["type"] == "websocket.send" and '"rps"' in output["text"] and "overall" in output["text"]:
            text = output["text"]
            if "1.5" in text:
                break
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert strict["data"] == {"overall": {"rps": None, "p95_ms": None}, "services": [{"rps": [None, 1.5]}]}
    await communicator.disconnect()


async def test_heartbeats_go_on_while_a_slow_database_holds_the_access_recheck(monkeypatch):
    """The dashboard gives up a socket silent for 5 s: a recheck awaited in the heartbeat loop stopped the
    heartbeats for as long as the database took (a hung one: until its timeout), so a sound socket was
    dropped and reconnected over and over."""
    import time

    from apps.metrics import consumers

    recheck = consumers.live_feed_recheck

    def slow_recheck(scope):
        time.sleep(3)  # the database answering slowly
        return recheck(scope)

    monkeypatch.setattr("apps.metrics.consumers.ACCESS_RECHECK_SECONDS", 0.5)
    monkeypatch.setattr("apps.metrics.consumers.live_feed_recheck", slow_recheck)
    communicator, connected, _ = await _connect((b"cookie", await _session_cookie(VIEWERS, is_staff=True)))
    assert connected
    await _next(communicator, "heartbeat")
    await _next(communicator, "heartbeat")  # a recheck has started by now
    started, gaps, last = time.monotonic(), [], time.monotonic()
    while time.monotonic() - started < 4:
        await _next(communicator, "heartbeat")
        gaps.append(time.monotonic() - last)
        last = time.monotonic()
    assert max(gaps) < 2.0, gaps
    await communicator.disconnect()


@database_sync_to_async
def _idle_the_sessions(seconds: float) -> None:
    """Every session's last activity `seconds` ago, as if its user had left the workstation then."""
    import time

    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    from apps.core.middleware import LAST_SEEN_KEY

    for key in Session.objects.values_list("session_key", flat=True):
        store = SessionStore(key)
        store[LAST_SEEN_KEY] = time.time() - seconds
        store.save()


async def test_a_session_idle_past_the_timeout_is_refused_like_a_signed_out_one(settings):
    settings.SESSION_IDLE_SECONDS = 900
    cookie = await _session_cookie(VIEWERS, is_staff=True)
    await _idle_the_sessions(901)
    assert await _close_code((b"cookie", cookie)) == 4401


async def test_an_open_feed_ends_when_its_session_goes_idle(monkeypatch, settings):
    """The feed is no activity: a dashboard left open ends when its session goes idle, as its pages do."""
    settings.SESSION_IDLE_SECONDS = 900
    monkeypatch.setattr("apps.metrics.consumers.ACCESS_RECHECK_SECONDS", 0.5)
    communicator, connected, _ = await _connect((b"cookie", await _session_cookie(VIEWERS, is_staff=True)))
    assert connected
    await _idle_the_sessions(600)
    await _next(communicator, "snapshot")
    for _ in range(3):  # idle but within the timeout: rechecks keep it open
        assert (await _next(communicator, "heartbeat"))["type"] == "heartbeat"
    await _idle_the_sessions(901)
    assert (await _next(communicator, "websocket.close"))["code"] == 4401
    await communicator.disconnect()
