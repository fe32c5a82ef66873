"""Reads of the scaling app for the dashboard: forecasts against what happened, plans, manifests."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.scaling import manifests
from apps.scaling.models import ScalingPolicy, WorkloadForecast
from apps.services.selectors import of_visible_services


def _forecast_json(forecast: WorkloadForecast | None) -> dict | None:
    if forecast is None:
        return None
    return {
        "id": forecast.pk, "metric": forecast.metric, "created_at": forecast.created_at.isoformat(),
        "model": forecast.model, "source": forecast.source, "scores": forecast.scores,
        "points": forecast.points, "recent": forecast.recent, "patterns": forecast.patterns,
    }  # fmt: skip


def _earlier_forecast(service_id: int, metric: str, now: datetime) -> dict | None:
    """Yesterday's forecast, whose bands now lie over actuals: how good the model has been."""
    earlier = (
        WorkloadForecast.objects.filter(service_id=service_id, metric=metric, created_at__lte=now - timedelta(hours=20))
        .order_by("-created_at").only("created_at", "points", "model").first()
    )  # fmt: skip
    if earlier is None:
        return None
    return {"created_at": earlier.created_at.isoformat(), "model": earlier.model, "points": earlier.points}


def _emergency_rule_json(policy: ScalingPolicy, visible_rule_ids: set[int] | None) -> dict | None:
    """The rule a policy follows into emergency mode, or, for a viewer who may not see that rule (another
    service's, hidden from them), only that there is one: its name and state told them of the hidden
    service's alerts."""
    rule = policy.emergency_alert_rule
    if rule is None:
        return None
    if visible_rule_ids is not None and rule.pk not in visible_rule_ids:
        return {"id": None, "name": None, "hidden": True, "enabled": None, "firing": None}
    # A disabled rule's leftover alert holds nothing (services._alert_firing).
    return {
        "id": rule.pk, "name": rule.name, "hidden": False, "enabled": rule.enabled,
        "firing": rule.enabled and policy.rule_firing,
    }  # fmt: skip


def scaling_overview(*, now: datetime | None = None, visible_services: frozenset[int] | None = None) -> list[dict]:
    """Every policy: its limits and state, why it is in emergency mode (set by hand, its alert rule
    firing, or both; read-only here: set in admin), the latest forecast per metric, yesterday's forecast
    of the request rate (against actuals), and the replica plan."""
    from apps.metrics.models import Alert, AlertRule
    from apps.metrics.selectors import rules_visible

    now = now or timezone.now()
    rows = []
    firing = Alert.objects.filter(rule=OuterRef("emergency_alert_rule"), state=Alert.State.FIRING)
    policies = of_visible_services(
        ScalingPolicy.objects.select_related("service", "emergency_alert_rule").annotate(rule_firing=Exists(firing)),
        visible_services,
    )
    policies = list(policies.order_by("service__name"))
    visible_rule_ids = None
    if visible_services is not None and any(policy.emergency_alert_rule_id for policy in policies):
        rule_ids = {policy.emergency_alert_rule_id for policy in policies} - {None}
        rules = rules_visible(AlertRule.objects.filter(pk__in=rule_ids), visible_services)
        visible_rule_ids = set(rules.values_list("pk", flat=True))
    for policy in policies:
        service = policy.service
        forecasts = {}
        for metric in WorkloadForecast.Metric.values:
            latest = service.forecasts.filter(metric=metric).order_by("-created_at").first()
            forecasts[metric] = _forecast_json(latest)
        plan = service.scaling_recommendations.first()
        rows.append({
            "id": policy.pk, "service": service.slug, "service_name": service.name, "enabled": policy.enabled,
            "min_replicas": policy.min_replicas, "max_replicas": policy.max_replicas,
            "floor_replicas": policy.floor_replicas, "target_cpu_pct": policy.target_cpu_pct,
            "target_memory_pct": policy.target_memory_pct, "vpa_mode": policy.vpa_mode,
            "predictive": policy.predictive, "keda_enabled": policy.keda_enabled,
            "emergency_mode": policy.emergency_mode, "emergency_manual": policy.emergency_manual,
            "emergency_until": policy.emergency_until.isoformat() if policy.emergency_until else None,
            "emergency_alert_rule": _emergency_rule_json(policy, visible_rule_ids), "apply_state": policy.apply_state,
            "apply_error": policy.apply_error, "history_source": policy.history_source,
            "forecasts": forecasts, "forecast_skipped": policy.forecast_skipped,
            "earlier_request_rate": _earlier_forecast(service.pk, WorkloadForecast.Metric.REQUEST_RATE, now),
            "plan": None if plan is None else {
                "created_at": plan.created_at.isoformat(), "hours": plan.hours, "peak_replicas": plan.peak_replicas,
                "min_replicas": plan.min_replicas, "emergency": plan.emergency, "reasons": plan.reasons,
                "stale": plan.is_stale(now),
            },
        })  # fmt: skip
    return rows


def manifest_preview(policy: ScalingPolicy) -> dict:
    """The YAML the policy generates now, file by file, with the offline validation's findings."""
    from apps.scaling.services import policy_manifests

    docs = policy_manifests(policy)
    return {
        "service": policy.service.slug,
        "files": {name: manifests.to_yaml(doc) for name, doc in docs.items()},
        "errors": manifests.validate(docs),
        "digest": manifests.digest(docs),
    }
