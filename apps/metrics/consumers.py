"""The live feed: `/ws/metrics/` for signed-in staff."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import time
import weakref
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.core.json_safe import strict_json
from apps.core.middleware import session_idle_expired
from apps.metrics.selectors import live_snapshot

logger = logging.getLogger(__name__)

# Services broadcast events (an alert, a finished run) to this group; every dashboard is a member.
LIVE_GROUP = "metrics.live"
HEARTBEAT_SECONDS = 1.0
SNAPSHOT_SECONDS = 1.0
# A snapshot older than this when its dashboard's turn comes is dropped, not sent: a slow client (a congested
# link, a socket whose sends block) would otherwise be sent the backlog its channel queued, up to its
# capacity of 100 snapshots, a minute and more behind, each looking live. A newer one follows within a second.
SNAPSHOT_MAX_AGE_SECONDS = 3.0
# How often an open feed re-reads its viewer: a sign-out, a deactivated account, a lost permission or a
# group change reaches a dashboard that stays connected within this time.
ACCESS_RECHECK_SECONDS = 10.0


class SnapshotPublisher:
    """Builds the live snapshot once a second, once per process and audience, while any dashboard listens.

    An audience is the set of services its members see (None: all): each gets a snapshot of those
    only, built once however many dashboards share it. It sends to groups of this process's dashboards
    only: with the Redis layer and several live processes, each dashboard still gets one snapshot a
    second, not one from every process.
    """

    def __init__(self) -> None:
        name = re.sub(r"[^A-Za-z0-9.-]", "-", f"{socket.gethostname()}.{os.getpid()}")[:60]
        self.group = f"metrics.snapshot.{name}"
        self.listeners: dict[frozenset[int] | None, int] = {}
        self.task: asyncio.Task | None = None
        self.sent = 0

    def audience_group(self, audience: frozenset[int] | None) -> str:
        if audience is None:
            return f"{self.group}.all"
        return f"{self.group}.{hashlib.sha256(repr(sorted(audience)).encode()).hexdigest()[:16]}"

    async def join(self, channel_name: str, audience: frozenset[int] | None = None) -> None:
        await get_channel_layer().group_add(self.audience_group(audience), channel_name)
        self.listeners[audience] = self.listeners.get(audience, 0) + 1
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def leave(self, channel_name: str, audience: frozenset[int] | None = None) -> None:
        if self.listeners.get(audience, 0) <= 1:
            self.listeners.pop(audience, None)
        else:
            self.listeners[audience] -= 1
        try:
            await get_channel_layer().group_discard(self.audience_group(audience), channel_name)
        except Exception:  # the publisher must still stop when no one listens
            logger.warning("live feed: could not leave a snapshot group", exc_info=True)
        if not self.listeners and self.task is not None:
            task, self.task = self.task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.listeners and (self.task is None or self.task.done()):  # someone joined meanwhile
                self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        layer = get_channel_layer()
        while self.listeners:
            started = time.monotonic()
            self.sent += 1
            for audience in list(self.listeners):
                try:
                    data = await database_sync_to_async(live_snapshot)(visible_services=audience)
                    event = {"type": "metrics.snapshot", "at": _now(), "seq": self.sent, "data": data,
                             "built": time.time()}  # fmt: skip
                    await layer.group_send(self.audience_group(audience), event)
                except Exception:
                    logger.warning("live snapshot failed", exc_info=True)
            await asyncio.sleep(max(0.0, SNAPSHOT_SECONDS - (time.monotonic() - started)))


_publishers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def snapshot_publisher() -> SnapshotPublisher:
    """The publisher of the running event loop (one per process in production; one per test loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _publishers:
        _publishers[loop] = SnapshotPublisher()
    return _publishers[loop]


LIVE_FEED_PERMISSION = "metrics.view_metricpoint"
CLOSE_UNSUPPORTED_DATA = 1003  # RFC 6455: a binary frame on a text-only socket
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455: the channel layer (Redis) did not answer; the dashboard reconnects


class MetricsConsumer(AsyncJsonWebsocketConsumer):
    """Sends a heartbeat and a metrics snapshot every second, and relays whatever the group broadcasts."""

    async def __call__(self, scope, receive, send) -> None:
        # Channels' own loop also reads this consumer's channel from the layer, and fails when Redis is
        # down: once the socket is closed with 1013 for that very reason, that is not a second error.
        try:
            await super().__call__(scope, receive, send)
        except (RedisConnectionError, RedisTimeoutError) as error:
            if getattr(self, "_channel_layer_down", False):
                return
            # Redis restarted, went away or stopped answering under an open feed: raised on, this was an ASGI
            # traceback and a bare 1006; a 1013 is what the dashboard retries with its backoff.
            logger.warning("live feed: the channel layer failed (%s: %s); closed with 1013, the dashboard will retry",
                           type(error).__name__, error)  # fmt: skip
            self._channel_layer_down = True
            with contextlib.suppress(Exception):  # a client already gone, or a socket closed already
                await self.close(code=CLOSE_TRY_AGAIN_LATER)
            await self.disconnect(CLOSE_TRY_AGAIN_LATER)  # no websocket.disconnect comes to a consumer that ended
        except Exception:
            if not getattr(self, "_channel_layer_down", False):
                raise

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        if await database_sync_to_async(_scope_session_idle_expired)(self.scope):
            # Idle past SESSION_IDLE_SECONDS: the next page request signs it out, so the feed is refused now.
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        allowed, self._audience = await database_sync_to_async(live_feed_access)(user)
        if not allowed:
            await self._refuse(CLOSE_FORBIDDEN)
            return
        try:
            await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
            publisher = snapshot_publisher()
            await publisher.join(self.channel_name, self._audience)
            self._publisher = publisher  # only once joined: `disconnect` leaves what was joined
        except Exception:  # a Redis that is down or hung: an ASGI error would leave the browser a bare 1006
            logger.warning("live feed: the channel layer did not answer; the dashboard will retry", exc_info=True)
            self._channel_layer_down = True
            await self._refuse(CLOSE_TRY_AGAIN_LATER)
            return
        await self.accept()
        self._heartbeat = asyncio.create_task(self._send_heartbeats())

    async def disconnect(self, code: int) -> None:
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            heartbeat.cancel()
            # A heartbeat sent after the client went and before this ran ended the task with uvicorn's
            # ClientDisconnected: raised again here, it skipped the leaving below, and the publisher kept
            # building snapshots for a dashboard that had gone.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await heartbeat
        try:
            await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)
        except Exception:  # the layer forgets a channel's memberships after its group expiry anyway
            logger.warning("live feed: could not leave the broadcast group", exc_info=True)
        publisher = getattr(self, "_publisher", None)
        if publisher is not None:
            await publisher.leave(self.channel_name, self._audience)

    async def _refuse(self, code: int) -> None:
        # Accepted first: a close before the handshake is an HTTP 403, and the browser sees only 1006, so
        # the dashboard could not tell "sign in" from "the network dropped" and would retry forever.
        await self.accept()
        await self.close(code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs) -> None:
        """The feed is one-way; a client ping is answered so it can measure round trips. Anything else a
        client sends is answered with an error, never raised: an exception here would end the socket
        without `disconnect`, leaving its group memberships and a snapshot publisher behind."""
        if text_data is None:
            await self.close(code=CLOSE_UNSUPPORTED_DATA)
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_json({"type": "error", "detail": "Messages are JSON objects."})
            return
        if not isinstance(content, dict):
            await self.send_json({"type": "error", "detail": "Messages are JSON objects."})
        elif content.get("type") == "ping":
            await self.send_json({"type": "pong", "at": _now()})

    @classmethod
    async def encode_json(cls, content) -> str:
        """Strict JSON: a NaN or an infinity (json.dumps writes them bare) makes the browser's JSON.parse throw,
        so the dashboard dropped every such frame and kept showing the last one it could read."""
        return strict_json(content)

    async def metrics_snapshot(self, event: dict) -> None:
        # Built by this process's publisher (same clock); broadcasts from elsewhere carry no build time.
        built = event.get("built")
        if built is not None and time.time() - built > SNAPSHOT_MAX_AGE_SECONDS:
            return
        message = {"type": "snapshot", "at": event.get("at", _now()), "data": event["data"]}
        if "seq" in event:
            message["seq"] = event["seq"]
        await self.send_json(message)

    async def _send_heartbeats(self) -> None:
        """A heartbeat each second, whatever the database does: the access recheck runs beside it. Awaited in
        line, a slow or hung database stopped the heartbeats, and the dashboard (which gives up a socket
        silent for 5 s) reconnected over and over though the socket was fine."""
        sequence, checked_at = 0, time.monotonic()
        recheck: asyncio.Task | None = None
        try:
            while True:
                sequence += 1
                await self.send_json({"type": "heartbeat", "seq": sequence, "at": _now()})
                await asyncio.sleep(HEARTBEAT_SECONDS)
                if recheck is not None and recheck.done():
                    if not recheck.result():
                        return  # closed: access lost
                    recheck, checked_at = None, time.monotonic()
                if recheck is None and time.monotonic() - checked_at >= ACCESS_RECHECK_SECONDS:
                    recheck = asyncio.create_task(self._recheck_access())
        finally:
            if recheck is not None and not recheck.done():
                recheck.cancel()

    async def _recheck_access(self) -> bool:
        """Re-read the viewer: closes the feed if it may no longer watch, moves it if what it sees changed."""
        try:
            code, audience = await database_sync_to_async(live_feed_recheck)(self.scope)
        except Exception:  # the database is away: keep the feed, check again next time
            logger.warning("live feed: the viewer's access could not be re-read", exc_info=True)
            return True
        if code is not None:
            await self.close(code=code)
            return False
        if audience != self._audience:
            await self._publisher.leave(self.channel_name, self._audience)
            try:
                await self._publisher.join(self.channel_name, audience)
            except Exception:
                # Joined nothing: `disconnect` must not leave the new audience (another dashboard's count, whose
                # snapshots would stop), nor may the feed stay on the old one (services the viewer no longer sees).
                logger.warning("live feed: the channel layer did not answer; the dashboard will retry", exc_info=True)
                self._publisher = None
                await self.close(code=CLOSE_TRY_AGAIN_LATER)
                return False
            self._audience = audience
        return True


def live_feed_access(user) -> tuple[bool, frozenset[int] | None]:
    """Whether the user may watch the feed (the permission the metrics series asks for) and the services
    it shows them (None: all)."""
    from apps.services.selectors import visible_service_ids

    if not (user.is_active and user.is_staff and user.has_perm(LIVE_FEED_PERMISSION)):
        return False, None
    return True, visible_service_ids(user)


def _scope_session_idle_expired(scope: dict) -> bool:
    """Whether the connecting socket's session has gone idle past SESSION_IDLE_SECONDS (a database read)."""
    session = scope.get("session")
    return session is not None and bool(session.session_key) and session_idle_expired(session)


def live_feed_recheck(scope: dict) -> tuple[int | None, frozenset[int] | None]:
    """An open feed's viewer read afresh: (a close code, None) if it may no longer watch, else (None, the
    services it sees now). The session is read from its store again, so signing out (or a password
    change, which ends the other sessions) ends the feed too, as it ends the viewer's other pages."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.conf import settings
    from django.contrib.auth import get_user, get_user_model

    connected = scope["user"]
    session = scope.get("session")
    if session is not None and session.session_key:
        store = import_module(settings.SESSION_ENGINE).SessionStore(session.session_key)
        user = get_user(SimpleNamespace(session=store))
    else:  # a scope built without a session (a test, a custom stack): the account itself
        user = get_user_model().objects.filter(pk=connected.pk).first()
    if user is None or not user.is_authenticated or user.pk != connected.pk:
        return CLOSE_UNAUTHENTICATED, None
    if session is not None and session.session_key and session_idle_expired(store):
        # Idle past SESSION_IDLE_SECONDS while watching: the feed is no activity, so it ends as a sign-out does.
        return CLOSE_UNAUTHENTICATED, None
    allowed, audience = live_feed_access(user)
    return (None, audience) if allowed else (CLOSE_FORBIDDEN, None)


def _now() -> str:
    return datetime.now(UTC).isoformat()
