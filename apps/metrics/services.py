"""Writes of the metrics app: merging per-process latency histograms into the per-minute rollups."""

from __future__ import annotations

import http.client
import json
import logging
import math
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from hdrh.histogram import HdrHistogram

from apps.core.broker_errors import broker_failure
from apps.core.link_local import LINK_LOCAL_MESSAGE, guarded_opener, is_link_local_url, refusal_in
from apps.metrics.models import (
    Alert,
    AlertNotification,
    AlertRule,
    MetricPoint,
    RequestRollup,
    alert_snapshot,
)
from apps.metrics.recorder import percentile_values

logger = logging.getLogger(__name__)

UNASSIGNED_RULE_REFUSED = (
    "A rule of no service sums every service's traffic, some hidden from you: choose a service, or a host or "
    "cache metric."
)


def alert_rule_scope_check(*, service_id: int | None, metric: str, visible_services: frozenset[int] | None) -> None:
    """Refuse (a ValidationError on `metric`) a rule of no service on a request figure from a viewer who does
    not see all traffic (`visible_services`; None: all): it sums every route's traffic, hidden services'
    included, and posts it to the rule's webhook. An Operator turned the shared CPU rule into an error-rate rule
    over every route. Host and cache metrics (SHARED_ALERT_METRICS) are every viewer's. Every path that writes a
    rule for a user (admin's form and list) calls this one rule."""
    from apps.metrics.selectors import SHARED_ALERT_METRICS
    from apps.services.selectors import sees_all_traffic

    if service_id is not None or metric in SHARED_ALERT_METRICS or sees_all_traffic(visible_services):
        return
    raise ValidationError({"metric": UNASSIGNED_RULE_REFUSED})


def _summarize(row: RequestRollup, histogram: HdrHistogram) -> None:
    values = percentile_values(histogram, (50, 95, 99))
    row.p50_ms, row.p95_ms, row.p99_ms = values[50] / 1000, values[95] / 1000, values[99] / 1000
    row.max_ms = histogram.get_max_value() / 1000
    row.histogram = histogram.encode()


def rollups_merge(series: dict[tuple, object]) -> None:
    """Add each (minute, route, method, status class, client) series to its rollup row, creating it.

    Each series leaves `series` once its row is written: when one fails (the database drops mid-flush), the
    caller keeps only those not written for its retry, and the ones before it are not added twice."""
    for key_tuple in sorted(series):
        minute, route, method, status_class, client = key_tuple
        data = series[key_tuple]
        key = {
            "resolution": RequestRollup.Resolution.MINUTE,
            "minute": datetime.fromtimestamp(minute, UTC),
            "route": route,
            "method": method,
            "status_class": status_class,
            "client": client,
        }
        for _ in range(2):  # a concurrent first insert of the same key: merge into the winner's row
            try:
                with transaction.atomic():
                    row = RequestRollup.objects.select_for_update().filter(**key).first()
                    if row is None:
                        row = RequestRollup(**key)
                        histogram = data.histogram
                    else:
                        histogram = HdrHistogram.decode(bytes(row.histogram))
                        histogram.add(data.histogram)
                    row.count += data.count
                    row.errors += data.errors
                    row.total_ms += data.total_us / 1000
                    _summarize(row, histogram)
                    row.save()
                break
            except IntegrityError:
                continue
        else:  # lost the insert race twice: kept by the caller for its next flush, never dropped silently
            raise IntegrityError(f"rollup {key_tuple[1:]} at {key['minute']} could not be written")
        del series[key_tuple]


# --- series -----------------------------------------------------------------------------------------
def metric_points_record(*, values: dict[str, float], at: datetime | None = None) -> None:
    """Store raw samples of gauge or counter series (e.g. host.cpu_pct). A non-finite value (a rate over no
    time, a failed reading) is left out: summed into a bucket it would make the whole hour NaN for good.

    Without `at`, stamped by the database as the rows are inserted (no query of its own): on its clock, as the
    request rollups and the host samples are. Stamped with this host's clock, the cache series of a worker an
    hour behind fell outside the live feed's and the alerts' windows (taken on the database's clock) and
    beside the wrong minutes of the request charts."""
    at = at or Now()
    finite = {name: value for name, value in values.items() if value is not None and math.isfinite(value)}
    if len(finite) < len(values):
        logger.warning("metric samples left out, not finite: %s", sorted(set(values) - set(finite)))
    MetricPoint.objects.bulk_create(
        [MetricPoint(series=name, at=at, sum=value, count=1, min=value, max=value) for name, value in finite.items()]
    )


LOAD_FAILURES_SERIES = "inference.load_failures."


def inference_load_failure_record(*, deployment: str, mode: str) -> None:
    """One failed load of a deployment's model in `mode`: counted in Prometheus (`cp_inference_load_failures_total`)
    and as a point of the `inference.load_failures.<deployment>.<mode>` series, for the dashboard's chart and the
    alerts. The row's load_failure says only the last one, and is cleared by the next load that succeeds."""
    from apps.metrics.prometheus import INFERENCE_LOAD_FAILURES

    INFERENCE_LOAD_FAILURES.labels(deployment, mode).inc()
    metric_points_record(values={f"{LOAD_FAILURES_SERIES}{deployment}.{mode}": 1.0})


def cache_series_record() -> dict[str, float]:
    """Record each namespace's reads and loads in the minute since the last call, over every process.

    The cumulative totals of the last call are kept in the shared cache; without them (the first
    call, a cache flush, Redis down for longer than they are kept) this call only remembers the totals.
    With Redis unreachable nothing is recorded and nothing fails (the task failed every minute of an
    outage); the reads of the minutes since the last totals are spread over those minutes once it is back,
    not put in one minute's point (see _cache_series_record).
    """
    from django.core.cache import cache

    from apps.core.local_cache import shared_cache_breaker

    if not shared_cache_breaker.available():
        logger.info("cache series not collected: the shared cache (Redis) is unreachable")
        return {}
    # Two at once (the backlog of a worker that was down, run by several processes) read the same totals and
    # each recorded the same minute's reads: one holds the totals while it reads and replaces them.
    try:
        locked = cache.add(CACHE_TOTALS_LOCK, 1, timeout=CACHE_TOTALS_LOCK_SECONDS)
    except Exception:  # Redis away: the next minute's call reads the totals kept before the outage
        shared_cache_breaker.failure()
        logger.warning("cache series not collected: the shared cache (Redis) is unreachable", exc_info=True)
        return {}
    if not locked:
        return {}
    try:
        return _cache_series_record()
    finally:
        try:
            cache.delete(CACHE_TOTALS_LOCK)
        except Exception:  # it expires (CACHE_TOTALS_LOCK_SECONDS) before the next minute's call
            logger.debug("cache series lock not released", exc_info=True)


CACHE_TOTALS = "metrics:cache-totals"
CACHE_TOTALS_LOCK = "metrics:cache-totals:lock"
CACHE_TOTALS_LOCK_SECONDS = 50  # under the minute between two collections, should a holder die
CACHE_TOTALS_KEEP_SECONDS = 3600  # an outage longer than this loses its reads: the next call only remembers


def _cache_series_record() -> dict[str, float]:
    """The reads and loads since the totals kept by the last call, recorded and returned. Those totals carry
    the time they were taken (the database's clock): over a gap of several minutes (Redis, the worker or beat
    away), each minute of it gets its share, not the last one all of them (a spike of an hour's reads in one
    point, a hit rate judged on it)."""
    from django.core.cache import cache

    from apps.caching.selectors import cache_stats
    from apps.core.local_cache import shared_cache_breaker
    from apps.resources.selectors import database_now

    totals = {
        namespace: [summary["tiers"].get("source", {}).get(name, 0) for name in ("requests", "loads")]
        for namespace, summary in cache_stats().items()
    }
    now = database_now()
    try:
        previous = cache.get(CACHE_TOTALS)
        cache.set(CACHE_TOTALS, {"at": now.timestamp(), "totals": totals}, timeout=CACHE_TOTALS_KEEP_SECONDS)
    except Exception:  # not stored: recorded now, the same reads would be recorded again by the next call
        shared_cache_breaker.failure()
        logger.warning("cache series not collected: the shared cache (Redis) is unreachable", exc_info=True)
        return {}
    if previous is None:
        return {}
    taken_at = None
    if isinstance(previous, dict) and set(previous) == {"at", "totals"}:
        taken_at, previous = previous["at"], previous["totals"]  # else kept by an older release: no time
    values = {}
    for namespace, (requests, loads) in totals.items():
        before_requests, before_loads = previous.get(namespace, (0, 0))
        if requests < before_requests:  # counters were reset (stats deleted): start again
            continue
        values[f"cache.{namespace}.requests"] = requests - before_requests
        values[f"cache.{namespace}.loads"] = loads - before_loads
    minutes = 1
    if isinstance(taken_at, int | float) and math.isfinite(taken_at):
        minutes = min(max(round((now.timestamp() - taken_at) / 60), 1), CACHE_TOTALS_KEEP_SECONDS // 60)
    if minutes == 1:
        metric_points_record(values=values)
    else:
        share = {name: value / minutes for name, value in values.items()}
        for minute in range(minutes):  # the newest at `now`, each earlier one a minute before
            metric_points_record(values=share, at=now - timedelta(minutes=minute))
    return values


def _bucket(at: datetime, size: timedelta) -> datetime:
    seconds = int(size.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // seconds * seconds, UTC)


# Buckets read and written per statement when folding: the rows already in the target resolution are read a
# batch at a time and the merged ones written a batch at a time, so a backlog costs a few statements per 500
# buckets (it cost a SELECT and an INSERT or UPDATE each: 2,533 statements for an hour's backlog of points).
FOLD_BATCH = 500


def _batches(keys: list, size: int = FOLD_BATCH):
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


@transaction.atomic
def metric_points_downsample(*, source: str, target: str, older_than: timedelta, size: timedelta) -> int:
    """Fold `source` points older than `older_than` into `target` buckets of `size`; totals are kept."""
    cutoff = _bucket(timezone.now() - older_than, size)
    old = MetricPoint.objects.select_for_update().filter(resolution=source, at__lt=cutoff)
    folded: dict[tuple[str, datetime], list[float]] = {}
    read: list[int] = []
    for pk, series, at, total, count, low, high in old.values_list("pk", "series", "at", "sum", "count", "min", "max"):
        read.append(pk)
        key = (series, _bucket(at, size))
        acc = folded.setdefault(key, [0.0, 0, low, high])
        acc[0] += total
        acc[1] += count
        acc[2] = min(acc[2], low)
        acc[3] = max(acc[3], high)
    for batch in _batches(sorted(folded)):
        _metric_buckets_add(target, {key: folded[key] for key in batch})
    # Exactly what was folded: a point committed since the read (a late sample) matches the filter too.
    return sum(MetricPoint.objects.filter(pk__in=pks).delete()[0] for pks in _batches(read, 10_000))


def _metric_buckets_add(target: str, folded: dict[tuple[str, datetime], list[float]]) -> None:
    """Add folded buckets to their `target` rows (a bucket an earlier run wrote gains a late point's totals),
    creating those not there: one read and at most one UPDATE and one INSERT for the whole batch. MetricPoint
    has no unique key to upsert on (raw samples may repeat a series and instant), so the rows are matched here;
    as before, a bucket held twice is added to its first row."""
    existing: dict[tuple[str, datetime], MetricPoint] = {}
    rows = MetricPoint.objects.filter(
        resolution=target, series__in={series for series, _ in folded}, at__in={at for _, at in folded}
    ).order_by("pk")
    for row in rows:
        existing.setdefault((row.series, row.at), row)
    changed: list[MetricPoint] = []
    created: list[MetricPoint] = []
    for (series, at), (total, count, low, high) in folded.items():
        row = existing.get((series, at))
        if row is None:
            created.append(
                MetricPoint(series=series, resolution=target, at=at, sum=total, count=count, min=low, max=high)
            )
            continue
        row.sum += total
        row.count += count
        row.min, row.max = min(row.min, low), max(row.max, high)
        changed.append(row)
    MetricPoint.objects.bulk_update(changed, ["sum", "count", "min", "max"])
    MetricPoint.objects.bulk_create(created)


ROLLUP_MERGED_FIELDS = ["count", "errors", "total_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms", "histogram"]
ROLLUP_KEY_FIELDS = ["resolution", "minute", "route", "method", "status_class", "client"]


@transaction.atomic
def request_rollups_downsample(*, older_than: timedelta) -> int:
    """Merge minute rollups older than `older_than` into hourly ones (histograms merged exactly).

    The histograms are merged here (HDR histograms, encoded), so the hours already written are read a batch at
    a time and the merged hours written back by one upsert per batch on the rollup key."""
    cutoff = _bucket(timezone.now() - older_than, timedelta(hours=1))
    old = RequestRollup.objects.select_for_update().filter(resolution="1m", minute__lt=cutoff)
    minutes: dict[tuple, list[RequestRollup]] = {}
    read: list[int] = []
    for row in old:
        read.append(row.pk)
        key = (_bucket(row.minute, timedelta(hours=1)), row.route, row.method, row.status_class, row.client)
        minutes.setdefault(key, []).append(row)
    for batch in _batches(list(minutes)):
        hours = {
            (hour.minute, hour.route, hour.method, hour.status_class, hour.client): hour
            for hour in RequestRollup.objects.filter(
                resolution="1h", minute__in={key[0] for key in batch}, route__in={key[1] for key in batch}
            )
        }
        merged = []
        for key in batch:
            hour = hours.get(key)
            target = hour or RequestRollup(resolution="1h", minute=key[0], route=key[1], method=key[2],
                                           status_class=key[3], client=key[4])  # fmt: skip
            histogram = HdrHistogram.decode(bytes(hour.histogram)) if hour else None
            for row in minutes[key]:
                if histogram is None:
                    histogram = HdrHistogram.decode(bytes(row.histogram))
                else:
                    histogram.add(HdrHistogram.decode(bytes(row.histogram)))
                target.count += row.count
                target.errors += row.errors
                target.total_ms += row.total_ms
            _summarize(target, histogram)
            merged.append(target)
        RequestRollup.objects.bulk_create(
            merged, update_conflicts=True, unique_fields=ROLLUP_KEY_FIELDS, update_fields=ROLLUP_MERGED_FIELDS
        )
    return sum(RequestRollup.objects.filter(pk__in=pks).delete()[0] for pks in _batches(read, 10_000))


# Request rollups older than this are kept per hour only (retention_apply).
MINUTE_ROLLUPS_KEPT = timedelta(days=30)


def retention_apply() -> dict[str, int]:
    """raw -> 1 minute after 48 h, 1 minute -> 1 hour after 30 days, 1 hour dropped after a year."""
    return {
        "points_raw_to_1m": metric_points_downsample(
            source="raw", target="1m", older_than=timedelta(hours=48), size=timedelta(minutes=1)
        ),
        "points_1m_to_1h": metric_points_downsample(
            source="1m", target="1h", older_than=timedelta(days=30), size=timedelta(hours=1)
        ),
        "points_1h_dropped": MetricPoint.objects.filter(
            resolution="1h", at__lt=timezone.now() - timedelta(days=365)
        ).delete()[0],
        "rollups_1m_to_1h": request_rollups_downsample(older_than=MINUTE_ROLLUPS_KEPT),
        "rollups_1h_dropped": RequestRollup.objects.filter(
            resolution="1h", minute__lt=timezone.now() - timedelta(days=365)
        ).delete()[0],
    }


# --- alerts -----------------------------------------------------------------------------------------
def alerts_evaluate(*, now: datetime | None = None) -> list[Alert]:
    """Evaluate every enabled rule; fire those breaching for long enough, resolve those recovered or without
    data for a whole window, and resolve the alerts of rules disabled while firing.

    Each rule on its own, in a savepoint of its own: one that cannot be evaluated (a value out of range, a
    database error, a notification that raises) is rolled back alone, logged and recorded on the rule
    (`last_error`, shown in admin), and never keeps the others from firing, inside a transaction or not.

    On the database's clock, which stamps the request rollups and the host samples the rules read: a worker
    whose clock ran an hour ahead judged windows nothing was written in yet ("no data", a breach unseen)."""
    from apps.resources.selectors import database_now

    now = now or database_now()
    try:
        with transaction.atomic():
            alert_snapshots_fill()
    except Exception:  # the alerts' descriptions must not keep any rule from being evaluated
        logger.warning("alerts without their rule's snapshot could not be filled", exc_info=True)
    changed = _disabled_rules_alerts_resolve(now=now)
    for rule in AlertRule.objects.filter(enabled=True).select_related("service"):
        try:
            with transaction.atomic():
                # Two evaluations at once (a slow one overlapping the next beat, two workers) each read the
                # firing alert and each resolved it and paged: the rule's row is held, its state read after.
                locked = AlertRule.objects.select_for_update(of=("self",)).filter(pk=rule.pk, enabled=True)
                rule = locked.select_related("service").first()
                if rule is None:  # disabled or deleted meanwhile
                    continue
                alert = _alert_rule_evaluate(rule, now=now)
        except Exception as exc:  # one broken rule must not silence the others
            logger.warning("alert rule %s (%s) could not be evaluated", rule.pk, rule.name, exc_info=True)
            _alert_rule_failure_record(rule, now=now, error=exc)
            continue
        if alert is not None:
            changed.append(alert)
    return changed


def alert_snapshots_fill() -> int:
    """Give the alerts inserted without their rule's snapshot (by the last release's pods while an upgrade
    rolls out: the columns' database default, empty) their rule's as it is now, at each evaluation: they read
    rule "" and severity "" in the API, admin and the live feed for ever, even those resolved since. The number
    filled."""
    filled = 0
    for rule in AlertRule.objects.filter(alerts__rule_name="").distinct().select_related("service"):
        filled += Alert.objects.filter(rule_id=rule.pk, rule_name="").update(**alert_snapshot(rule))
    return filled


def _alert_rule_failure_record(rule: AlertRule, *, now: datetime, error: Exception) -> None:
    """Say on the rule why it was not evaluated: a rule that silently never fires looks like a quiet system."""
    try:
        with transaction.atomic():
            AlertRule.objects.filter(pk=rule.pk).update(
                last_error=f"{type(error).__name__}: {error}"[:300], last_error_at=now
            )
    except Exception:  # the database itself is failing: the log line above is all there is
        logger.warning("alert rule %s: its failure could not be recorded", rule.pk, exc_info=True)


def _disabled_rules_alerts_resolve(*, now: datetime) -> list[Alert]:
    """A disabled rule is never evaluated, so an alert it left firing would fire for ever (and keep scaling's
    emergency mode on): resolve it, and forget the rule's pending breach so re-enabling it starts afresh. An
    alert left firing without its rule (deleted by a way that sent no pre_delete: raw SQL) likewise."""
    resolved = []
    leftover = Q(rule__enabled=False) | Q(rule__isnull=True)
    for alert in Alert.objects.filter(leftover, state=Alert.State.FIRING).select_related("rule"):
        try:
            with transaction.atomic():
                # held and read again: an evaluation running beside this one may have resolved it already
                locked = Alert.objects.select_for_update(of=("self",)).filter(pk=alert.pk, state=Alert.State.FIRING)
                alert = locked.select_related("rule").first()
                if alert is not None:
                    reason = "rule disabled" if alert.rule_id else "rule deleted"
                    resolved.append(_resolve(alert, now=now, reason=reason))
        except Exception:  # one broken notification must not keep the other alerts firing
            logger.warning("alert %s of disabled rule %s could not be resolved", alert.pk, alert.rule_id, exc_info=True)
    AlertRule.objects.filter(enabled=False).exclude(pending_since=None, no_data_since=None).update(
        pending_since=None, no_data_since=None
    )
    return resolved


def _alert_rule_evaluate(rule: AlertRule, *, now: datetime) -> Alert | None:
    """One rule's step: the alert it fired or resolved, if any."""
    from apps.metrics.selectors import alert_rule_value

    changed = None
    value = alert_rule_value(rule, now=now)
    if value is not None and not math.isfinite(value):  # it breaches nothing and recovers from nothing: no data
        value = None
    rule.last_value, rule.last_evaluated_at = value, now
    rule.last_error, rule.last_error_at = "", None
    firing = rule.alerts.filter(state=Alert.State.FIRING).first()
    fields = ["pending_since", "no_data_since", "last_value", "last_evaluated_at", "last_error", "last_error_at"]
    if value is None:
        # No data (too few requests or reads, no samples): nothing to fire on, and a breach restarts. A firing
        # alert is resolved once a whole window of evaluations had none (the traffic stopped, a namespace went
        # away), never on one thin window, so traffic around `min_requests` does not flap it.
        rule.pending_since = None
        rule.no_data_since = rule.no_data_since or now
        if firing is not None and now - rule.no_data_since >= timedelta(minutes=rule.window_minutes):
            # each window without a value had too little data, and the first one began a window earlier
            minutes = round((now - rule.no_data_since).total_seconds() / 60) + rule.window_minutes
            changed = _resolve(firing, now=now, reason=f"no data for {minutes} min")
        rule.save(update_fields=fields)
        return changed
    rule.no_data_since = None
    if rule.breaches(value):
        rule.pending_since = rule.pending_since or now
        if firing is None and (now - rule.pending_since).total_seconds() >= rule.for_seconds:
            changed = _fire(rule, value, now=now)
        elif firing is not None:
            firing.last_value = value
            firing.save(update_fields=["last_value"])
    else:
        rule.pending_since = None
        if firing is not None and rule.recovered(value):
            changed = _resolve(firing, now=now, value=value)
        elif firing is not None:  # inside the hysteresis band: still firing, at today's value, not the peak's
            firing.last_value = value
            firing.save(update_fields=["last_value"])
    rule.save(update_fields=fields)
    return changed


def _resolve(alert: Alert, *, now: datetime, value: float | None = None, reason: str = "") -> Alert:
    """Resolve a firing alert and notify; `reason` (why it ends without a recovered value) leads its message."""
    alert.state, alert.resolved_at = Alert.State.RESOLVED, now
    fields = ["state", "resolved_at"]
    if value is not None:
        alert.last_value = value
        fields.append("last_value")
    if reason:
        alert.message = f"Resolved: {reason}. {alert.message}"[:300]
        fields.append("message")
    alert.save(update_fields=fields)
    _notify_on_commit(alert, "resolved")
    return alert


def _fire(rule: AlertRule, value: float, *, now: datetime) -> Alert:
    from apps.metrics.selectors import busiest_host

    where = f" ({rule.service.name})" if rule.service_id else ""
    if rule.metric in (AlertRule.Metric.CPU_PCT, AlertRule.Metric.MEMORY_PCT):  # the page says which pod
        busiest = busiest_host(rule.metric, since=now - timedelta(minutes=rule.window_minutes), until=now)
        where += f" on {busiest[0]}" if busiest else ""
    message = f"{rule.get_metric_display()}{where} is {value:.1f}, {rule.get_operator_display()} {rule.threshold:g}"
    alert = Alert.objects.create(rule=rule, value=value, last_value=value, message=message[:300], started_at=now,
                                 **alert_snapshot(rule))  # fmt: skip
    _notify_on_commit(alert, "firing")
    return alert


def _notify_on_commit(alert: Alert, event: str) -> None:
    """Page once the alert's state is stored: sent from inside the rule's savepoint, a page would go out
    for a change that a later failure rolls back, and go out again at the next evaluation (duplicate pages,
    the firing state never kept); nor does a slow webhook hold the transaction open."""
    transaction.on_commit(lambda: _notify(alert, event))


def alerts_of_deleted_rule_keep(*, rule: AlertRule) -> None:
    """A rule about to be deleted (in admin, its list's bulk delete, its service's delete, code: each sends
    pre_delete, signals.py): its alerts stay, linked to no rule (Alert.rule is SET_NULL), with what the rule
    was when each fired (their snapshot, filled here for an alert that lacks it); one still firing is resolved
    ("Resolved: rule deleted.") and its "resolved" sent once the delete is committed, each delivery recorded
    on the kept alert. Before, the delete took the alerts and their deliveries with it: the incident review
    no longer read what fired, and the "resolved" sent was only logged.

    The rule's row is held first, as an evaluation holds it (alerts_evaluate): one running beside the delete
    that resolved the alert already is waited for and seen, never paged twice. The notice (payload, webhook,
    addresses) is built here, while the rule is still there, and handed to a task once the delete commits
    (tasks.deleted_alert_resolution_send, retried): sent from the request, a webhook that never answered held
    a bulk delete for its timeout once per rule (100 rules, minutes) and an SMTP server that never answered
    held it for good, and a failed "resolved" was never tried again."""
    from apps.resources.selectors import database_now

    list(AlertRule.objects.select_for_update().filter(pk=rule.pk).values_list("pk", flat=True))
    Alert.objects.filter(rule_id=rule.pk, rule_name="").update(**alert_snapshot(rule))
    current = Alert.objects.filter(rule_id=rule.pk, state=Alert.State.FIRING).select_related("rule").first()
    if current is None:  # none firing, or resolved meanwhile: its "resolved" went out then
        return
    current.state, current.resolved_at = Alert.State.RESOLVED, database_now()
    current.message = f"Resolved: rule deleted. {current.message}"[:300]
    current.save(update_fields=["state", "resolved_at", "message"])
    notice = _alert_notice(current, "resolved")
    if channels := _notice_channels(notice):
        transaction.on_commit(lambda: _deleted_alert_resolution_queue(notice, channels))


def alert_of_deleted_rule_resolve(*, alert: Alert) -> None:
    """An alert deleted on its own while firing (code; admin refuses it, and a rule's delete keeps its alerts):
    its "resolved" sent once the delete is committed, as a deleted rule's (alerts_of_deleted_rule_keep), its
    deliveries only logged (the alert is gone)."""
    from apps.resources.selectors import database_now

    if alert.state != Alert.State.FIRING:
        return
    if alert.rule_id is not None:
        list(AlertRule.objects.select_for_update().filter(pk=alert.rule_id).values_list("pk", flat=True))
    current = Alert.objects.filter(pk=alert.pk, state=Alert.State.FIRING).select_related("rule").first()
    if current is None:  # resolved meanwhile: its "resolved" went out then
        return
    current.state, current.resolved_at = Alert.State.RESOLVED, database_now()
    current.message = f"Resolved: alert deleted. {current.message}"[:300]
    notice = _alert_notice(current, "resolved")
    if channels := _notice_channels(notice):
        transaction.on_commit(lambda: _deleted_alert_resolution_queue(notice, channels))


def _deleted_alert_resolution_queue(notice: dict, channels: list[str]) -> None:
    """The delete has committed: a broker that cannot take the task must not turn it into an error page; the
    log says which receiver was not told."""
    from apps.metrics.tasks import deleted_alert_resolution_send

    try:
        deleted_alert_resolution_send.apply_async(
            kwargs={"notice": notice, "channels": channels}, kwargsrepr=alert_notice_repr(notice, channels)
        )
    except Exception:
        logger.exception("alert %s of deleted rule %s: its \"resolved\" could not be queued; tell %s by hand",
                         notice["alert"], notice["rule"], _notice_targets(notice, channels))  # fmt: skip


def _notice_targets(notice: dict, channels: list[str]) -> str:
    """The receivers, for logs and the broker's view of the task: a webhook's origin only (its path is its
    secret)."""
    targets = {"webhook": lambda: _webhook_origin(notice["webhook"]), "email": lambda: notice["email"]}
    return ", ".join(f"{channel} {targets[channel]()}" for channel in channels)


def alert_notice_repr(notice: dict, channels: list[str]) -> str:
    """A notice as the broker, the worker's log and its monitors show it: never a webhook's secret path."""
    return repr({"alert": notice["alert"], "rule": notice["rule"], "to": _notice_targets(notice, channels)})


def deleted_alert_resolution_send(*, notice: dict, channels: list[str], last_try: bool = False) -> list[str]:
    """Send a deleted rule's "resolved" (a notice of _alert_notice) on `channels`: the channels that failed,
    for the task to retry (those delivered are not sent again). Each try is logged, and recorded as a delivery
    of the alert kept (alerts_of_deleted_rule_keep), as a live rule's are (_notify); after the `last_try` an
    error names the receivers not told."""
    failed = []
    for channel in channels:
        delivered, detail = _deliver(notice, channel)
        _record_kept(notice["alert"], notice["payload"]["event"], channel, notice[channel], delivered, detail)
        where = _webhook_origin(notice["webhook"]) if channel == "webhook" else notice["email"]
        logger.info("alert %s of deleted rule %s: %s via %s to %s: %s", notice["alert"], notice["rule"],
                    notice["payload"]["event"], channel, where,
                    "delivered" if delivered else f"failed ({detail})")  # fmt: skip
        if not delivered:
            failed.append(channel)
    if failed and last_try:
        logger.error("alert %s of deleted rule %s: \"resolved\" not delivered, retries spent; tell %s by hand",
                     notice["alert"], notice["rule"], _notice_targets(notice, failed))  # fmt: skip
    return failed


def deleted_alert_resolution_unsent(*, notice: dict, channels: list[str], exc: BaseException) -> None:
    """A retry the broker refused (RabbitMQ down, its vhost gone): the worker rejected the task with no word of
    the receivers. Nothing tries again, as after the last try: an error names the receivers not told."""
    logger.error("alert %s of deleted rule %s: \"resolved\" not delivered, its retry not sent (%s); tell %s by hand",
                 notice["alert"], notice["rule"], broker_failure(exc), _notice_targets(notice, channels))  # fmt: skip


def _alert_notice(alert: Alert, event: str) -> dict:
    """What a notification of `alert` sends, where: plain data, to be sent later (a task's argument). Described
    by the alert's snapshot (what the rule was when it fired), with the alert's id: built from the rule as it
    is now, a rule renamed while firing sent "firing" under one name and "resolved" under another, and a
    receiver correlating by name never closed the incident. The receivers are the rule's; an alert whose rule
    is gone goes nowhere."""
    rule = alert.rule
    if rule is not None and not alert.rule_name:  # inserted without its snapshot (alert_snapshots_fill)
        alert.snapshot_take(rule)
    payload = {
        "event": event,
        "alert": alert.pk,
        "rule": alert.rule_name,
        "severity": alert.rule_severity,
        "metric": alert.rule_metric,
        "threshold": alert.rule_threshold,
        "value": alert.last_value,
        "message": alert.message,
        "started_at": alert.started_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }
    return {
        "alert": alert.pk,
        "rule": alert.rule_name,
        "payload": payload,
        "webhook": rule.webhook_url if rule is not None else "",
        "email": rule.email_to if rule is not None else "",
        "subject": f"[{alert.rule_severity}] {event}: {alert.rule_name}",
    }


def _notice_channels(notice: dict) -> list[str]:
    """The channels a notice goes by: the rule's webhook, if any, and its e-mail, if it names an address."""
    has_address = any(address.strip() for address in notice["email"].split(","))
    return [channel for channel, wanted in (("webhook", bool(notice["webhook"])), ("email", has_address)) if wanted]


def _deliver(notice: dict, channel: str) -> tuple[bool, str]:
    """One channel's delivery: (delivered, detail). Whatever it raises is a failed delivery, never an error:
    one channel's failure must not cost the other."""
    if channel == "webhook":
        try:
            return _post_webhook(notice["webhook"], notice["payload"])
        except Exception as exc:  # a webhook's failure, whatever it raises, must not cost the e-mail
            logger.warning("alert webhook to %s failed", _webhook_origin(notice["webhook"]), exc_info=True)
            return False, f"{type(exc).__name__}: {exc}"
    recipients = [address.strip() for address in notice["email"].split(",") if address.strip()]
    try:
        send_mail(notice["subject"], notice["payload"]["message"], settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as exc:  # noqa: BLE001 - a mail outage must not stop evaluation
        return False, str(exc)
    return True, "sent"


def _notify(alert: Alert, event: str) -> None:
    """Post to the webhook and e-mail, each channel on its own: one failing (whatever it raises) is recorded
    as a failed delivery and never keeps the other from being tried."""
    notice = _alert_notice(alert, event)
    for channel in _notice_channels(notice):
        delivered, detail = _deliver(notice, channel)
        _record(alert, event, channel, notice[channel], delivered, detail)


def _webhook_origin(url: str) -> str:
    """The webhook's scheme and host, for logs: a chat webhook's path is its secret (Slack's, Teams'), and a
    log line is read by many more people than the rule is."""
    try:
        parts = urllib.parse.urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/..."
    except ValueError:  # an unparseable port: nothing of it is logged
        return "(a malformed URL)"


# A webhook's 3xx is its answer, never followed: urllib followed it (the POST turned into a GET), so a
# receiver on an allowed address could send the product to the cloud metadata service, past the link-local
# check of the stored URL, and its answer landed in the delivery's detail for staff to read. Every connection
# goes through the link-local guard: the stored URL's host is resolved at send time, and a name that now
# resolves to the metadata service (changed after the rule was saved: DNS rebinding) is refused there.
_webhook_opener = guarded_opener(follow_redirects=False)


def _post_webhook(url: str, payload: dict) -> tuple[bool, str]:
    if not url.startswith(("http://", "https://")):
        return False, "only http and https webhooks are called"
    if is_link_local_url(url):  # a rule stored before the field refused it
        return False, LINK_LOCAL_MESSAGE
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - scheme checked above
    try:
        with _webhook_opener.open(request, timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS) as response:
            return 200 <= response.status < 300, f"HTTP {response.status}"
    except (OSError, http.client.HTTPException, ValueError) as exc:  # no server, not HTTP, a malformed answer
        if refusal := refusal_in(exc):  # its own words, not urllib's "<urlopen error ...>" around them
            logger.warning("alert webhook to %s refused: %s", _webhook_origin(url), refusal)
            return False, str(refusal)
        logger.warning("alert webhook to %s failed: %s", _webhook_origin(url), exc)
        return False, f"{type(exc).__name__}: {exc}"


def _record(alert: Alert, event: str, channel: str, target: str, delivered: bool, detail: str) -> None:
    AlertNotification.objects.create(
        alert=alert, event=event, channel=channel, target=target, delivered=delivered, detail=detail[:300]
    )


def _record_kept(alert_pk: int, event: str, channel: str, target: str, delivered: bool, detail: str) -> None:
    """A deleted rule's delivery, on its alert kept; an alert deleted since (alert_of_deleted_rule_resolve)
    has only the log line."""
    if not Alert.objects.filter(pk=alert_pk).exists():
        logger.info("alert %s is gone: its %s via %s is not recorded", alert_pk, event, channel)
        return
    try:
        AlertNotification.objects.create(alert_id=alert_pk, event=event, channel=channel, target=target,
                                         delivered=delivered, detail=detail[:300])  # fmt: skip
    except IntegrityError:  # deleted meanwhile: nothing to hang the delivery on
        logger.info("alert %s is gone: its %s via %s is not recorded", alert_pk, event, channel)


# --- history retention ------------------------------------------------------------------------------
def alert_history_prune(*, older_than: datetime, batch_size: int) -> dict[str, int]:
    """Delete the alerts resolved before `older_than`, with their notifications; the number of each. A firing
    alert stays however old (scaling's emergency mode and the overview read it); nothing else points at one."""
    from apps.core.services import rows_delete_in_batches

    resolved = Alert.objects.filter(state=Alert.State.RESOLVED)
    old = resolved.filter(Q(resolved_at__lt=older_than) | Q(resolved_at=None, started_at__lt=older_than))
    # what the pre_delete receiver reads (alert_of_deleted_rule_resolve: a firing one's "resolved" is sent)
    old = old.only("pk", "state", "rule_id")
    return rows_delete_in_batches(old, batch_size=batch_size, labels=("metrics.Alert", "metrics.AlertNotification"))
