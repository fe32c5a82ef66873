"""Forecasts, replica recommendations, manifests, export, and the apply state machine."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from apps.core.broker_errors import broker_failure, send_errors
from apps.core.errors import error_line
from apps.core.json_safe import finite_or_none
from apps.scaling import charts, kube, manifests
from apps.scaling.history import HistoryUnavailable, hourly_history
from apps.scaling.models import ScalingPolicy, ScalingRecommendation, WorkloadForecast
from apps.services.models import Service

# pandas and the forecasting models (~1 s) are imported where used: this module loads in every process (the
# admin, the URLconf, the tasks), and most never forecast.
if TYPE_CHECKING:
    import pandas as pd
    from celery import Task

logger = logging.getLogger(__name__)

MIN_HISTORY_HOURS = 3 * 24  # three days (forecasting.DAY hours each)
RECENT_HOURS = 3 * 24  # history kept with a forecast, for its chart
STOPPED = "not forecast, the worker is shutting down."  # a run's report of the forecasts it left (`stopping`)


def scaling_policy_ensure(service: Service, **fields) -> tuple[ScalingPolicy, bool]:
    """The service's policy, created with the brief's values (the model's defaults) and `fields`."""
    return ScalingPolicy.objects.get_or_create(service=service, defaults=fields)


# --- forecasts and recommendations ----------------------------------------------------------------


def usable_history(policy: ScalingPolicy, metric: str, *, now: datetime) -> pd.Series:
    """The hourly history to forecast from, gap-free; HistoryUnavailable says why there is not enough (the
    first days of use, or too few hours since a long gap) rather than a plan made from a guess."""
    from apps.scaling import forecasting
    from apps.scaling.checks import FORECAST_FIELDS, policy_bound_problems

    # Refused rather than clamped: a plan from a bound (1,000,000 req/s per replica: the floor every hour; a
    # day's lead: the day's peak every hour) is no more the operator's than the stored value, and it would go
    # to the cluster. Said here, not as "not enough history" (1e308 overflowed the synthetic history).
    problems = [why for field, why in policy_bound_problems(policy).items() if field in FORECAST_FIELDS]
    if problems:
        raise HistoryUnavailable(
            f"{policy.service.slug} {metric}: not forecast, the policy is out of bounds ({'; '.join(problems)}): "
            "edit it (`manage.py check` lists every such policy)."
        )
    history = hourly_history(policy, metric, now=now).replace([math.inf, -math.inf], math.nan).dropna()
    recent = forecasting.since_last_long_gap(history)
    if len(recent) < MIN_HISTORY_HOURS:
        gap = f" since a gap of over {forecasting.WEEK // 24} days" if len(recent) < len(history) else ""
        raise HistoryUnavailable(
            f"{policy.service.slug} {metric}: not enough history, {len(recent)} hours{gap}, {MIN_HISTORY_HOURS} needed."
        )
    return forecasting.regularize(recent)


class ForecastAlreadyMade(Exception):
    """The scheduled run's forecast of this service, metric and hour exists: another run made it."""


def forecast_hour(now: datetime | None = None) -> datetime:
    """The hour a scheduled run forecasts for (its start): two runs in one hour make one forecast."""
    return (now or timezone.now()).replace(minute=0, second=0, microsecond=0)


def forecast_create(
    policy: ScalingPolicy, metric: str, *, now: datetime | None = None, hour: datetime | None = None
) -> WorkloadForecast:
    """Forecast the next 24 h of one metric from the policy's history source, with the model's backtest.
    `hour` (the scheduled run's): ForecastAlreadyMade when that hour's forecast exists, before the work or,
    for a run beside this one, at the insert (the unique constraint decides)."""
    from apps.scaling import forecasting

    now = now or timezone.now()
    if hour is not None and WorkloadForecast.objects.filter(service=policy.service, metric=metric, hour=hour).exists():
        raise ForecastAlreadyMade(f"{policy.service.slug} {metric}: already forecast for {hour:%Y-%m-%d %H:00}.")
    series = usable_history(policy, metric, now=now)
    prediction, selection = forecasting.forecast(series, max_folds=settings.SCALING_BACKTEST_FOLDS)
    points = prediction.points()
    recent = [
        {"at": at.isoformat(), "value": round(float(value), 4)} for at, value in series.iloc[-RECENT_HOURS:].items()
    ]
    if not all(math.isfinite(value) for row in points + recent for key, value in row.items() if key != "at"):
        raise ValueError(f"{policy.service.slug} {metric}: the forecast is not finite, not stored.")
    patterns = finite_or_none(forecasting.analyze_patterns(series))
    try:
        with transaction.atomic():  # a savepoint when nested: a refused insert leaves the caller's transaction usable
            return WorkloadForecast.objects.create(
                service=policy.service,
                metric=metric,
                hour=hour,
                source=policy.history_source,
                history_hours=len(series),
                model=selection.model.name,
                scores=finite_or_none(
                    {"criterion": selection.criterion, "candidates": [score.as_dict() for score in selection.scores]}
                ),
                points=points,
                recent=recent,
                patterns=patterns,
            )
    except IntegrityError as exc:
        # The one-per-hour constraint: a run beside this one inserted first (not the service deleted meanwhile).
        if (
            hour is not None
            and WorkloadForecast.objects.filter(service=policy.service, metric=metric, hour=hour).exists()
        ):
            raise ForecastAlreadyMade(f"{policy.service.slug} {metric}: forecast meanwhile by another run.") from exc
        raise


def replica_capacity(policy: ScalingPolicy) -> tuple[float, str]:
    """Requests per second one replica serves inside the SLO, and where the figure comes from. A stress
    benchmark drives the service's URL, so its knee is what every replica serving it did together: a replica's
    share is the knee over the replicas the policy says served the test. Taken whole, a knee measured on 4
    replicas planned a quarter of the replicas the load needs."""
    knee = _stress_knee_rps(policy)
    if knee and policy.stress_test_replicas:
        return knee / policy.stress_test_replicas, (
            f"the last stress benchmark's knee of {knee:.1f} req/s over the {policy.stress_test_replicas} "
            "replica(s) that served it"
        )
    if knee:
        return policy.replica_capacity_rps, (
            f"the policy's capacity per replica; the last stress benchmark's knee of {knee:.1f} req/s is the "
            "whole service's and is used once the policy says how many replicas served it"
        )
    return policy.replica_capacity_rps, "the policy's capacity per replica (no stress benchmark measured it yet)"


def _stress_knee_rps(policy: ScalingPolicy) -> float | None:
    from django.apps import apps as django_apps

    if not django_apps.is_installed("apps.benchmarks"):
        return None
    from apps.benchmarks.selectors import service_knee_rps

    return service_knee_rps(policy.service)


def _rate(rps: float) -> str:
    """A rate as read: three significant figures below 100 (one decimal read 0.01 req/s as "0.0"), whole above."""
    return f"{rps:,.0f}" if rps >= 100 else f"{rps:.3g}"


def recommendation_create(policy: ScalingPolicy, forecast: WorkloadForecast) -> ScalingRecommendation:
    """Replicas for each hour ahead from the P90 request rate, planned `lead_minutes` before the load."""
    capacity, capacity_source = replica_capacity(policy)
    usable = capacity * policy.target_utilization
    floor = policy.floor_replicas
    lead = math.ceil(policy.lead_minutes / 60)
    p90 = [point["p90"] for point in forecast.points]
    hours, capped = [], []
    for index, point in enumerate(forecast.points):
        ahead = max(p90[index : index + lead + 1])
        needed = math.ceil(ahead / usable) if ahead > 0 else 0
        replicas = min(max(needed, floor), policy.max_replicas)
        if needed > policy.max_replicas:
            capped.append((point["at"], needed))
        hours.append({"at": point["at"], "replicas": replicas, "p90_rps": round(ahead, 3), "needed": needed})
    peak = max(hours, key=lambda hour: hour["replicas"])
    peak_at = timezone.localtime(datetime.fromisoformat(peak["at"]))
    reasons = [
        f"Peak {peak['replicas']} replicas at {charts.clock_label(peak_at)} for a P90 of "
        f"{peak['p90_rps']:.1f} req/s, "
        f"with {_rate(capacity)} req/s per replica ({capacity_source}) planned at {policy.target_utilization:.0%}.",
        f"Each hour covers the load up to {policy.lead_minutes} min ahead"
        + (", so replicas are ready before it." if policy.keda_enabled else "."),
        f"Forecast by {forecast.model} (backtest MASE {_chosen_mase(forecast)}) from {forecast.history_hours} h "
        f"of {forecast.get_source_display().lower()}.",
    ]
    if policy.emergency_mode:
        reasons.append(f"Emergency mode: the minimum is lifted to {floor}.")
    if capped:
        reasons.append(
            f"The forecast needs up to {max(n for _, n in capped)} replicas, above the maximum of "
            f"{policy.max_replicas}, in {len(capped)} hour(s): raise the maximum or the capacity per replica."
        )
    if not policy.keda_enabled:
        # Only KEDA's cron windows carry the plan to the cluster: an HPA has one minimum for every hour.
        reasons.append(
            "Advice only: without KEDA the HPA scales on its metrics as the load comes, not ahead of it "
            "(turn KEDA on to apply this plan as cron windows)."
        )
    if policy.target_rps_per_pod and policy.target_rps_per_pod > capacity:
        # Between the plan's hours the autoscaler decides: past its knee, a replica breaks the SLO before the
        # autoscaler adds another.
        reasons.append(
            f"The autoscaler adds a replica only past {policy.target_rps_per_pod:g} req/s per pod, above the "
            f"{capacity:.1f} req/s a replica serves inside the SLO: lower the target req/s per pod to "
            f"{usable:.1f} or less."
        )
    elif policy.target_rps_per_pod and policy.target_rps_per_pod > usable:
        # Inside the SLO, but each pod runs hotter than planned: the headroom the plan keeps is gone.
        reasons.append(
            f"The autoscaler adds a replica only past {policy.target_rps_per_pod:g} req/s per pod, "
            f"{policy.target_rps_per_pod / capacity:.0%} of a replica's capacity, above the planned "
            f"{policy.target_utilization:.0%}: lower the target req/s per pod to {usable:.1f} to keep that headroom."
        )
    named = [p["name"] for p in forecast.patterns.get("peaks", [])]
    if named:
        reasons.append(f"Peaks found in the history: {', '.join(named)}.")
    return ScalingRecommendation.objects.create(
        service=policy.service,
        forecast=forecast,
        hours=hours,
        peak_replicas=peak["replicas"],
        min_replicas=min(hour["replicas"] for hour in hours),
        emergency=policy.emergency_mode,
        reasons=reasons,
    )


def _chosen_mase(forecast: WorkloadForecast) -> str:
    criterion = forecast.scores.get("criterion", "mase_24")
    for candidate in forecast.scores.get("candidates", []):
        if candidate["model"] == forecast.model and candidate.get(criterion) is not None:
            return f"{candidate[criterion]:.2f}, m={criterion.split('_')[1]}"
    return "not scored: too little history"


def forecasts_refresh(
    *,
    services: list[Service] | None = None,
    now: datetime | None = None,
    scheduled: bool = False,
    progress: Callable[[str], None] | None = None,
    stopping: Callable[[], bool] | None = None,
) -> dict[str, list[str]]:
    """Every predictive policy's four forecasts and its replica plan; what could not be done, and why. The
    scheduled (hourly) run makes one set per service and hour, however many beats sent it; one by hand
    always forecasts. `progress` is told each service and metric as its forecast starts (each takes seconds:
    a command's user sees it working). `stopping` is asked before each forecast: once it says so (the worker
    is shutting down) the run ends there, the forecasts and plans made so far kept, the rest left to the next
    run."""
    report: dict[str, list[str]] = {"forecasts": [], "recommendations": [], "skipped": []}
    hour = forecast_hour() if scheduled else None
    policies = ScalingPolicy.objects.filter(enabled=True, predictive=True).select_related("service")
    if services is not None:
        policies = policies.filter(service__in=services)
    for policy in policies:
        if stopping is not None and stopping():
            report["skipped"].append(f"{policy.service.slug} and the services after it: {STOPPED}")
            break
        turn = _forecast_turn_take(policy)
        if turn is None:
            report["skipped"].append(f"{policy.service.slug}: its forecasts are being made by another run.")
            continue
        # Whatever goes wrong with one policy (its data, a model, the service deleted meanwhile) is logged
        # and reported, and the policies after it still get their forecasts this hour.
        try:
            _policy_forecasts_refresh(policy, now=now, report=report, hour=hour, progress=progress, stopping=stopping)
        except Exception as exc:
            logger.exception("scaling forecasts of %s failed", policy.service.slug)
            report["skipped"].append(f"{policy.service.slug}: {_failure(exc)}")
        finally:
            _forecast_turn_release(policy, turn)
    return report


# A run's hold on a policy while it forecasts (seconds per metric); longer than any run, shorter than the hour.
FORECAST_TURN_SECONDS = 15 * 60


def _forecast_turn_key(policy: ScalingPolicy) -> str:
    return f"scaling:forecasting:{policy.pk}"


def _forecast_turn_take(policy: ScalingPolicy) -> str | None:
    """One run at a time per policy: the hourly task redelivered, or `manage.py scaling forecast` and the
    optimizer while beat's run is at it, each made a full set of forecasts and a plan, and re-applied it.
    The hold is this run's own token (None: another run holds it). With the shared cache away the run goes
    ahead (a duplicate plan beats none)."""
    from django.core.cache import cache

    turn = uuid.uuid4().hex
    try:
        return turn if cache.add(_forecast_turn_key(policy), turn, timeout=FORECAST_TURN_SECONDS) else None
    except Exception:  # a cache outage: any backend's error
        logger.warning(
            "scaling forecasts: the shared cache is away, %s forecast unguarded", policy.service.slug, exc_info=True
        )
        return turn


def _forecast_turn_release(policy: ScalingPolicy, turn: str) -> None:
    """Releases the hold if it is still this run's: a run that outlasted it must not end the next run's
    (a third would start beside that one). Read, then deleted: a hold lapsing in between is the next
    run's only if it ends within that instant of FORECAST_TURN_SECONDS."""
    from django.core.cache import cache

    key = _forecast_turn_key(policy)
    try:
        if cache.get(key) == turn:
            cache.delete(key)
    except Exception:  # the hold lapses by itself
        logger.warning("scaling forecasts: could not release the hold on %s", policy.service.slug, exc_info=True)


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {error_line(exc, 300)}"


def _policy_forecasts_refresh(
    policy: ScalingPolicy,
    *,
    now: datetime | None,
    report: dict[str, list[str]],
    hour: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    stopping: Callable[[], bool] | None = None,
) -> None:
    request_forecast = None
    skipped: dict[str, str] = {}  # kept on the policy: the dashboard says why a metric has no fresh forecast
    made_elsewhere = False
    metrics = WorkloadForecast.Metric.values
    for number, metric in enumerate(metrics, start=1):
        if number > 1 and stopping is not None and stopping():
            # Its forecasts made so far are kept; its notes and plan wait for a run that makes them all.
            report["skipped"].append(f"{policy.service.slug} {', '.join(metrics[number - 1 :])}: {STOPPED}")
            return
        if progress is not None:
            progress(f"{policy.service.slug} {metric}: forecasting ({number}/{len(metrics)})")
        try:
            made = forecast_create(policy, metric, now=now, hour=hour)
        except ForecastAlreadyMade as exc:
            report["skipped"].append(str(exc))
            made_elsewhere = True  # the run that made it keeps its notes and makes the plan
            continue
        except HistoryUnavailable as exc:
            report["skipped"].append(str(exc))
            skipped[metric] = str(exc)
            continue
        except Exception as exc:
            if not ScalingPolicy.objects.filter(pk=policy.pk).exists():
                logger.info("scaling forecasts of %s stopped: the service was deleted", policy.service.slug)
                report["skipped"].append(f"{policy.service.slug}: deleted during its forecast.")
                return
            # One metric's failure leaves the others, and the replica plan from the request rate.
            logger.exception("scaling forecast of %s %s failed", policy.service.slug, metric)
            report["skipped"].append(f"{policy.service.slug} {metric}: {_failure(exc)}")
            skipped[metric] = _failure(exc)
            continue
        report["forecasts"].append(f"{policy.service.slug}/{metric}: {made.model}")
        if metric == WorkloadForecast.Metric.REQUEST_RATE:
            request_forecast = made
    if skipped != policy.forecast_skipped and not made_elsewhere:
        ScalingPolicy.objects.filter(pk=policy.pk).update(forecast_skipped=skipped)
        policy.forecast_skipped = skipped
    if request_forecast is not None:
        with transaction.atomic():
            recommendation = recommendation_create(policy, request_forecast)
            policy_state_refresh(policy)  # KEDA cron windows follow the new plan
        report["recommendations"].append(
            f"{policy.service.slug}: {recommendation.min_replicas}-{recommendation.peak_replicas} replicas"
        )


def forecasts_prune(*, keep_days: int = 30) -> int:
    """Forecasts and plans older than `keep_days`, except each service's newest plan, however old, and the
    forecast it was made from. The newest plan is the one in force: its KEDA cron windows are on the cluster,
    and a service whose forecasts stopped (a worker down, its history gone) lost them with it at the next
    apply, its predictive scaling gone without a word. Kept, it is shown as stale (admin, the API, an
    annotation on the ScaledObject) until a forecast replaces it. The number of forecasts deleted."""
    cutoff = timezone.now() - timedelta(days=keep_days)
    newest = ScalingRecommendation.objects.filter(service=OuterRef("service")).order_by("-created_at", "-pk")
    ScalingRecommendation.objects.filter(created_at__lt=cutoff).exclude(pk=Subquery(newest.values("pk")[:1])).delete()
    # NOT IN over a NULL (a plan whose forecast was deleted) keeps every row: only the forecasts named.
    kept = ScalingRecommendation.objects.filter(forecast__isnull=False).values("forecast_id")
    deleted, _ = WorkloadForecast.objects.filter(created_at__lt=cutoff).exclude(pk__in=kept).delete()
    return deleted


# --- manifests ------------------------------------------------------------------------------------


def peak_windows(recommendation: ScalingRecommendation | None, floor: int, ceiling: int | None = None) -> list[dict]:
    """Runs of hours planned above the floor, as KEDA cron windows on the hospital's clock (settings.TIME_ZONE,
    whatever offset a plan was stored with) with their replicas. Runs follow real time, so the night clocks
    change neither splits a run nor overlaps two; a window starts and ends on the plan's own minutes (a
    zone off by half an hour plans at hh:30). A run of a whole day on the clock (24 hours, 23 the night the
    clocks go forward) is two windows of half of it each: one window would start and end at the same time,
    which KEDA refuses; a single hour that ends at the time it starts (the first 01:00 of the night the clocks
    go back) is the hour on the clock, both 01:00s. Replicas are held to `ceiling`, the maximum now: a plan
    made under a higher one would ask KEDA for more than its maxReplicaCount, and the manifests would be
    refused until the next plan."""
    import pandas as pd

    if recommendation is None:
        return []
    hour_long = pd.Timedelta(hours=1)
    runs: list[list[tuple[pd.Timestamp, int]]] = []  # [(start of the hour, replicas)] per run
    for hour in recommendation.hours:
        at = pd.Timestamp(hour["at"])
        at = at.tz_convert(settings.TIME_ZONE) if at.tzinfo is not None else at
        replicas = hour["replicas"] if ceiling is None else min(hour["replicas"], ceiling)
        if replicas <= floor:
            continue
        if runs and at - runs[-1][-1][0] == hour_long and len(runs[-1]) < 24:
            runs[-1].append((at, replicas))
        else:
            runs.append([(at, replicas)])
    windows = []
    for run in runs:
        # A whole day on the clock starts and ends at one time: 24 real hours, or 23 on the night the clocks
        # go forward (a run from 00:00 to 00:00 there was one window KEDA refused, every policy's export and
        # apply stopped until the next plan).
        whole_day = (run[-1][0] + hour_long).strftime("%H:%M") == run[0][0].strftime("%H:%M")
        for part in (run[: len(run) // 2], run[len(run) // 2 :]) if whole_day and len(run) > 1 else (run,):
            start, end = part[0][0], part[-1][0] + hour_long  # real time: 01:00 + 1 h may read 01:00 or 03:00
            if len(run) == 1 and whole_day:
                # The first 01:00 of the night the clocks go back ends at 01:00 again: a window of an hour on
                # the clock (01:00-02:00, both 01:00s), not one that starts and ends at once (a crash here).
                end = (start.tz_localize(None) if start.tzinfo is not None else start) + hour_long
            windows.append(
                {
                    "start_hour": start.hour,
                    "start_minute": start.minute,
                    "end_hour": end.hour,
                    "end_minute": end.minute,
                    "replicas": max(replicas for _, replicas in part),
                }
            )
    return windows


def policy_spec(policy: ScalingPolicy) -> manifests.ServiceScaling:
    latest = policy.service.scaling_recommendations.first() if policy.predictive else None
    floor = policy.floor_replicas
    stale = latest is not None and latest.is_stale()
    return manifests.ServiceScaling.from_policy(
        policy,
        peak_windows=peak_windows(latest, floor, policy.max_replicas),
        prometheus_url=settings.SCALING_PROMETHEUS_URL,
        time_zone=settings.TIME_ZONE,
        stale_plan_made_at=latest.created_at.astimezone(UTC).isoformat() if stale else "",
    )


def policy_manifests(policy: ScalingPolicy) -> dict[str, dict]:
    return manifests.documents(policy_spec(policy))


def manifests_export(*, out: Path, services: list[Service] | None = None) -> list[Path]:
    """Write every enabled policy's manifests; refuses (ValueError) when any would not validate. A whole
    export also removes the files an earlier one wrote that no policy makes now (a disabled or deleted
    policy, a renamed service): `kubectl apply -f` on the folder would otherwise bring them back."""
    policies = ScalingPolicy.objects.filter(enabled=True).select_related("service")
    if services is not None:
        policies = policies.filter(service__in=services)
    built = {filename: doc for policy in policies for filename, doc in policy_manifests(policy).items()}
    errors = manifests.validate(built)
    if errors:
        raise ValueError("; ".join(errors))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, document in sorted(built.items()):
        path = out / filename
        path.write_text(manifests.to_yaml(document))
        written.append(path)
    if services is None:
        for path in sorted(set(out.glob("*.yaml")) - set(written)):
            if _generated_here(path):
                path.unlink()
                logger.info("scaling export removed %s: no policy makes it now", path)
    return written


def _generated_here(path: Path) -> bool:
    """A manifest this product wrote (its managed-by label); any other file in the folder is left alone."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    metadata = document.get("metadata") if isinstance(document, dict) else None
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return isinstance(labels, dict) and labels.get("app.kubernetes.io/managed-by") == manifests.MANAGED_BY


# --- apply state machine: NOT_CONFIGURED | PENDING -> APPLYING -> ACTIVE | FAILED ------------------


def _set_state(policy: ScalingPolicy, state: str, **fields) -> None:
    fields = {"apply_state": state, "state_changed_at": timezone.now(), **fields}
    ScalingPolicy.objects.filter(pk=policy.pk).update(**fields)
    for name, value in fields.items():
        setattr(policy, name, value)


# The columns the apply state machine writes (workers, the checker): re-read under the row's lock before
# acting, never taken from an instance loaded earlier (an admin form, a checker's pass).
APPLY_FIELDS = ("apply_state", "apply_attempts", "apply_error", "desired_hash", "applied_hash", "applied_objects",
                "apply_generation", "state_changed_at")  # fmt: skip


def policy_state_refresh(policy: ScalingPolicy) -> str:
    """Record the manifests' digest. New manifests (or a first cluster) make the policy PENDING with fresh
    attempts; a failed policy keeps its attempts, so its retries keep backing off. The state is re-read with
    the row locked: an instance loaded before an apply finished read its old state, and turned an apply in
    flight to PENDING, which sent a second apply beside it. An apply in flight keeps APPLYING with the new
    digest: it ends PENDING itself when the digest it applied is no longer the one desired. `enabled` is
    re-read too: the forecast run refreshes an instance loaded minutes before, and a policy disabled since
    (its autoscalers withdrawn) was made PENDING, an apply that never comes, for good."""
    desired = manifests.digest(policy_manifests(policy)) if policy.enabled else ""
    states = ScalingPolicy.ApplyState
    with transaction.atomic():
        current = ScalingPolicy.objects.select_for_update(of=("self",)).filter(pk=policy.pk)
        row = current.values(*APPLY_FIELDS, "enabled").first()
        if row is None:  # deleted meanwhile
            return policy.apply_state
        if row["enabled"] != policy.enabled:  # disabled or enabled again since the instance was loaded
            policy.enabled = row["enabled"]
            desired = manifests.digest(policy_manifests(policy)) if policy.enabled else ""
        for name, value in row.items():
            setattr(policy, name, value)
        in_flight = policy.apply_state == states.APPLYING and not _stuck(policy, timezone.now())
        if kube.cluster_configured() and not policy.enabled and in_flight:
            # An apply or a withdrawal in flight records its own outcome; NOT_CONFIGURED here would let an
            # apply (the policy enabled again) run beside the withdrawal's deletes.
            if desired != policy.desired_hash:
                ScalingPolicy.objects.filter(pk=policy.pk).update(desired_hash=desired)
                policy.desired_hash = desired
        elif not kube.cluster_configured() or not policy.enabled:
            if (policy.apply_state, policy.desired_hash) != (states.NOT_CONFIGURED, desired):
                _set_state(policy, states.NOT_CONFIGURED, desired_hash=desired)
        elif policy.apply_state == states.APPLYING:
            if desired != policy.desired_hash:
                ScalingPolicy.objects.filter(pk=policy.pk).update(desired_hash=desired)
                policy.desired_hash = desired
        elif desired == policy.applied_hash:
            if policy.apply_state in (states.NOT_CONFIGURED, states.PENDING, states.FAILED):
                _set_state(policy, states.ACTIVE, desired_hash=desired, apply_error="")
        elif desired != policy.desired_hash or policy.apply_state in (states.NOT_CONFIGURED, states.ACTIVE):
            _set_state(policy, states.PENDING, desired_hash=desired, apply_attempts=0, apply_error="")
    return policy.apply_state


def apply_requested(policy: ScalingPolicy) -> bool:
    """An apply asked for by hand (admin, `manage.py scaling apply`): PENDING, unless another apply is in
    flight (APPLYING and not stuck), which must not be overlapped with a second one. Whether it was marked."""
    states = ScalingPolicy.ApplyState
    stuck_before = timezone.now() - timedelta(seconds=settings.SCALING_APPLY_STUCK_SECONDS)
    in_flight = Q(apply_state=states.APPLYING) & (
        Q(state_changed_at__isnull=True) | Q(state_changed_at__gte=stuck_before)
    )
    marked = ScalingPolicy.objects.filter(pk=policy.pk).exclude(in_flight).update(apply_state=states.PENDING)
    if marked:
        policy.apply_state = states.PENDING
    return bool(marked)


BY_HAND = object()  # policy_apply's judged_state_at when no checker judged the state: it applies whatever it finds


def policy_apply(*, policy_id: int, judged_state_at: datetime | object | None = BY_HAND) -> ScalingPolicy:
    """Apply the policy's manifests (a server dry run of all first). Safe to repeat: apply is idempotent.
    The cluster is written outside the row's lock (an admin edit must not wait on the API server); the
    outcome is recorded under it, from the row as it is then (see _apply_outcome). `judged_state_at`: the
    checker's send, the state_changed_at of the state it judged due; the state moved on since (another
    send of the same state applied it) is left alone."""
    states = ScalingPolicy.ApplyState
    with transaction.atomic():
        policy = ScalingPolicy.objects.select_for_update(of=("self",)).select_related("service").get(pk=policy_id)
        # APPLYING is another worker's apply in flight (a second delivery, overlapping checkers) unless it
        # has been stuck there longer than a worker can take. A policy disabled since the apply was sent is
        # the withdrawal's, not applied.
        if not policy.enabled or not (
            policy.apply_state in (states.PENDING, states.FAILED) or _stuck(policy, timezone.now())
        ):
            return policy
        if judged_state_at is not BY_HAND and policy.state_changed_at != judged_state_at:
            # Two checkers (two beats while an evicted pod terminates) each sent the apply of one FAILED state:
            # the first's apply failed again before the second was taken, which applied at once, spending an
            # attempt and skipping the backoff. The next due state gets its own send.
            return policy
        _set_state(policy, states.APPLYING, apply_attempts=policy.apply_attempts + 1,
                   apply_generation=policy.apply_generation + 1)  # fmt: skip
        claim = (policy.state_changed_at, policy.desired_hash)  # an edit while applying changes the digest
    refs: list[dict] = []
    intended: list[dict] = []
    try:
        docs = policy_manifests(policy)
        digest = manifests.digest(docs)
        errors = manifests.validate(docs)
        if errors:
            raise kube.ApplyError("; ".join(errors))
        refs = [kube.object_ref(document) for document in docs.values()]
        replace, remove, left = _dropped_objects(policy.applied_objects, refs, applied_before=bool(policy.applied_hash))
        intended = _intent_record(policy, refs)
        stamped = [kube.stamped(document, policy.apply_generation) for document in docs.values()]
        recorded: list[dict] = []
        applied = kube.apply_documents(stamped, replace=replace, remove=remove, recorded=recorded)
    except kube.ApplyError as exc:
        logger.warning("scaling manifests of %s were not applied: %s", policy.service.slug, exc)
        return _apply_outcome(policy, claim, refs, states.FAILED, apply_error=str(exc)[:4000],
                              partly_applied=exc.applied, intended=intended)  # fmt: skip
    except Exception as exc:  # never leave it APPLYING: FAILED retries with backoff, up to the cap
        logger.exception("scaling manifests of %s were not applied", policy.service.slug)
        # Whatever went wrong may have been mid-way through the requests: what was planned is kept as maybe applied.
        return _apply_outcome(policy, claim, refs, states.FAILED, apply_error=f"{type(exc).__name__}: {exc}"[:4000],
                              partly_applied=intended)  # fmt: skip
    if left:
        names = ", ".join("{kind}/{namespace}/{name}".format(**ref) for ref in left)
        applied.append(
            f"left on the cluster under their old name or namespace (remove them once the new ones serve): {names}"
        )
    refs = _merged(refs, recorded, replace=True)  # each with the uid the API server gave it
    return _apply_outcome(policy, claim, refs, states.ACTIVE, applied_hash=digest, desired_hash=digest,
                          applied_objects=refs, apply_error=f"applied {', '.join(applied)}")  # fmt: skip


def _intent_record(policy: ScalingPolicy, refs: list[dict]) -> list[dict]:
    """Before the cluster is written, the objects about to be applied join applied_objects (as maybe applied):
    a worker killed mid-apply (SIGKILL, an evicted pod) after the API server created them left autoscalers
    nothing here knew of, never withdrawn when the policy was disabled or deleted, and never replaced when
    KEDA was switched (its webhook refused the ScaledObject beside the unknown HPA). The apply that takes
    over a stuck one, a withdrawal and a delete read them there. The outcome records what was applied; a
    failure drops those of them it never sent. The ones added: not applied before."""
    with transaction.atomic():
        current = ScalingPolicy.objects.select_for_update(of=("self",)).filter(pk=policy.pk).first()
        if current is None:  # deleted meanwhile: the outcome removes what the apply puts there
            return []
        on_cluster = current.applied_objects or []
        known = {kube.ref_key(ref) for ref in on_cluster}
        intended = [ref for ref in refs if kube.ref_key(ref) not in known]
        if intended:
            ScalingPolicy.objects.filter(pk=current.pk).update(applied_objects=on_cluster + intended)
    return intended


def _apply_outcome(
    policy: ScalingPolicy,
    claim: tuple,
    refs: list[dict],
    state: str,
    partly_applied: list[dict] = (),
    intended: list[dict] = (),
    **fields,
) -> ScalingPolicy:
    """Record an apply's outcome with the row locked and re-read: while the cluster was written the policy
    may have been deleted (its delete removed what was applied before, not what this apply added), disabled
    (the withdrawal ran before these autoscalers were there: they are withdrawn now), edited (new manifests
    are due: PENDING, not ACTIVE under the old digest) or claimed by another apply (its outcome stands).
    `partly_applied`: what a failed apply put on the cluster before it failed, kept in applied_objects
    whatever else is recorded: a disable or delete withdraws it (an autoscaler left there scaled the service
    on, with nothing here saying so). `intended`: what _intent_record added before the cluster was written;
    those of them not partly applied are dropped again while the claim is still this apply's (a refused
    request applied nothing)."""
    states = ScalingPolicy.ApplyState
    claimed_at, claimed_desired = claim
    with transaction.atomic():
        current = ScalingPolicy.objects.select_for_update(of=("self",)).filter(pk=policy.pk).first()
        sent = {kube.ref_key(ref) for ref in partly_applied}
        unsent = [ref for ref in intended if kube.ref_key(ref) not in sent]
        if (
            current is not None
            and unsent
            and current.apply_state == states.APPLYING
            and current.state_changed_at == claimed_at
        ):
            current.applied_objects = [ref for ref in current.applied_objects or [] if ref not in unsent]
            ScalingPolicy.objects.filter(pk=current.pk).update(applied_objects=current.applied_objects)
        if current is not None and partly_applied:
            merged = _merged(current.applied_objects or [], partly_applied, replace=True)
            if merged != current.applied_objects:
                current.applied_objects = merged
                ScalingPolicy.objects.filter(pk=current.pk).update(applied_objects=current.applied_objects)
        if current is None:
            withdrawn = [ref for ref in refs if ref["kind"] in WITHDRAWN_KINDS]
            if withdrawn and kube.cluster_configured():
                logger.info("scaling policy of %s deleted during its apply: its autoscalers are removed",
                            policy.service.slug)  # fmt: skip
                _send_removal(withdrawn)
            return policy
        if current.enabled:
            if current.apply_state == states.APPLYING and current.state_changed_at == claimed_at:
                if state == states.ACTIVE and current.desired_hash != claimed_desired:
                    # Edited while applying: what was applied is recorded, and the new manifests are due.
                    fields.update(desired_hash=current.desired_hash, apply_attempts=0)
                    state = states.PENDING
                _set_state(current, state, **fields)
            _copy_state(current, policy)
            return policy
        # Disabled while applying: what this apply may have put there is recorded and withdrawn (the checker
        # retries a refused withdrawal); no digest is kept, so that enabled again, all is applied again.
        # Applied (ACTIVE): refs carry the uids the API server gave; failed, they are only what was planned.
        on_cluster = _merged(current.applied_objects or [], refs, replace=state == states.ACTIVE)
        _set_state(current, states.NOT_CONFIGURED, applied_hash="", apply_attempts=0, applied_objects=on_cluster,
                   apply_error="policy disabled during its apply: its autoscaling is withdrawn")  # fmt: skip
    return policy_withdraw(policy_id=policy.pk)


def _merged(recorded: list[dict], refs: list[dict], *, replace: bool) -> list[dict]:
    """`recorded` with `refs` added where it does not name them; `replace`: one it names is taken from
    `refs` (an apply's answer: the object's uid now, or none where the request got no answer)."""
    new = {kube.ref_key(ref): ref for ref in refs}
    known = {kube.ref_key(ref) for ref in recorded}
    merged = [new[kube.ref_key(ref)] if replace and kube.ref_key(ref) in new else ref for ref in recorded]
    return merged + [ref for ref in refs if kube.ref_key(ref) not in known]


def _copy_state(source: ScalingPolicy, target: ScalingPolicy) -> None:
    for name in (*APPLY_FIELDS, "enabled"):
        setattr(target, name, getattr(source, name))


def _dropped_objects(
    before: list[dict], now: list[dict], *, applied_before: bool
) -> tuple[list[dict], list[dict], list[dict]]:
    """Objects applied before that the manifests no longer have: (autoscalers to delete before their
    successors, others to delete after the apply, others to leave). Objects are told apart by kind,
    namespace and name: an apiVersion that changed between releases names the same object, which must not
    be deleted once applied. The service's own name's are deleted: an HPA or ScaledObject its opposite
    replaces (or two autoscalers would fight over one Deployment, and KEDA's webhook refuses the
    ScaledObject while the HPA is there). Those of a renamed service or a moved namespace are left:
    deleting the old Deployment and Service while the new pods are still starting would cut the service
    off."""
    places = {(ref["namespace"], ref["name"]) for ref in now}
    names = {_ref_key(ref) for ref in now}
    if not before and applied_before:
        # Applied before the policy kept its objects (migration 0007 starts them empty): the autoscaler
        # of the other mode may be on the cluster under the service's name.
        before = [
            {**ref, "kind": kind, "apiVersion": api_version}
            for ref in now
            if ref["kind"] in kube.AUTOSCALER_KINDS
            for (api_version, kind) in kube.RESOURCES
            if kind in kube.AUTOSCALER_KINDS and kind != ref["kind"]
        ]
    dropped = [ref for ref in before if _ref_key(ref) not in names]
    here = [ref for ref in dropped if (ref["namespace"], ref["name"]) in places]
    successors = {(ref["namespace"], ref["name"]) for ref in now if ref["kind"] in kube.AUTOSCALER_KINDS}
    replace = [
        ref for ref in here if ref["kind"] in kube.AUTOSCALER_KINDS and (ref["namespace"], ref["name"]) in successors
    ]
    return (
        replace,
        [ref for ref in here if ref not in replace],
        [ref for ref in dropped if (ref["namespace"], ref["name"]) not in places],
    )


# What scales a service on the cluster: withdrawn when its policy is disabled or deleted, or the autoscalers
# went on scaling it by the last plan applied (a ScaledObject's cron windows from a forecast no one keeps
# any more, a VPA still evicting pods) with nothing here saying so. The Deployment, Service and disruption
# budget stay: removing them would take the AI service itself down; the replicas stay where they are.
WITHDRAWN_KINDS = (*kube.AUTOSCALER_KINDS, "VerticalPodAutoscaler")


def _withdrawable(policy: ScalingPolicy) -> list[dict]:
    return [ref for ref in policy.applied_objects or [] if ref["kind"] in WITHDRAWN_KINDS]


def policy_withdraw(*, policy_id: int, judged_state_at: datetime | object | None = BY_HAND) -> ScalingPolicy:
    """Remove a disabled policy's autoscalers from the cluster. Safe to repeat: already gone is fine.
    `judged_state_at`: as policy_apply's (a checker's send for a state that moved on does nothing).
    The withdrawal is claimed under the row's lock as an operation in flight (APPLYING, as an apply is), and
    the cluster is written outside it: the lock was held over the API server's calls, and a slow cluster
    kept every admin edit of the policy, the checker and the forecast run waiting on the row. The claim
    keeps the guarantee the lock gave: an edit enabling the policy again meanwhile sends no apply beside the
    deletes (an apply does not overlap an operation in flight, and the refresh leaves one in flight alone);
    the outcome, recorded under the lock from the row as it is then, makes it PENDING, and the checker
    applies everything again once the deletes are done."""
    states = ScalingPolicy.ApplyState
    with transaction.atomic():
        policy = ScalingPolicy.objects.select_for_update(of=("self",)).select_related("service").get(pk=policy_id)
        refs = _withdrawable(policy)
        if policy.enabled or not refs or not kube.cluster_configured():
            return policy
        if judged_state_at is not BY_HAND and policy.state_changed_at != judged_state_at:
            return policy  # another send of the same state withdrew, or failed to and spent its attempt
        if policy.apply_state == states.APPLYING and not _stuck(policy, timezone.now()):
            return policy  # an apply or a withdrawal in flight: its outcome withdraws what is left
        previous_state, previous_attempts = policy.apply_state, policy.apply_attempts
        _set_state(policy, states.APPLYING, apply_error="policy disabled: withdrawing its autoscaling",
                   apply_generation=policy.apply_generation + 1)  # fmt: skip
        claimed_at = policy.state_changed_at
    kept: list[dict] = []
    not_ours: list[dict] = []
    try:
        # Conditional deletes: one timing out here and reaching the API server after the policy was enabled
        # and applied again removes nothing (see kube.delete_object); an apply after this claim stamped its
        # objects with a later generation, and they are left, if the row says such an apply can exist.
        removed = kube.remove_objects(
            refs,
            before_generation=policy.apply_generation,
            later_apply=lambda: _later_apply_possible(policy.pk, claimed_at),
            kept=kept,
            not_ours=not_ours,
        )
    except kube.ApplyError as exc:
        logger.warning("autoscalers of disabled policy %s were not removed: %s", policy.service.slug, exc)
        attempts = previous_attempts + 1 if previous_state == states.FAILED else 1  # not the apply's
        # Some may be gone already (the VPA before the HPA refused): enabled again, the policy must apply
        # everything again, not read its old digest as applied.
        error = f"policy disabled; its autoscaling not withdrawn yet: {exc}"[:4000]
        return _withdraw_outcome(
            policy, claimed_at, states.FAILED, refs=(), apply_attempts=attempts, applied_hash="", apply_error=error
        )
    except Exception as exc:  # never leave it APPLYING: FAILED retries with backoff
        logger.exception("autoscalers of disabled policy %s were not removed", policy.service.slug)
        return _withdraw_outcome(policy, claimed_at, states.FAILED, refs=(), apply_attempts=previous_attempts + 1,
                                 applied_hash="", apply_error=f"{type(exc).__name__}: {exc}"[:4000])  # fmt: skip
    refs = [ref for ref in refs if ref not in kept]  # those not ours are forgotten: the ones applied are gone
    return _withdraw_outcome(policy, claimed_at, states.NOT_CONFIGURED, refs=refs, applied_hash="", apply_attempts=0,
                             apply_error=_withdrawn_message(removed, kept, not_ours))  # fmt: skip


def _later_apply_possible(policy_id: int, claimed_at: datetime) -> bool:
    """Whether an apply after the withdrawal claimed at `claimed_at` can exist, as the row says under its lock:
    it is enabled again, or a newer claim than the withdrawal's is in flight. The generation stamps alone said
    so after apply_generation went back (migration 0014 rolled back and forward, a database restored): a
    disabled policy's own autoscalers were left scaling, the checker adding 1 a minute until it passed them."""
    with transaction.atomic():
        row = (
            ScalingPolicy.objects.select_for_update(of=("self",))
            .filter(pk=policy_id)
            .values("enabled", "apply_state", "state_changed_at")
            .first()
        )
    if row is None:  # deleted meanwhile: its delete removes what is recorded
        return False
    newer_claim = row["apply_state"] == ScalingPolicy.ApplyState.APPLYING and row["state_changed_at"] != claimed_at
    return row["enabled"] or newer_claim


def _withdrawn_message(removed: list[str], kept: list[dict], not_ours: list[dict]) -> str:
    """What a withdrawal did; the objects it left on the cluster named, never counted as already gone."""
    left = [f"{ref['kind']}/{ref['name']} (stamped by a later apply)" for ref in kept] + [
        f"{ref['kind']}/{ref['name']} (not the object applied: another was created under its name since)"
        for ref in not_ours
    ]
    if not removed and not left:
        return "policy disabled: removed nothing (already gone); the Deployment keeps its replicas"
    done = f"policy disabled: removed {', '.join(removed) or 'nothing'}"
    if left:
        done += f"; left on the cluster: {', '.join(left)}"
    return f"{done}; the Deployment keeps its replicas"


def _withdraw_outcome(
    policy: ScalingPolicy, claimed_at: datetime, state: str, *, refs: list[dict] | tuple, **fields
) -> ScalingPolicy:
    """Record a withdrawal's outcome with the row locked and re-read. `refs`: the objects removed, no longer
    kept whatever else happened meanwhile. Enabled again while withdrawing: PENDING with nothing counted as
    applied, so the checker applies it all again. A state another operation set since the claim (an apply
    taking over a withdrawal stuck for longer than a worker can take) stands."""
    states = ScalingPolicy.ApplyState
    with transaction.atomic():
        current = ScalingPolicy.objects.select_for_update(of=("self",)).filter(pk=policy.pk).first()
        if current is None:  # deleted meanwhile: its delete withdrew what was recorded
            return policy
        kept = [ref for ref in current.applied_objects or [] if ref not in refs]
        if current.apply_state != states.APPLYING or current.state_changed_at != claimed_at:
            ScalingPolicy.objects.filter(pk=current.pk).update(applied_objects=kept)
            current.applied_objects = kept
        elif current.enabled:
            error = "enabled again while its autoscaling was withdrawn: to be applied again"
            _set_state(current, states.PENDING, applied_objects=kept, applied_hash="", apply_attempts=0,
                       apply_error=error)  # fmt: skip
        else:
            _set_state(current, state, applied_objects=kept, **fields)
        _copy_state(current, policy)
    return policy


def policy_deleted(policy: ScalingPolicy) -> None:
    """A policy deleted (or its service): its autoscalers leave the cluster once the delete commits. What was
    applied is read with the row locked, inside the delete's transaction: the instance being deleted was
    loaded before an apply that finished meanwhile, and named only what was on the cluster before it."""
    current = ScalingPolicy.objects.select_for_update(of=("self",)).filter(pk=policy.pk).values("applied_objects")
    row = current.first()
    if row is not None:
        policy.applied_objects = row["applied_objects"]
    refs = _withdrawable(policy)
    if refs and kube.cluster_configured():
        transaction.on_commit(lambda: _send_removal(refs))


def _send_removal(refs: list[dict]) -> None:
    """The delete has committed: a broker that cannot take the task must not turn it into an error page, and
    no row is left to retry from, so the log names what to remove by hand."""
    from apps.scaling.tasks import remove_objects

    try:
        remove_objects.delay(refs)
    except Exception:
        logger.exception("autoscalers of a deleted scaling policy were not sent for removal; remove them: %s",
                         _ref_names(refs))  # fmt: skip


def _ref_names(refs: list[dict]) -> str:
    return ", ".join("{kind}/{namespace}/{name}".format(**ref) for ref in refs)


def deleted_objects_remove(refs: list[dict]) -> list[str]:
    """A deleted policy's autoscalers (scaling.remove_objects, retried with backoff): each deleted as the uid
    recorded when it was applied. A retry after a new policy for the same service was applied found the new
    policy's HPA under the name, and removed it. Left as well: an object another policy records now (a new
    policy's apply took over the old object under its name, keeping its uid). What it removed, and what it
    left and why."""
    keys = {_ref_key(ref) for ref in refs}
    # Matched here, not by a JSON `contains` lookup, which SQLite (the embedded mode) lacks: the task failed
    # there for good (NotSupportedError is no ApplyError to retry) and the autoscalers stayed. Policies are
    # tens of rows, one per service.
    policies = ScalingPolicy.objects.select_related("service").only("applied_objects", "service__slug") if keys else []
    claimed = {
        _ref_key(ref): policy.service.slug
        for policy in policies
        for ref in policy.applied_objects or []
        if _ref_key(ref) in keys
    }
    left = [f"left {ref['kind']}/{ref['name']}: the scaling policy of {claimed[_ref_key(ref)]} applies it now"
            for ref in refs if _ref_key(ref) in claimed]  # fmt: skip
    for line in left:
        logger.info("removal of a deleted scaling policy's autoscalers: %s", line)
    not_ours: list[dict] = []
    removed = kube.remove_objects([ref for ref in refs if _ref_key(ref) not in claimed], not_ours=not_ours)
    replaced = "not the object applied (another was created under its name since)"
    return removed + left + [f"left {ref['kind']}/{ref['name']}: {replaced}" for ref in not_ours]


def deleted_objects_unsent(refs: list[dict], *, error: BaseException, exc: BaseException) -> list[str]:
    """A removal's retry the broker refused (RabbitMQ down, its vhost gone): the worker rejected the task with no
    word of the autoscalers, and nothing tries again. An error names them all, to remove by hand (those the
    failed try removed are gone already); the same lines are the task's result."""
    logger.error("autoscalers of a deleted scaling policy not removed (%s), its retry not sent (%s); remove them: %s",
                 error, broker_failure(exc), _ref_names(refs))  # fmt: skip
    return [f"not removed, retry not sent: {ref['kind']}/{ref['name']}" for ref in refs]


def _ref_key(ref: dict) -> tuple[str, str, str]:
    return ref["kind"], ref["namespace"], ref["name"]


def _stuck(policy: ScalingPolicy, now: datetime) -> bool:
    """APPLYING for longer than a worker can take: the worker that took it is gone."""
    return (
        policy.apply_state == ScalingPolicy.ApplyState.APPLYING
        and policy.state_changed_at is not None
        and now - policy.state_changed_at > timedelta(seconds=settings.SCALING_APPLY_STUCK_SECONDS)
    )


# The longest wait between two tries of a failed apply. Doubled without an end, the 43rd attempt's wait
# (SCALING_APPLY_MAX_ATTEMPTS has no maximum) overflowed timedelta: the checker failed at that policy every
# minute, and no other policy's apply, withdrawal or emergency mode was followed any more.
RETRY_BACKOFF_MAX = timedelta(hours=1)


def _retry_due(policy: ScalingPolicy, now: datetime) -> bool:
    if policy.apply_attempts >= settings.SCALING_APPLY_MAX_ATTEMPTS:
        return False
    doublings = min(max(policy.apply_attempts - 1, 0), 20)  # 30 s x 2^20 is past the maximum already
    backoff = min(timedelta(seconds=30 * 2**doublings), RETRY_BACKOFF_MAX)
    return policy.state_changed_at is None or now - policy.state_changed_at >= backoff


def policies_reconcile(*, now: datetime | None = None) -> list[int]:
    """The checker: follow alerts into emergency mode, refresh digests, and send the applies that are due
    (pending, failed with backoff elapsed, or applying for longer than a worker can take), and the
    withdrawals of disabled policies' autoscalers (retried with the same backoff)."""
    from apps.scaling.tasks import apply_policy, withdraw_policy

    now = now or timezone.now()
    due = []
    for policy in ScalingPolicy.objects.filter(enabled=True).select_related("service", "emergency_alert_rule"):
        _follow_emergency_alert(policy, now)
        state = policy_state_refresh(policy)
        stuck = _stuck(policy, now)
        if stuck and policy.apply_attempts >= settings.SCALING_APPLY_MAX_ATTEMPTS:
            _give_up_stuck(policy)
            continue
        if (
            state == ScalingPolicy.ApplyState.PENDING
            or stuck
            or (state == ScalingPolicy.ApplyState.FAILED and _retry_due(policy, now))
        ):
            due.append(policy.pk)
            judged = policy.state_changed_at.isoformat() if policy.state_changed_at else ""
            transaction.on_commit(lambda pk=policy.pk, judged=judged: _checker_send(apply_policy, pk, judged))
    if kube.cluster_configured():
        for policy in ScalingPolicy.objects.filter(enabled=False):
            if _withdrawable(policy) and (
                policy.apply_state != ScalingPolicy.ApplyState.FAILED or _retry_due(policy, now)
            ):
                due.append(policy.pk)
                judged = policy.state_changed_at.isoformat() if policy.state_changed_at else ""
                transaction.on_commit(lambda pk=policy.pk, judged=judged: _checker_send(withdraw_policy, pk, judged))
    return due


def _checker_send(task: Task, policy_id: int, judged: str) -> None:
    """A send the broker refused (RabbitMQ down, its vhost gone) ended the checker's round at that policy: the
    policies after it were not judged (an emergency mode past its end kept, a stuck apply never given up), and
    every minute again while it refused. Logged instead: nothing was marked, so the policy is still due and
    the next round sends it."""
    try:
        task.delay(policy_id, judged)
    except send_errors(task.app) as exc:
        logger.warning("scaling policy %s: %s not sent, %s; the next round sends it", policy_id, task.name,
                       broker_failure(exc))  # fmt: skip


def _give_up_stuck(policy: ScalingPolicy) -> None:
    """A policy stuck in APPLYING as often as failed applies are retried is not sent again: FAILED says why
    (new manifests start its attempts afresh; an apply by hand still runs). Only if it is still the same
    stuck apply: a worker that finished meanwhile keeps its outcome."""
    error = (
        f"No worker finished the apply in {policy.apply_attempts} attempts "
        f"(each stuck for over {settings.SCALING_APPLY_STUCK_SECONDS} s); not sent again."
    )
    now = timezone.now()
    updated = ScalingPolicy.objects.filter(
        pk=policy.pk, apply_state=ScalingPolicy.ApplyState.APPLYING, state_changed_at=policy.state_changed_at
    ).update(apply_state=ScalingPolicy.ApplyState.FAILED, state_changed_at=now, apply_error=error)
    if updated:
        logger.warning("scaling apply of %s: %s", policy.service.slug, error)
        policy.apply_state, policy.state_changed_at, policy.apply_error = ScalingPolicy.ApplyState.FAILED, now, error


def emergency_mode_set(policy: ScalingPolicy, *, on: bool) -> ScalingPolicy:
    """Emergency mode by hand. On lifts the minimum at once and keeps it lifted whatever the alert rule does;
    off ends only the hand's part (the mode stays on while the alert rule fires). The manifests follow
    through the apply state machine."""
    in_force = on or _alert_firing(policy)
    # An end already past (left from an earlier time) would switch the mode off at the checker's next pass.
    until = (
        policy.emergency_until if on and policy.emergency_until and policy.emergency_until > timezone.now() else None
    )
    if (policy.emergency_manual, policy.emergency_mode, policy.emergency_until) != (on, in_force, until):
        policy.emergency_manual, policy.emergency_mode, policy.emergency_until = on, in_force, until
        policy.save(update_fields=["emergency_manual", "emergency_mode", "emergency_until", "updated_at"])
    return policy


def emergency_in_force(policy: ScalingPolicy, now: datetime | None = None) -> bool:
    """Emergency mode as it should be now: set by hand (and not past its end), or the alert rule firing."""
    until = policy.emergency_until
    by_hand = policy.emergency_manual and (until is None or (now or timezone.now()) < until)
    return by_hand or _alert_firing(policy)


def _alert_firing(policy: ScalingPolicy) -> bool:
    from apps.metrics.models import Alert

    rule = policy.emergency_alert_rule
    # A disabled rule is no longer evaluated: an alert it left firing says nothing about now.
    return rule is not None and rule.enabled and rule.alerts.filter(state=Alert.State.FIRING).exists()


def _follow_emergency_alert(policy: ScalingPolicy, now: datetime) -> None:
    fields = []
    if policy.emergency_manual and policy.emergency_until is not None and now >= policy.emergency_until:
        logger.info("emergency mode of %s set by hand until %s: ended", policy.service.slug, policy.emergency_until)
        policy.emergency_manual, policy.emergency_until = False, None
        fields += ["emergency_manual", "emergency_until"]
    in_force = emergency_in_force(policy, now)
    if in_force != policy.emergency_mode:
        policy.emergency_mode = in_force
        fields.append("emergency_mode")
    if fields:
        policy.save(update_fields=[*fields, "updated_at"])
