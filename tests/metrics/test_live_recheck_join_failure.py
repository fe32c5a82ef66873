"""An open feed's viewer moved to other services (a group change) while the channel layer (Redis) failed to
add it to its new audience's group. The recheck had left the old audience and taken the new one as its own
before the join failed: the consumer's `disconnect` then left the new audience, which it had never joined,
taking the count of another dashboard watching those services, and the publisher stopped building their
snapshots: that dashboard's heartbeats went on, so it never reconnected, showing "not live" until reloaded.
The feed is now closed to be retried (1013), having joined nothing."""

import asyncio
import contextlib

from apps.metrics import consumers
from apps.metrics.consumers import MetricsConsumer, SnapshotPublisher

OLD, NEW = frozenset({1}), frozenset({2})


class _Layer:
    def __init__(self) -> None:
        self.failing = False

    async def group_add(self, group: str, channel: str) -> None:
        if self.failing:
            raise ConnectionError("Redis did not answer")

    async def group_discard(self, group: str, channel: str) -> None:
        pass


async def _idle(self) -> None:  # the publisher's loop, without building snapshots from the database
    await asyncio.Event().wait()


async def test_a_join_that_fails_on_a_recheck_leaves_the_other_dashboards_audience(monkeypatch):
    layer = _Layer()
    monkeypatch.setattr(consumers, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(SnapshotPublisher, "_run", _idle)
    monkeypatch.setattr(consumers, "live_feed_recheck", lambda scope: (None, NEW))
    publisher = SnapshotPublisher()
    await publisher.join("other-dashboard", NEW)

    sent: list[dict] = []

    async def base_send(message: dict) -> None:
        sent.append(message)

    consumer = MetricsConsumer()
    consumer.scope, consumer.channel_name, consumer.channel_layer, consumer.base_send = {}, "moved!1", layer, base_send
    await publisher.join(consumer.channel_name, OLD)
    consumer._audience, consumer._publisher = OLD, publisher

    layer.failing = True
    with contextlib.suppress(ConnectionError):  # raised by the old recheck, ending the heartbeats
        await consumer._recheck_access()
    layer.failing = False
    await consumer.disconnect(1006)

    assert publisher.listeners == {NEW: 1}  # the other dashboard still gets its snapshots
    assert publisher.task is not None and not publisher.task.done()
    assert {"type": "websocket.close", "code": consumers.CLOSE_TRY_AGAIN_LATER} in sent
    await publisher.leave("other-dashboard", NEW)
