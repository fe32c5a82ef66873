"""The pods that serve requests, as the resource monitor sees them.

The monitor runs in a Celery worker, whose own pool is idle between tasks and whose CPU is not the api's:
it says nothing of the gunicorn and uvicorn pods the requests run on. Each of their processes publishes its
pool's use and its pod's CPU, memory and disk every few seconds (the metrics recorder's background thread,
off the request path) into one Redis hash; the monitor reads the fresh entries, records a sample for each
such pod and judges each by its busiest pool.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from pathlib import Path

import psutil
from django.conf import settings

from apps.resources import cgroup

logger = logging.getLogger(__name__)

KEY = "cp:resources:pools"
FRESH_SECONDS = 60  # an entry older than this is a process that stopped publishing (exited, stuck)
FORGET_SECONDS = 600  # and older than this is deleted when read

# An entry's "at" is Redis's clock when it stored it, and the monitor judges its age by Redis's clock too: the
# pods and the workers are different hosts, and one whose clock was a minute behind had every publish read as
# stale (the pod dropped), one a few minutes ahead as fresh long after it stopped publishing (kept for ever).
# ARGV: the field, then the entry as a JSON object without "at", which is put first in it.
PUBLISH = """
local t = redis.call('TIME')
local at = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local rest = string.sub(ARGV[2], 2)
if rest ~= '}' then rest = ', ' .. rest end
redis.call('HSET', KEYS[1], ARGV[1], '{"at": ' .. at .. rest)
return at
"""


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


# This process's CPU counter at its last publish: (usage in µs or None for psutil, monotonic seconds).
_cpu_before: dict[int, tuple[int | None, float]] = {}


def pod_figures(cgroup_root: Path = cgroup.CGROUP_ROOT) -> dict:
    """This pod's CPU, memory and disk as the monitor samples its own (cgroup limits, else the host), without
    blocking: CPU since this process's previous call, None on its first (psutil's first reading is 0.0, a
    meaningless figure, not an idle pod)."""
    limits = cgroup.limits(cgroup_root)
    now, pid = time.monotonic(), os.getpid()
    figures: dict = {"disk_pct": psutil.disk_usage(str(settings.VAR_DIR)).percent}
    if limits is not None and limits.cpus:
        usage = limits.usage_usec()
        before = _cpu_before.get(pid)
        cpu = None
        # A counter below the last one was reset (the cgroup recreated): no figure this time, as on a first call,
        # rather than a negative one; the next is measured from this count.
        if before is not None and before[0] is not None and now > before[1] and usage >= before[0]:
            cpu = round(min(100.0, 100 * (usage - before[0]) / ((now - before[1]) * 1e6 * limits.cpus)), 1)
        _cpu_before[pid] = (usage, now)
        figures.update(cpu_pct=cpu, cpu_source=limits.source, cpu_limit=round(limits.cpus, 3))
    else:
        cpu = psutil.cpu_percent(interval=None)
        first = pid not in _cpu_before
        _cpu_before[pid] = (None, now)
        figures.update(cpu_pct=None if first else cpu, cpu_source="host", cpu_limit=None)
    if limits is not None and limits.memory_bytes:
        figures.update(memory_pct=cgroup.memory_percent(limits), memory_source=limits.source,
                       memory_limit_bytes=limits.memory_bytes)  # fmt: skip
    else:
        figures.update(memory_pct=psutil.virtual_memory().percent, memory_source="host", memory_limit_bytes=None)
    return figures


def _l1_bytes() -> int | None:
    """What this process's in-memory cache tier holds (the monitor's own process is not the api's)."""
    try:
        from apps.caching.stack import default_stack

        return sum(size for _, size in default_stack().l1.usage().values())
    except Exception:  # a figure for the admin, never a reason not to publish the pool
        logger.debug("L1 size not read", exc_info=True)
        return None


def pool_usage_publish(alias: str = "default") -> dict | None:
    """Publish this process's pool use (in use / maximum; a full pool with requests queued is 100%)."""
    if not settings.REDIS_URL:
        return None
    from apps.core.selectors import database_pool_stats

    stats = database_pool_stats(alias)
    if stats is None or not stats["max_size"]:
        return None
    full = stats["size"] >= stats["max_size"] and stats["waiting"] > 0  # waiting while it grows is not full
    entry = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pct": 100.0 if full else round(100 * stats["in_use"] / stats["max_size"], 1),
        "in_use": stats["in_use"],
        "max_size": stats["max_size"],
        "waiting": stats["waiting"],
        "l1_cache_bytes": _l1_bytes(),
        **pod_figures(),
    }
    try:
        redis = _redis()
        at = redis.eval(PUBLISH, 1, KEY, f"{entry['host']}:{entry['pid']}", json.dumps(entry))
    except Exception:  # Redis away: the monitor reads this pool as unknown, nothing fails
        logger.debug("pool use not published", exc_info=True)
        return None
    return {"at": float(at), **entry}


def pool_usage_by_host(*, now: float | None = None, fresh_seconds: float = FRESH_SECONDS) -> dict[str, dict] | None:
    """The busiest pool of each host that published within `fresh_seconds` ({} when none did); None when Redis
    cannot be read, so that nothing is concluded from its silence. Ages are on Redis's clock, which stamped
    the entries (see PUBLISH); `now` (seconds since the epoch on that clock) is for tests."""
    if not settings.REDIS_URL:
        return {}
    try:
        redis = _redis()
        with redis.pipeline(transaction=True) as pipe:  # one round trip, the clock read with the entries
            (seconds, microseconds), raw = pipe.time().hgetall(KEY).execute()
    except Exception:  # an unreachable Redis is reported by /readyz, not here
        logger.debug("pool use not read", exc_info=True)
        return None
    now = now if now is not None else seconds + microseconds / 1e6
    entries = {field: _parsed(value, field) for field, value in raw.items()}
    # Old entries, and any that cannot be read (one such entry made every read fail, for ever): gone.
    # One stamped far ahead (hand-written, or by an older release on a host whose clock ran ahead) too: it
    # would read as fresh until that time.
    forgotten = [field for field, entry in entries.items() if entry is None or abs(now - entry["at"]) > FORGET_SECONDS]
    if forgotten:
        try:
            redis.hdel(KEY, *forgotten)
        except Exception:  # removed on a later read
            logger.debug("old pool entries not removed", exc_info=True)
    busiest: dict[str, dict] = {}
    l1_bytes: dict[str, int] = {}
    for entry in entries.values():
        if entry is None or not -FORGET_SECONDS <= now - entry["at"] <= fresh_seconds:
            continue
        if entry["pct"] >= busiest.get(entry["host"], {"pct": -1})["pct"]:
            busiest[entry["host"]] = entry
        if isinstance(entry.get("l1_cache_bytes"), int):
            l1_bytes[entry["host"]] = l1_bytes.get(entry["host"], 0) + entry["l1_cache_bytes"]
    for host, entry in busiest.items():  # each process has an L1 of its own: the pod holds their sum
        entry["l1_cache_bytes"] = l1_bytes.get(host)
    return busiest


# What the monitor reads of an entry: the pool's figures it judges and advises on (required), and the pod's
# figures it records a sample of (optional: an older release, or a first publish, lacks them). Each must be a
# finite number: json reads NaN and Infinity, and one such entry (or a pool figure missing) failed every monitor
# run, for every host, until the entry aged out.
REQUIRED_NUMBERS = ("at", "pct", "in_use", "max_size", "waiting")
OPTIONAL_NUMBERS = ("cpu_pct", "memory_pct", "disk_pct", "cpu_limit", "memory_limit_bytes", "l1_cache_bytes")
SOURCES = ("host", "cgroup v1", "cgroup v2")
MAX_INT = 2**63 - 1  # the samples' bigint columns
LATEST_AT = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and -MAX_INT <= value <= MAX_INT
    )


def _entry_fault(entry: object) -> str | None:
    """Why a decoded entry is not one the monitor can use, or None when it is."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    host = entry.get("host")
    if not isinstance(host, str) or not 0 < len(host) <= 120:  # ResourceSample.host
        return "no host name"
    if not isinstance(entry.get("pid"), int) or isinstance(entry.get("pid"), bool):
        return "no process id"
    for name in REQUIRED_NUMBERS:
        if not _is_number(entry.get(name)):
            return f"{name} missing or not a finite number"
    if not 0 <= entry["at"] <= LATEST_AT:  # a time the sample's measured_at cannot hold failed every run
        return "at out of range"
    for name in OPTIONAL_NUMBERS:
        if entry.get(name) is not None and not _is_number(entry[name]):
            return f"{name} not a finite number"
    for name in ("cpu_source", "memory_source"):
        if entry.get(name) is not None and entry[name] not in SOURCES:
            return f"{name} not one of {', '.join(SOURCES)}"
    return None


def _parsed(value: bytes | str, field: bytes | str = "?") -> dict | None:
    """A published entry, or None when it is not one (written by hand, by an older release, or cut short): logged,
    and then deleted by the read."""
    try:
        entry = json.loads(value)
    except (ValueError, TypeError):
        fault = "not JSON"
    else:
        fault = _entry_fault(entry)
    if fault is not None:
        name = field.decode(errors="replace") if isinstance(field, bytes) else field
        logger.warning("Published resource entry %s dropped: %s", name[:200], fault)
        return None
    entry["at"], entry["pct"] = float(entry["at"]), float(entry["pct"])
    return entry
