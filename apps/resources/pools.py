"""The connection pools of the processes that serve requests, as the resource monitor sees them.

The monitor runs in a Celery worker, whose own pool is idle between tasks: it says nothing of the pools of
the gunicorn and uvicorn workers that the requests wait on, on other hosts (pods). Each of those publishes
its pool's use every few seconds (the metrics recorder's background thread, off the request path) into one
Redis hash; the monitor reads the fresh entries and judges each host by its busiest pool.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

from django.conf import settings

logger = logging.getLogger(__name__)

KEY = "cp:resources:pools"
FRESH_SECONDS = 60  # an entry older than this is a process that stopped publishing (exited, stuck)
FORGET_SECONDS = 600  # and older than this is deleted when read


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def pool_usage_publish(alias: str = "default") -> dict | None:
    """Publish this process's pool use (in use / maximum; a full pool with requests queued is 100%)."""
    from apps.core.selectors import database_pool_stats

    if not settings.REDIS_URL:
        return None
    stats = database_pool_stats(alias)
    if stats is None or not stats["max_size"]:
        return None
    full = stats["size"] >= stats["max_size"] and stats["waiting"] > 0  # waiting while it grows is not full
    entry = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "at": time.time(),
        "pct": 100.0 if full else round(100 * stats["in_use"] / stats["max_size"], 1),
        "in_use": stats["in_use"],
        "max_size": stats["max_size"],
        "waiting": stats["waiting"],
    }
    try:
        _redis().hset(KEY, f"{entry['host']}:{entry['pid']}", json.dumps(entry))
    except Exception:  # Redis away: the monitor reads this pool as unknown, nothing fails
        logger.debug("pool use not published", exc_info=True)
        return None
    return entry


def pool_usage_by_host(*, now: float | None = None, fresh_seconds: float = FRESH_SECONDS) -> dict[str, dict] | None:
    """The busiest pool of each host that published within `fresh_seconds` ({} when none did); None when Redis
    cannot be read, so that nothing is concluded from its silence."""
    if not settings.REDIS_URL:
        return {}
    now = now or time.time()
    try:
        redis = _redis()
        raw = redis.hgetall(KEY)
        forgotten = [field for field, value in raw.items() if now - json.loads(value)["at"] > FORGET_SECONDS]
        if forgotten:
            redis.hdel(KEY, *forgotten)
    except Exception:  # an unreachable Redis is reported by /readyz, not here
        logger.debug("pool use not read", exc_info=True)
        return None
    busiest: dict[str, dict] = {}
    for value in raw.values():
        entry = json.loads(value)
        if now - entry["at"] <= fresh_seconds and entry["pct"] >= busiest.get(entry["host"], {"pct": -1})["pct"]:
            busiest[entry["host"]] = entry
    return busiest
