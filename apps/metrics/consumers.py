"""The live feed: `/ws/metrics/` for signed-in staff."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from channels.generic.websocket import AsyncJsonWebsocketConsumer

# Services broadcast snapshots to this group after they commit; every dashboard is a member.
LIVE_GROUP = "metrics.live"
HEARTBEAT_SECONDS = 1.0

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class MetricsConsumer(AsyncJsonWebsocketConsumer):
    """Sends a heartbeat every second and relays whatever the group broadcasts."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not (user.is_active and user.is_staff):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        await self.accept()
        self._heartbeat = asyncio.create_task(self._send_heartbeats())

    async def disconnect(self, code: int) -> None:
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def receive_json(self, content: dict, **kwargs) -> None:
        # The feed is one-way; a client ping is answered so it can measure round trips.
        if content.get("type") == "ping":
            await self.send_json({"type": "pong", "at": _now()})

    async def metrics_snapshot(self, event: dict) -> None:
        await self.send_json({"type": "snapshot", "at": event.get("at", _now()), "data": event["data"]})

    async def _send_heartbeats(self) -> None:
        sequence = 0
        while True:
            sequence += 1
            await self.send_json({"type": "heartbeat", "seq": sequence, "at": _now()})
            await asyncio.sleep(HEARTBEAT_SECONDS)


def _now() -> str:
    return datetime.now(UTC).isoformat()
