"""Readiness of every dependency, each check timed and bounded so /readyz answers quickly."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.db.models import Q

OK = "ok"
DEGRADED = "degraded"
ERROR = "error"

WORKER_HEARTBEAT_CACHE_KEY = "core:worker-heartbeat"

# The checks run at once, and the report answers by its deadline whatever a hung dependency does:
# the Kubernetes probe gives up after 3 s (deploy/k8s) and would mark the pod unready for an optional
# dependency. A check without an answer by then is an error, required or optional as usual.
CHECK_TIMEOUT_SECONDS = 1.0  # a check's own bound, where its client takes none (the channel layer)
REPORT_DEADLINE_SECONDS = 2.0
# A check still running from an earlier report is not started again (one thread per check at most),
# unless it has been running this long: then its thread is left behind and a new one tries.
STUCK_CHECK_SECONDS = 30.0
# Run in the caller's thread, bounded by their own timeout. Under ASGI the channel layer's round trip
# must use the server's event loop: channels_redis refuses receive() from a second loop while the live
# feed's consumers receive on the first.
IN_CALLERS_THREAD = frozenset({"channel_layer"})


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
    """This process's connection pool: size, idle, waiting and utilization (None without a pool). A pool not
    open (not yet: Django opens it on the first connection; or no longer) holds nothing: psycopg_pool counts
    the min_size connections it would open as taken, so an unopened fixed-size pool read 100% in /readyz, the
    optimizer's findings and the resource monitor (which then advised raising DB_POOL_MAX_SIZE)."""
    pool = getattr(connections[alias], "pool", None)
    if pool is None:
        return None
    stats = {} if pool.closed else pool.get_stats()
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
    """One connection to the broker, tried again at once (the next of its failover URLs, if any) but never after
    a pause: kombu sleeps `interval_start` (2 s) between tries, and a refused port read in /readyz as "no answer
    within 2s" rather than why (connection refused)."""
    from controlplane.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    return OK, ""


def _probe_channel_layer() -> tuple[str, str]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return ERROR, "no channel layer configured"

    async def round_trip() -> bool:
        # The consumers' own prefix: channels_redis keys a process's channels by it, and a consumer
        # receiving holds the receive lock blocked on its key for up to 5 s; on the same key it hands
        # this message over at once.
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "readyz.ping"})
        message = await layer.receive(channel)
        return message.get("type") == "readyz.ping"

    async def bounded() -> bool:
        # channels_redis sets no socket timeout: a hung Redis would hold the send or receive for good.
        return await asyncio.wait_for(round_trip(), timeout=CHECK_TIMEOUT_SECONDS)

    try:
        received = async_to_sync(bounded)()
    except TimeoutError:
        return ERROR, f"no round trip within {CHECK_TIMEOUT_SECONDS:g}s"
    if not received:
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


def default_queue() -> str:
    """The queue beat's heartbeat and the short periodic tasks go to (the Procfile's and the cluster's `worker`)."""
    return settings.CELERY_TASK_DEFAULT_QUEUE


def long_queues() -> tuple[str, ...]:
    """Every other queue the tasks are routed to: benchmarks and inference (the Procfile's and the cluster's
    `longworker`: benchmark runs, model profiling, optimizer steps, forecasts)."""
    return tuple(queue.name for queue in settings.CELERY_TASK_QUEUES if queue.name != default_queue())


def queue_heartbeat_cache_key(queue: str) -> str:
    """Where the heartbeat a worker took from `queue` is kept: the default queue's is the worker heartbeat."""
    return WORKER_HEARTBEAT_CACHE_KEY if queue == default_queue() else f"{WORKER_HEARTBEAT_CACHE_KEY}:{queue}"


# A long worker publishes a beacon per long queue it consumes every 10 s (controlplane/celery.py's
# LongWorkerBeacon): alive, and how many of its slots hold work. Older than this (six missed beacons) it says
# nothing: the worker is gone, or its event loop is stuck.
LONG_WORKER_BEACON_FRESH_SECONDS = 60


def long_worker_beacon_cache_key(queue: str) -> str:
    """Where the one beacon of the worker consuming the long `queue` was kept by a worker of an older release
    (read still, during a rolling upgrade): every replica wrote it, so a busy one and an idle one overwrote each
    other and the check flipped between their states every few seconds."""
    return f"{WORKER_HEARTBEAT_CACHE_KEY}:{queue}:beacon"


def long_worker_beacons_cache_key(queue: str) -> str:
    """Where the beacons of every worker consuming the long `queue` are kept, one per worker (hostname and pid):
    {worker: beacon} (apps/core/services.py's long_worker_beacon_record)."""
    return f"{WORKER_HEARTBEAT_CACHE_KEY}:{queue}:beacons"


def relayed_heartbeat_pending_cache_key(queue: str) -> str:
    """Where the heartbeat relayed to the long `queue` and not yet taken is noted (apps/core/services.py's
    relayed_heartbeat_claim): while it is, no other copy is sent there."""
    return f"{WORKER_HEARTBEAT_CACHE_KEY}:{queue}:relayed"


def long_worker_beacons(queue: str, now: datetime | None = None) -> list[dict]:
    """The fresh beacons of the workers consuming the long `queue` (slots, busy, busy_since, hostname each)."""
    keys = [long_worker_beacons_cache_key(queue), long_worker_beacon_cache_key(queue)]
    found = cache.get_many(keys)
    return _fresh_beacons(found.get(keys[0]), found.get(keys[1]), now or datetime.now(UTC))


def long_worker_busy_bound_seconds() -> float:
    """How long every slot of a long worker may hold work started that long ago before /readyz doubts it: the
    longest a single piece of long work may run (a benchmark run's 24 h at most, an optimizer run's deadline),
    plus an hour for its warm-up, profiling and report. Past it the work is stuck, not long."""
    from apps.benchmarks.models import MAX_SECONDS as BENCHMARK_MAX_SECONDS

    return max(BENCHMARK_MAX_SECONDS, settings.OPTIMIZER_RUN_DEADLINE_SECONDS) + 3600


WORKER_HEARTBEAT_SCHEDULE = "Worker heartbeat"  # beat's schedule of core.heartbeat (apps/core/migrations/0001)
WORKER_HEARTBEAT_TASK = "core.heartbeat"
# How long this process goes by the heartbeat schedule it read before reading it again: /readyz and every
# live frame judge the heartbeat, and a retime is seen within this.
HEARTBEAT_INTERVAL_CACHE_SECONDS = 30.0
# (interval or a crontab's longest gap in seconds, the crontab or None, when read: time.monotonic())
_heartbeat_interval: tuple[float, object | None, float] | None = None
_heartbeat_interval_lock = threading.Lock()
# A crontab heartbeat reads "down" once this many of its runs after it were due (and the grace passed).
HEARTBEAT_CRONTAB_DOWN_RUNS = 3
# How long the schedule read waits for a connection from the pool: with PostgreSQL down it waited the pool's
# timeout (DB_POOL_TIMEOUT, 10 s), so /readyz's worker check (which judges by the cache, not the database)
# read "no answer within 2s", then "no answer yet from the previous check", for a healthy worker.
HEARTBEAT_SCHEDULE_DB_WAIT_SECONDS = 0.5
# Whether the last read of the heartbeat schedule failed (the database away): the worker check says so.
_heartbeat_schedule_unread = False


def _connection_within(seconds: float, alias: str = "default") -> None:
    """Raise (psycopg_pool.PoolTimeout) unless the pool lends a connection within `seconds`; nothing where this
    thread holds a connection already or there is no pool (the query then takes its own)."""
    connection = connections[alias]
    pool = getattr(connection, "pool", None)
    if pool is None or connection.connection is not None:
        return
    pool.open()  # what Django does on the first connection; it connects in the background
    pool.putconn(pool.getconn(timeout=seconds))


def _heartbeat_schedule() -> tuple[float, object | None]:
    """(interval in seconds, crontab or None) of the heartbeat schedule (found by its task), cached per process
    for HEARTBEAT_INTERVAL_CACHE_SECONDS: one query per read."""
    global _heartbeat_interval, _heartbeat_schedule_unread

    read_at = time.monotonic()
    with _heartbeat_interval_lock:
        cached = _heartbeat_interval
        if cached is not None and read_at - cached[2] < HEARTBEAT_INTERVAL_CACHE_SECONDS:
            return cached[0], cached[1]
        fallback = cached[:2] if cached is not None else (float(settings.WORKER_HEARTBEAT_INTERVAL_SECONDS), None)
        try:
            _connection_within(HEARTBEAT_SCHEDULE_DB_WAIT_SECONDS)
            gap, cron = _heartbeat_schedule_gap_and_crontab()
        except Exception:  # noqa: BLE001 - the database is away: judge by what was known
            seconds, cron = fallback
            _heartbeat_schedule_unread = True
        else:
            _heartbeat_schedule_unread = False
            seconds = gap.total_seconds() if gap is not None and gap.total_seconds() > 0 else None
            if seconds is None:  # nothing to go by (removed, solar, clocked, a crontab of a single day)
                seconds, cron = float(settings.WORKER_HEARTBEAT_INTERVAL_SECONDS), None
        _heartbeat_interval = (seconds, cron, read_at)
        return seconds, cron


def _heartbeat_schedule_gap_and_crontab():
    """schedules.gap_and_crontab of beat's schedule of the heartbeat task (WORKER_HEARTBEAT_TASK), found by its
    task in one query: an enabled one first, the migrations' WORKER_HEARTBEAT_SCHEDULE among several. Found by
    that name alone, a renamed schedule (retimed to 120 s) was judged by the 10 s setting: /readyz said the
    healthy worker was down."""
    from django_celery_beat.models import PeriodicTask

    from apps.core.schedules import gap_and_crontab

    row = (
        PeriodicTask.objects.filter(task=WORKER_HEARTBEAT_TASK)
        .annotate(ours=Q(name=WORKER_HEARTBEAT_SCHEDULE))
        .select_related("interval", "crontab")
        .order_by("-enabled", "-ours", "pk")
        .first()
    )
    return (None, None) if row is None else gap_and_crontab(row)


def heartbeat_interval_seconds() -> float:
    """How often beat sends the heartbeat: its schedule's interval as an admin left it (cached per process for
    HEARTBEAT_INTERVAL_CACHE_SECONDS; a crontab's longest gap between two runs: schedules.gap_and_crontab), or
    WORKER_HEARTBEAT_INTERVAL_SECONDS when there is none to go by (removed, solar, clocked) or the database
    cannot say (the last interval read, if any, is kept)."""
    return _heartbeat_schedule()[0]


def forget_heartbeat_interval() -> None:
    """Read the heartbeat schedule again on the next judgement (tests; an admin's retime)."""
    global _heartbeat_interval
    with _heartbeat_interval_lock:
        _heartbeat_interval = None


def heartbeat_thresholds(at: datetime | None = None) -> tuple[float, float]:
    """(late after, down after): the age in seconds at which a heartbeat stamped `at` reads late, then down.

    An interval schedule: late past three intervals, down past WORKER_HEARTBEAT_MAX_AGE_SECONDS scaled as the
    schedule was retimed from WORKER_HEARTBEAT_INTERVAL_SECONDS, never below it (by the settings alone, a
    schedule retimed to 120 s read "down" between every two heartbeats of a healthy worker).
    A crontab: by the runs due after `at` (celery's own next-run times in the crontab's timezone), late once the
    first is overdue by the grace (three settings intervals), down once the HEARTBEAT_CRONTAB_DOWN_RUNS-th is.
    Its longest gap alone hid a dead worker on `0 9-17 * * 1-5` for 8 days (late) and 16 (down); this way a
    Friday 17:00 heartbeat is on time all weekend and late at 09:01 on Monday. Without `at` (or if celery cannot
    say), the most a crontab heartbeat can wait: its longest gap, and that many of them, plus the grace."""
    interval, cron = _heartbeat_schedule()
    grace = 3.0 * settings.WORKER_HEARTBEAT_INTERVAL_SECONDS
    if cron is not None:
        if at is not None:
            from apps.core.schedules import crontab_runs_after

            try:
                runs = crontab_runs_after(cron, at, HEARTBEAT_CRONTAB_DOWN_RUNS)
            except Exception:  # noqa: BLE001 - celery cannot say when it runs: go by the longest gap
                runs = None
            if runs:
                return ((runs[0] - at).total_seconds() + grace, (runs[-1] - at).total_seconds() + grace)
        return interval + grace, HEARTBEAT_CRONTAB_DOWN_RUNS * interval + grace
    max_age = settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
    return 3 * interval, max(float(max_age), max_age * interval / settings.WORKER_HEARTBEAT_INTERVAL_SECONDS)


def probe_worker(*, now: datetime | None = None) -> dict:
    """Whether a Celery worker is alive, from the heartbeat the one that last ran beat's `core.heartbeat` task
    recorded in the shared cache (`manage.py ping_worker` sends one at will): what /readyz and the dashboard's
    Overview show. A worker paused or stopped records none, and only the heartbeat's age tells: it read as
    nothing at all on the Overview.

    `state`: "ok"; "late" (not sent when due: heartbeat_thresholds); "down" (past `max_age_seconds`, this
    heartbeat's down threshold by the heartbeat schedule); "never" (none kept: a heartbeat is kept a day past
    the most its down threshold can be); "unknown" (the cache could not be read, or its heartbeat: no time with
    a timezone, or one more than WORKER_HEARTBEAT_CLOCK_SKEW_SECONDS ahead of this host).
    `alive`: ok or late (None when unknown). The age is by this host's clock against the worker's stamp,
    never below 0."""
    probe = {"alive": None, "state": "unknown", "last_heartbeat_at": None, "last_heartbeat_age_seconds": None,
             "hostname": None, "max_age_seconds": None}  # fmt: skip
    try:
        beat = worker_heartbeat()
    except Exception:  # noqa: BLE001 - the cache is away: the worker's state is not known, not "down"
        return {**probe, "max_age_seconds": heartbeat_thresholds()[1]}
    state = _worker_state(beat, now or datetime.now(UTC))
    max_age = state.pop("down_after", None)
    return {**probe, "max_age_seconds": heartbeat_thresholds()[1] if max_age is None else max_age, **state}


WORKER_HEARTBEAT_CLOCK_SKEW_SECONDS = 60  # a stamp this far ahead of this host's clock is not believed


def _worker_state(beat: object, now: datetime) -> dict:
    """The worker's state by its heartbeat and heartbeat_thresholds(its stamp); "down_after" is that down
    threshold. A heartbeat that cannot be read (not a dict, no timezone, not a time) or stamped more than a
    clock skew in the future says nothing about the worker: "unknown". One such value raised, and every
    dashboard load and live frame failed with it; a stamp from the future read as "ok" for as long as it stayed
    ahead."""
    if not beat or (isinstance(beat, dict) and "at" not in beat):
        return {"alive": False, "state": "never"}
    try:
        at = datetime.fromisoformat(beat["at"])
        age = (now - at).total_seconds()  # a naive stamp raises TypeError here
    except (TypeError, ValueError, KeyError, OverflowError):
        return {"alive": None, "state": "unknown"}
    if age < -WORKER_HEARTBEAT_CLOCK_SKEW_SECONDS:
        return {"alive": None, "state": "unknown", "last_heartbeat_at": at.isoformat(),
                "hostname": _hostname(beat)}  # fmt: skip
    age = max(0.0, age)
    late_after, down_after = heartbeat_thresholds(at)
    if age > down_after:
        state = "down"
    elif age > late_after:
        state = "late"
    else:
        state = "ok"
    return {"alive": state != "down", "state": state, "last_heartbeat_at": at.isoformat(),
            "last_heartbeat_age_seconds": round(age, 1), "hostname": _hostname(beat),
            "down_after": round(down_after, 1)}  # fmt: skip


def _hostname(beat: dict) -> str | None:
    hostname = beat.get("hostname")
    return hostname if isinstance(hostname, str) else None


def _probe_worker(now: datetime | None = None) -> tuple[str, str]:
    state = _worker_state(worker_heartbeat(), now or datetime.now(UTC))  # a cache error fails the check, saying why
    if state["state"] == "never":
        return ERROR, "no worker heartbeat recorded yet"
    if state["state"] == "unknown":  # unreadable, or stamped ahead of this host's clock
        return DEGRADED, f"worker heartbeat unreadable or in the future: {state.get('last_heartbeat_at') or '?'}"
    detail = f"last heartbeat {state['last_heartbeat_age_seconds']:.1f}s ago from {state['hostname'] or '?'}"
    if _heartbeat_schedule_unread:
        detail += f"; heartbeat schedule not read (database unavailable): judged by {heartbeat_interval_seconds():g}s"
    return {"down": ERROR, "late": DEGRADED}.get(state["state"], OK), detail


def _long_worker_cache_keys(queues: tuple[str, ...]) -> list[str]:
    """What the long worker check reads: each long queue's relayed heartbeat and beacons, and `default`'s."""
    keys = [queue_heartbeat_cache_key(queue) for queue in queues]
    keys += [long_worker_beacons_cache_key(queue) for queue in queues]
    keys += [long_worker_beacon_cache_key(queue) for queue in queues]
    keys.append(queue_heartbeat_cache_key(default_queue()))
    return keys


def _probe_long_worker(now: datetime | None = None, found: dict | None = None) -> tuple[str, str]:
    """Whether a worker takes the long queues' work, by the heartbeat each of them last carried to one
    (core.heartbeat on `default` relays one to each: apps/core/tasks.py), judged as the worker's. The worker
    check reads only `default`'s heartbeat: with the long worker gone, /readyz said ok while benchmark runs,
    optimizer steps and forecasts waited in their queues for ever.

    A long worker whose every slot holds long work takes no heartbeat until one ends (a day-long benchmark
    run): a queue whose heartbeat is stale is judged by the fresh beacons of its workers (LongWorkerBeacon, one
    per replica): ok ("busy") while every one says every slot is busy, degraded when one has a free slot (it
    should have taken the heartbeat) or has held all its slots past long_worker_busy_bound_seconds (stuck).
    With the default worker's own heartbeat stale too, nothing was relayed: a fresh beacon reads ok ("not
    relayed"). Never an error: the api still serves."""
    queues = long_queues()
    if found is None:  # `found`: the caller's one read of _long_worker_cache_keys
        found = cache.get_many(_long_worker_cache_keys(queues))  # a cache error fails the check
    at = now or datetime.now(UTC)
    fine, busy, problems, gone, unrelayed = [], [], [], [], []
    # The default worker relays the heartbeats: with its own heartbeat stale, a stale relayed one blames no
    # long worker whose beacon is fresh (pausing only the default worker read "gone", and an operator restarted
    # a healthy long worker, losing its work). The worker check reports the default worker.
    relay = _worker_state(found.get(queue_heartbeat_cache_key(default_queue())), at)
    relay_said = {"never": "missing", "unknown": "unreadable"}.get(relay["state"], relay["state"])
    for queue in queues:
        state = _worker_state(found.get(queue_heartbeat_cache_key(queue)), at)
        if state["state"] == "ok":
            fine.append(f"{queue} {state['last_heartbeat_age_seconds']:.1f}s ago from {state['hostname'] or '?'}")
            continue
        if state["state"] == "never":
            heartbeat = f"{queue}: no heartbeat taken yet"
        elif state["state"] == "unknown":
            heartbeat = f"{queue}: heartbeat unreadable or in the future: {state.get('last_heartbeat_at') or '?'}"
        else:
            heartbeat = (
                f"{queue} {state['last_heartbeat_age_seconds']:.1f}s ago from {state['hostname'] or '?'} "
                f"({state['state']})"
            )
        beacons = _fresh_beacons(
            found.get(long_worker_beacons_cache_key(queue)), found.get(long_worker_beacon_cache_key(queue)), at
        )
        free = [beacon for beacon in beacons if beacon["busy"] < beacon["slots"]]
        full = [beacon for beacon in beacons if beacon["busy"] >= beacon["slots"]]
        bound = long_worker_busy_bound_seconds() if full else 0.0
        stuck = [b for b in full if b["busy_since"] is not None and (at - b["busy_since"]).total_seconds() > bound]
        held = "; ".join(
            f"all {b['slots']} slots of {b['hostname']} hold long work since {b['busy_since'] or '?'}"
            + (", longer than any long work runs: stuck?" if b in stuck else "")
            for b in full
        )
        if not beacons:
            gone.append(heartbeat)
        elif relay["state"] != "ok" and state["state"] != "unknown" and not stuck:
            alive = ", ".join(f"{b['hostname']} ({b['busy']} of {b['slots']} slots busy)" for b in beacons)
            worker_s = "its worker" if len(beacons) == 1 else "its workers"
            unrelayed.append(
                f"{heartbeat}: not relayed, the default worker's heartbeat is {relay_said}; {worker_s} {alive} "
                f"{'is' if len(beacons) == 1 else 'are'} alive"
            )
        elif free:
            idle = ", ".join(f"{b['hostname']} is alive with {b['busy']} of {b['slots']} slots busy" for b in free)
            worker_s = "its worker" if len(beacons) == 1 else "its workers:"
            problems.append(f"{heartbeat}; {worker_s} {idle} but takes no heartbeat" + (f"; {held}" if held else ""))
        elif stuck:
            problems.append(f"{heartbeat}; {held}")
        else:
            busy.append(f"{queue}: {held} (heartbeat {state['state']})")
    if not problems and not gone:
        detail = "last heartbeat: " + ", ".join(fine) if fine else ""
        if busy:
            detail += ("; " if detail else "") + "busy: " + "; ".join(busy)
        if unrelayed:
            detail += ("; " if detail else "") + "; ".join(unrelayed)
        return OK, detail
    parts = []
    if gone:
        parts.append(
            f"long queues whose worker is gone (no heartbeat taken, no beacon in {LONG_WORKER_BEACON_FRESH_SECONDS}"
            f" s): {'; '.join(gone)}"
        )
    if problems:
        parts.append(f"long queues whose heartbeat no worker took: {'; '.join(problems)}")
    detail = ". ".join(parts) + ". Benchmark runs, optimizer steps and forecasts wait"
    ok_parts = [*fine, *(f"busy: {item}" for item in busy), *unrelayed]
    return DEGRADED, detail + (f" (ok: {', '.join(ok_parts)})" if ok_parts else "")


def probe_long_worker(*, now: datetime | None = None) -> dict:
    """The long worker as the dashboard's Overview shows it beside the default worker (which alone it showed:
    a gone or stuck long worker, benchmark runs waiting for ever, read as "Worker: alive"): /readyz's
    long_worker check, and the workers whose beacons are fresh (hostname, slots, busy). `status` "unknown"
    when the cache could not be read."""
    at = now or datetime.now(UTC)
    queues = long_queues()
    try:  # one read for the status and the workers listed, so the two agree (and one round trip a frame)
        found = cache.get_many(_long_worker_cache_keys(queues))
    except Exception:  # noqa: BLE001 - the cache is away: the long worker's state is not known
        return {"status": "unknown", "detail": "the cache could not be read", "workers": []}
    status, detail = _probe_long_worker(at, found)
    workers = {}
    for queue in queues:
        legacy = found.get(long_worker_beacon_cache_key(queue))
        for beacon in _fresh_beacons(found.get(long_worker_beacons_cache_key(queue)), legacy, at):
            workers.setdefault(beacon["worker"], beacon)
    shown = [{key: beacon[key] for key in ("hostname", "slots", "busy")} for beacon in workers.values()]
    return {"status": status, "detail": detail, "workers": sorted(shown, key=lambda beacon: beacon["hostname"])}


def _fresh_beacons(beacons: object, legacy: object, now: datetime) -> list[dict]:
    """The fresh, readable beacons of the workers of one long queue: {worker: beacon} as the workers write them,
    and the one beacon an older release's worker writes (`legacy`), by worker."""
    entries = list(beacons.items()) if isinstance(beacons, dict) else []
    entries.append(("", legacy))
    fresh = {}
    for worker, beacon in entries:
        state = _beacon_state(beacon, now)
        if state is not None:
            fresh.setdefault(worker or state["hostname"], {**state, "worker": worker or state["hostname"]})
    return sorted(fresh.values(), key=lambda beacon: (beacon["hostname"], beacon["worker"]))


def _beacon_state(beacon: object, now: datetime) -> dict | None:
    """A long worker's beacon, read: None when missing, unreadable, stale or from the future."""
    if not isinstance(beacon, dict):
        return None
    try:
        at = datetime.fromisoformat(beacon["at"])
        age = (now - at).total_seconds()
        slots, busy = int(beacon["slots"]), int(beacon["busy"])
        since = datetime.fromisoformat(beacon["busy_since"]) if beacon.get("busy_since") else None
        if since is not None:
            (now - since).total_seconds()  # a naive stamp raises TypeError here
    except (TypeError, ValueError, KeyError, OverflowError):
        return None
    if not -WORKER_HEARTBEAT_CLOCK_SKEW_SECONDS <= age <= LONG_WORKER_BEACON_FRESH_SECONDS or slots < 1:
        return None
    return {"slots": slots, "busy": busy, "busy_since": since, "hostname": _hostname(beacon) or "?"}


def _probe_inference() -> tuple[str, str]:
    """This process's preload of the inference models: not ready while loading (add "inference" to
    READYZ_REQUIRED to keep traffic away until its models are in memory). A deployment that failed is
    degraded, not down: it loads (or fails) on its first call, and must not keep the pod unready."""
    from apps.inference.serving import server_preload

    state, detail = server_preload()  # every worker of this server: any of them may take the next request
    return {"loading": ERROR, "failed": DEGRADED}.get(state, OK), detail


def _probe_audit_partitions() -> tuple[str, str]:
    """The audit trail's monthly partitions: degraded while the daily task's last run gave up (a long reader of
    the trail in its way every retry): once they run out, records go to the default partition and those
    months never get one of their own. Never an error: the trail is still written."""
    from apps.audit.selectors import audit_partitions_problem

    problem = audit_partitions_problem()
    return (DEGRADED, problem) if problem else (OK, "")


CHECKS: dict[str, Callable[[], tuple[str, str]]] = {
    "database": _probe_database,
    "cache": _probe_cache,
    "broker": _probe_broker,
    "channel_layer": _probe_channel_layer,
    "worker": _probe_worker,
    "long_worker": _probe_long_worker,
    "inference": _probe_inference,
    "audit_partitions": _probe_audit_partitions,
}


_running: dict[str, tuple[object, float]] = {}  # check name -> (its run, when it started)
_running_lock = threading.Lock()


def _run_check(name: str, probe: Callable[[], tuple[str, str]], run: object, box: list[CheckResult]) -> None:
    try:
        box.append(_timed(name, probe))
    finally:
        connections.close_all()  # this thread's database connection goes back to the pool
        with _running_lock:
            if _running.get(name, (None,))[0] is run:
                del _running[name]


def readiness_report() -> tuple[str, dict[str, dict]]:
    """Run every check at once (a thread each, but those IN_CALLERS_THREAD) and answer within
    REPORT_DEADLINE_SECONDS; the overall status is error only when a required check failed (or gave no
    answer in time)."""
    started = time.perf_counter()
    finished: dict[str, CheckResult] = {}
    waiting: dict[str, tuple[threading.Thread, list[CheckResult]]] = {}
    for name, probe in CHECKS.items():
        if name in IN_CALLERS_THREAD:
            continue
        with _running_lock:
            earlier = _running.get(name)
            if earlier is not None and started - earlier[1] < STUCK_CHECK_SECONDS:
                busy_ms = round((started - earlier[1]) * 1000, 2)
                finished[name] = CheckResult(name, ERROR, busy_ms, "no answer yet from the previous check")
                continue
            run = object()
            _running[name] = (run, started)
        box: list[CheckResult] = []
        thread = threading.Thread(target=_run_check, args=(name, probe, run, box), name=f"readyz-{name}", daemon=True)
        thread.start()
        waiting[name] = (thread, box)
    for name in IN_CALLERS_THREAD & CHECKS.keys():
        finished[name] = _timed(name, CHECKS[name])
    deadline = started + REPORT_DEADLINE_SECONDS
    for name, (thread, box) in waiting.items():
        thread.join(max(0.0, deadline - time.perf_counter()))
        if box:
            finished[name] = box[0]
        else:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
            finished[name] = CheckResult(name, ERROR, elapsed_ms, f"no answer within {REPORT_DEADLINE_SECONDS:g}s")
    results = [finished[name] for name in CHECKS]
    required = set(settings.READYZ_REQUIRED)
    if any(r.status == ERROR and r.name in required for r in results):
        overall = ERROR
    elif all(r.status == OK for r in results):
        overall = OK
    else:
        overall = DEGRADED
    return overall, {r.name: r.as_dict() for r in results}


# Anonymous callers of /readyz (the ingress serves it to anyone) share one report per this many seconds, per
# process: each call ran every check (a database, Redis, broker and channel-layer round trip each), a cheap DoS.
SHARED_REPORT_SECONDS = 1.0


class SharedReadiness:
    """One readiness report at a time, reused for SHARED_REPORT_SECONDS; callers arriving while it is being
    made wait for it rather than run the checks again. The clock is an attribute so tests can hold it still."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._report: tuple[str, dict[str, dict]] | None = None
        self._made_at = 0.0

    def report(self) -> tuple[str, dict[str, dict]]:
        with self._lock:
            if self._report is None or self.clock() - self._made_at >= SHARED_REPORT_SECONDS:
                self._report = readiness_report()
                self._made_at = self.clock()
            return self._report

    def forget(self) -> None:
        with self._lock:
            self._report = None


shared_readiness = SharedReadiness()
