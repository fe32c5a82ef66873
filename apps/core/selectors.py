"""Readiness of every dependency, each check timed and bounded so /readyz answers quickly."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import connections

OK = "ok"
DEGRADED = "degraded"
ERROR = "error"

WORKER_HEARTBEAT_CACHE_KEY = "core:worker-heartbeat"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("name")
        if not data["detail"]:
            data.pop("detail")
        return data


def one_or_none(queryset):
    """The single row of a lookup, or None: LIMIT 1 without the ORDER BY that `.first()` adds."""
    return next(iter(queryset[:1]), None)


def _timed(name: str, probe: Callable[[], tuple[str, str]]) -> CheckResult:
    started = time.perf_counter()
    try:
        status, detail = probe()
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is a failed check
        status, detail = ERROR, f"{type(exc).__name__}: {exc}"[:300]
    return CheckResult(name, status, round((time.perf_counter() - started) * 1000, 2), detail)


def database_pool_stats(alias: str = "default") -> dict | None:
    """This process's connection pool: size, idle, waiting and utilization (None without a pool)."""
    pool = getattr(connections[alias], "pool", None)
    if pool is None:
        return None
    stats = pool.get_stats()
    size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
    return {
        "size": size,
        "available": available,
        "in_use": size - available,
        "waiting": stats.get("requests_waiting", 0),
        "min_size": pool.min_size,
        "max_size": pool.max_size,
        "utilization": round((size - available) / pool.max_size, 3) if pool.max_size else 0.0,
    }


def _probe_database() -> tuple[str, str]:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    pool = database_pool_stats()
    if pool is None:
        return OK, ""
    return OK, f"pool {pool['in_use']}/{pool['max_size']} in use, {pool['waiting']} waiting"


def _probe_cache() -> tuple[str, str]:
    from apps.caching.stack import default_stack

    breaker = default_stack().breaker.state
    if breaker != "closed":
        return DEGRADED, f"Redis circuit {breaker}: the cache serves from memory and the database"
    key = f"core:readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    value = cache.get(key)
    cache.delete(key)
    if value != "1":
        return ERROR, "value written was not read back"
    return OK, ""


def _probe_broker() -> tuple[str, str]:
    from controlplane.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    return OK, ""


def _probe_channel_layer() -> tuple[str, str]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return ERROR, "no channel layer configured"

    async def round_trip() -> bool:
        import asyncio

        channel = await layer.new_channel("readyz.")
        await layer.send(channel, {"type": "readyz.ping"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=2)
        return message.get("type") == "readyz.ping"

    if not async_to_sync(round_trip)():
        return ERROR, "message sent was not received"
    return OK, ""


def worker_ping_cache_key(nonce: str) -> str:
    return f"core:worker-ping:{nonce}"


def worker_ping_answer(nonce: str) -> dict | None:
    """The heartbeat a worker recorded for one ping, once it ran."""
    return cache.get(worker_ping_cache_key(nonce))


def worker_heartbeat() -> dict | None:
    """The last heartbeat a Celery worker recorded, or None when none has run yet."""
    return cache.get(WORKER_HEARTBEAT_CACHE_KEY)


def _probe_worker() -> tuple[str, str]:
    beat = worker_heartbeat()
    if not beat:
        return ERROR, "no worker heartbeat recorded yet"
    age = (datetime.now(UTC) - datetime.fromisoformat(beat["at"])).total_seconds()
    detail = f"last heartbeat {age:.1f}s ago from {beat.get('hostname', '?')}"
    if age > settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS:
        return ERROR, detail
    if age > 3 * settings.WORKER_HEARTBEAT_INTERVAL_SECONDS:
        return DEGRADED, detail
    return OK, detail


def _probe_inference() -> tuple[str, str]:
    """This process's preload of the inference models: not ready while loading (add "inference" to
    READYZ_REQUIRED to keep traffic away until its models are in memory). A deployment that failed is
    degraded, not down: it loads (or fails) on its first call, and must not keep the pod unready."""
    from apps.inference.serving import preload

    return {"loading": ERROR, "failed": DEGRADED}.get(preload.state, OK), preload.detail


CHECKS: dict[str, Callable[[], tuple[str, str]]] = {
    "database": _probe_database,
    "cache": _probe_cache,
    "broker": _probe_broker,
    "channel_layer": _probe_channel_layer,
    "worker": _probe_worker,
    "inference": _probe_inference,
}


def readiness_report() -> tuple[str, dict[str, dict]]:
    """Run every check; the overall status is error only when a required check failed."""
    results = [_timed(name, probe) for name, probe in CHECKS.items()]
    required = set(settings.READYZ_REQUIRED)
    if any(r.status == ERROR and r.name in required for r in results):
        overall = ERROR
    elif all(r.status == OK for r in results):
        overall = OK
    else:
        overall = DEGRADED
    return overall, {r.name: r.as_dict() for r in results}
