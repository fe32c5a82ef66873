"""Writes of the core app: the worker heartbeat."""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from collections.abc import Set
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.core.cache import cache
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Lookup, Model, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from apps.core.selectors import (
    LONG_WORKER_BEACON_FRESH_SECONDS,
    heartbeat_thresholds,
    long_worker_beacons,
    long_worker_beacons_cache_key,
    queue_heartbeat_cache_key,
    relayed_heartbeat_pending_cache_key,
    worker_ping_cache_key,
)

logger = logging.getLogger(__name__)

# How long a heartbeat is kept past the moment it reads "down", so /readyz and the Overview say how stale it is.
WORKER_HEARTBEAT_KEPT_PAST_DOWN_SECONDS = 24 * 3600


def long_worker_beacon_record(
    *,
    hostname: str,
    queues: list[str] | tuple[str, ...],
    slots: int,
    busy: int,
    busy_since: datetime | None = None,
    worker: str | None = None,
) -> dict:
    """Record, for each long queue a worker consumes, that it is alive and how many of its slots hold work
    (controlplane/celery.py's LongWorkerBeacon, every 10 s). A worker whose every slot holds long work takes no
    relayed heartbeat until one ends; /readyz's long_worker check reads these beacons to tell that worker (busy)
    from one that is gone. `busy_since`: when the last slot filled. `worker` (hostname and pid by default)
    tells the replicas apart: each keeps its own entry in the queue's {worker: beacon}, so a busy replica and
    an idle one no longer overwrite each other's (the check flipped between them every few seconds).

    Each write reads the entries, puts its own and drops those written an hour or more from its own clock (a
    replica whose clock is off by minutes once dropped every other replica's entry at each write, and the check
    flapped again; readers judge freshness themselves, by theirs). Two
    replicas writing at the same instant may lose one's newest entry to the other's write; its previous one
    (10 s older) stays, and its next write puts it back: a beacon reads stale only after six such losses in a row."""
    now = datetime.now(UTC)
    beacon = {
        "at": now.isoformat(),
        "hostname": hostname,
        "queues": list(queues),
        "slots": slots,
        "busy": busy,
        "busy_since": busy_since.isoformat() if busy_since else None,
    }
    worker = worker or f"{hostname}/{os.getpid()}"
    keys = [long_worker_beacons_cache_key(queue) for queue in queues]
    found = cache.get_many(keys)
    entries = {}
    for key in keys:
        kept = found.get(key)
        kept = (
            {name: entry for name, entry in kept.items() if _beacon_recent(entry, now)}
            if isinstance(kept, dict)
            else {}
        )
        entries[key] = {**kept, worker: beacon}
    # The queue's entry outlives its last write a little past the moment that write reads stale, so the check can
    # say how stale it is; then it is gone, every replica's with it (entries within it last an hour: above).
    cache.set_many(entries, timeout=2 * LONG_WORKER_BEACON_FRESH_SECONDS)
    return beacon


# How long a replica's entry is kept by the others' writes: far beyond any freshness window or clock error.
LONG_WORKER_BEACON_KEPT_SECONDS = 3600


def _beacon_recent(beacon: object, now: datetime) -> bool:
    """Whether a worker's entry is worth keeping: written within the hour by this writer's clock (a worker
    stopped or replaced by a new pod leaves its entry; it goes once it can no longer be read as fresh by any
    reader whose clock is within the hour of this one's)."""
    try:
        return abs((now - datetime.fromisoformat(beacon["at"])).total_seconds()) <= LONG_WORKER_BEACON_KEPT_SECONDS
    except (TypeError, ValueError, KeyError, OverflowError):
        return False


def relayed_heartbeat_claim(queue: str, *, expires_seconds: float, broker_drops_expired: bool) -> bool:
    """Whether core.heartbeat may relay a copy to the long `queue` now; True notes it as sent (pending until a
    worker takes it: relayed_heartbeat_taken). At most one copy per queue is outstanding: none is sent while the
    last one is untaken and younger than `expires_seconds`. Older, it is gone where the broker drops expired
    messages (RabbitMQ's per-message TTL); elsewhere (the embedded filesystem broker, Redis) it still waits in
    the queue, and a copy was sent with each beat (~17,000 files a day while the long worker was stopped or
    busy), so another goes only once the worker's beacon says it is alive with a free slot (it took the old
    copy and dropped it as expired, or lost it)."""
    key = relayed_heartbeat_pending_cache_key(queue)
    now = datetime.now(UTC)
    pending = cache.get(key)
    if pending is not None:
        try:
            age = (now - datetime.fromisoformat(pending["sent_at"])).total_seconds()
        except (TypeError, ValueError, KeyError, OverflowError):
            age = math.inf  # unreadable: as if long gone
        if 0 <= age < expires_seconds:
            return False
        # No replica alive with a free slot (any of them may take it): it would wait there too.
        if not broker_drops_expired and not any(b["busy"] < b["slots"] for b in long_worker_beacons(queue, now)):
            return False
    noted = {"sent_at": now.isoformat()}
    if pending is None:  # two heartbeats at once: one relays
        return cache.add(key, noted, timeout=WORKER_HEARTBEAT_KEPT_PAST_DOWN_SECONDS)
    cache.set(key, noted, timeout=WORKER_HEARTBEAT_KEPT_PAST_DOWN_SECONDS)
    return True


def relayed_heartbeat_taken(queue: str) -> None:
    """A worker took the heartbeat relayed to `queue`: the next one may go."""
    cache.delete(relayed_heartbeat_pending_cache_key(queue))


def worker_heartbeat_record(
    *, hostname: str | None = None, nonce: str | None = None, queues: list[str] | tuple[str, ...] | None = None
) -> dict:
    """Record that a worker is alive and consuming `queues` (the one its heartbeat came from; every queue when
    not told: one worker of them all); /readyz reads each back (worker: `default`; long_worker: the others).

    A ping (`manage.py ping_worker`) passes a nonce so its sender can find its own answer even
    while beat's periodic heartbeats keep arriving.
    """
    beat = {"at": datetime.now(UTC).isoformat(), "hostname": hostname or socket.gethostname()}
    ttl = worker_heartbeat_ttl_seconds()
    for queue in queues if queues is not None else [queue.name for queue in settings.CELERY_TASK_QUEUES]:
        cache.set(queue_heartbeat_cache_key(queue), beat, timeout=ttl)
    if nonce:
        cache.set(worker_ping_cache_key(nonce), beat, timeout=300)
    return beat


def worker_heartbeat_ttl_seconds() -> int:
    """How long the heartbeat is kept: a day past its down threshold (heartbeat_thresholds), so that /readyz
    says how stale it is instead of "never". A flat day expired a schedule retimed to a day or more between two
    healthy beats: "no worker heartbeat recorded yet", an error."""
    return math.ceil(heartbeat_thresholds()[1]) + WORKER_HEARTBEAT_KEPT_PAST_DOWN_SECONDS


def fields_update(queryset: QuerySet, changes: dict) -> tuple[Model, dict]:
    """Change some fields of the one row `queryset` selects, locked, validated as the admin would
    (full_clean), saved; returns the row and the values before. What applying a recommendation does."""
    with transaction.atomic():
        row = queryset.select_for_update().get()
        before = {name: getattr(row, name) for name in changes}
        for name, value in changes.items():
            setattr(row, name, value)
        row.full_clean()
        row.save()
    return row, before


# Rows deleted per statement by the sign-in retention: each batch is a short transaction, so a backlog of months
# (the first run after an upgrade) never holds locks on the session table that a login waits behind for long.
SIGN_IN_PRUNE_BATCH = 5_000


class _EqualsAnyOf(Lookup):
    """`lhs = ANY(rhs)`, rhs an array (an ArraySubquery)."""

    lookup_name = "equals_any_of"

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", (*lhs_params, *rhs_params)


def _pk_among(rows: QuerySet, batch: QuerySet) -> Q | Lookup:
    """`pk = ANY(ARRAY(<batch>))` on PostgreSQL: the batch is read once and its rows found by primary key. A plain
    `pk IN (<batch>)` was planned as a hash join over a scan of the whole table, once per batch (a backlog of
    100,000 sessions: each 5,000-row batch took as long as one DELETE of all of them). Elsewhere (SQLite, the
    embedded mode) `pk IN (<batch>)`."""
    if connections[rows.db].vendor != "postgresql":
        return Q(pk__in=batch)
    return _EqualsAnyOf(F("pk"), ArraySubquery(batch))


def _after(keys: tuple[str, ...], last: tuple) -> Q:
    """Rows past `last` in the order of `keys` (one or two fields): `(a, b) > (x, y)` written as
    `a >= x AND (a > x OR b > y)`, so that an index on `a` starts the scan at x."""
    if len(keys) == 1:
        return Q(**{f"{keys[0]}__gt": last[0]})
    first, second = keys
    return Q(**{f"{first}__gte": last[0]}) & (Q(**{f"{first}__gt": last[0]}) | Q(**{f"{second}__gt": last[1]}))


def _up_to(keys: tuple[str, ...], bound: tuple) -> Q:
    """Rows up to `bound`, included, in the order of `keys`: `(a, b) <= (x, y)` as `a <= x AND (a < x OR b <= y)`."""
    if len(keys) == 1:
        return Q(**{f"{keys[0]}__lte": bound[0]})
    first, second = keys
    return Q(**{f"{first}__lte": bound[0]}) & (Q(**{f"{first}__lt": bound[0]}) | Q(**{f"{second}__lte": bound[1]}))


def _delete_in_batches(
    rows: QuerySet,
    *,
    keys: tuple[str, ...],
    batch_size: int,
    counts: dict[str, int] | None = None,
    kept: Set[int] = frozenset(),
) -> int:
    """Delete `rows` a batch at a time in the order of `keys` (unique together), each batch one set-based
    statement in its own short transaction; the number deleted. A keyset: each batch starts past the last one's
    bound, so its scan never steps over the rows earlier batches deleted (a `LIMIT n` from the start did, and
    the batches of a 200,000-session backlog grew from 48 to 190 ms). The bound, the batch's last key, is read
    first; then `DELETE ... WHERE <filter> AND <past the last bound, up to this one> AND pk = ANY(SELECT pk ...
    FOR UPDATE SKIP LOCKED)`: no keys travel to Python and back, a row another transaction holds (a session
    being renewed) is left to the next run, and the filter is checked again as each row is deleted, so a row
    that stopped matching since the subquery read it is kept. Fewer than `batch_size` rows left: the last batch.
    `counts`, if given, gets what each batch deleted added per model label, the rows that cascaded with it too.
    `kept` (keys ("pk",) only): primary keys left alone among `rows`. Each batch's keys are then read (at most
    `batch_size`) and the batch is those of them not kept: a statement carries at most `batch_size` keys, never
    the whole keep-set (an `.exclude(pk__in=<keep-set>)` on `rows` sent every kept key in each statement, 48,000
    parameters on a million runs: 2 s per batch against 0.05 s)."""
    if kept and keys != ("pk",):
        raise ValueError("kept names primary keys: the batches must go by primary key")
    rows = rows.using(router.db_for_write(rows.model)).order_by(*keys)  # its transaction belongs where it writes
    deleted = 0
    last: tuple | None = None
    while True:
        pending = rows if last is None else rows.filter(_after(keys, last))
        if kept:
            ahead = list(pending.values_list("pk", flat=True)[:batch_size])
            if not ahead:
                return deleted
            bound = (ahead[-1],) if len(ahead) == batch_size else None
            # only the keys read: a row that came to match since is the next run's, however it relates to `kept`
            batch = rows.filter(pk__in=[pk for pk in ahead if pk not in kept])
        else:
            bound = next(iter(pending.values_list(*keys)[batch_size - 1 : batch_size]), None)
            batch = pending if bound is None else pending.filter(_up_to(keys, bound))
        with transaction.atomic(using=rows.db):
            locked = batch.select_for_update(skip_locked=True).values("pk")
            total, by_model = batch.order_by().filter(_pk_among(rows, locked)).delete()
        deleted += total
        if counts is not None:
            for label, number in by_model.items():
                counts[label] = counts.get(label, 0) + number
        if bound is None:
            return deleted
        last = bound


def sessions_expired_prune(*, batch_size: int = SIGN_IN_PRUNE_BATCH) -> int:
    """Delete the database sessions past their expiry date; the number deleted. Django only deletes a session at
    logout or when `clearsessions` runs, which nothing scheduled: every staff login that ended by timing out
    stayed in django_session for ever. An expired session is never read again (apps.core.sessions filters
    on expire_date), so deleting it signs no one out."""
    from django.contrib.sessions.models import Session

    expired = Session.objects.filter(expire_date__lt=timezone.now())
    return _delete_in_batches(expired, keys=("expire_date", "pk"), batch_size=batch_size)


def sign_in_log_prune(*, keep_days: int | None = None, batch_size: int = SIGN_IN_PRUNE_BATCH) -> int:
    """Delete django-axes' sign-in log rows (AccessLog: one per successful login, never deleted by axes) older than
    SIGN_IN_LOG_KEEP_DAYS; the number deleted. Axes' failed-attempt counters (AccessAttempt) need nothing: axes
    deletes those past AXES_COOLOFF_TIME at every login, failed or not, and AccessFailureLog is not enabled."""
    from axes.models import AccessLog

    days = settings.SIGN_IN_LOG_KEEP_DAYS if keep_days is None else keep_days
    old = AccessLog.objects.filter(attempt_time__lt=timezone.now() - timedelta(days=days))
    return _delete_in_batches(old, keys=("pk",), batch_size=batch_size)


# --- finished run history ---------------------------------------------------------------------------
# Runs deleted per transaction by the history retention (each with its cascade: a benchmark run's regressions, an
# optimization run's steps and recommendations, an alert's notifications): no long lock on the big tables.
HISTORY_PRUNE_BATCH = 500


def history_prune(*, keep_days: int | None = None, batch_size: int = HISTORY_PRUNE_BATCH) -> dict[str, int]:
    """Delete the finished run history older than HISTORY_KEEP_DAYS, a batch at a time: benchmark runs,
    optimization runs and resolved alerts, with what hangs off them; what is still running, open or read as the
    latest or a baseline is kept however old (each app's own prune says what). The number deleted per model,
    logged: counts alone, nothing of the rows."""
    from apps.benchmarks.services import benchmark_history_prune
    from apps.metrics.services import alert_history_prune
    from apps.optimizer.services import optimization_history_prune

    days = settings.HISTORY_KEEP_DAYS if keep_days is None else keep_days
    older_than = timezone.now() - timedelta(days=days)
    counts: dict[str, int] = {}
    for prune in (benchmark_history_prune, optimization_history_prune, alert_history_prune):
        counts.update(prune(older_than=older_than, batch_size=batch_size))
    logger.info("history older than %s days pruned: %s", days, json.dumps(counts, sort_keys=True))
    return counts


def rows_delete_in_batches(
    rows: QuerySet, *, batch_size: int, labels: tuple[str, ...], kept: Set[int] = frozenset()
) -> dict[str, int]:
    """Delete `rows` but those whose primary key is in `kept`, in batches by primary key (_delete_in_batches); the
    number deleted of each model of `labels` (the rows' own and those that cascade with them), 0 where none was."""
    counts = dict.fromkeys(labels, 0)
    _delete_in_batches(rows, keys=("pk",), batch_size=batch_size, counts=counts, kept=kept)
    return counts


def newest_pks(rows: QuerySet, *, per: tuple[str, ...], order_by: tuple, count: int = 1) -> set[int]:
    """The primary keys of the first `count` of `rows` in the order of `order_by` for each value of the fields
    `per` (one query, a window function): what a retention keeps as each plan's or service's latest."""
    ranked = rows.annotate(
        rank=Window(RowNumber(), partition_by=[F(name) for name in per], order_by=[*order_by, F("pk").desc()])
    )
    return set(ranked.filter(rank__lte=count).values_list("pk", flat=True))
