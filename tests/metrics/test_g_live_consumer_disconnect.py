"""The live consumer's `disconnect` after its heartbeat task failed on its own (a send to a client already gone)."""

import asyncio

from apps.metrics.consumers import MetricsConsumer


class _Layer:
    def __init__(self) -> None:
        self.discarded: list[tuple[str, str]] = []

    async def group_discard(self, group: str, channel: str) -> None:
        self.discarded.append((group, channel))


class _Publisher:
    def __init__(self) -> None:
        self.left: list[tuple[str, object]] = []

    async def leave(self, channel: str, audience) -> None:
        self.left.append((channel, audience))


async def test_disconnect_leaves_its_groups_when_the_heartbeat_task_had_failed():
    """uvicorn raises ClientDisconnected (an OSError) on a send to a socket that closed; a heartbeat sent between
    the close and the consumer's `disconnect` ended the heartbeat task with it, and `disconnect`, awaiting that
    task, raised it again before it left the groups: the snapshot publisher kept building a snapshot a second
    for a dashboard that had gone, for as long as the process lived."""

    async def failed_heartbeat() -> None:
        raise OSError("ClientDisconnected")

    consumer = MetricsConsumer()
    consumer.channel_name = "specific.test!g"
    consumer.channel_layer = _Layer()
    consumer._audience = frozenset({1})
    consumer._publisher = _Publisher()
    consumer._heartbeat = asyncio.ensure_future(failed_heartbeat())
    await asyncio.sleep(0)  # the task runs, and fails, before the disconnect arrives

    await consumer.disconnect(1006)

    assert consumer.channel_layer.discarded == [("metrics.live", "specific.test!g")]
    assert consumer._publisher.left == [("specific.test!g", frozenset({1}))]
