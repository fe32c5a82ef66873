"""The orchestrator's scaling step: forecasts, replica plans and validated manifests per service."""

from __future__ import annotations

from django.db import transaction

from apps.core.services import fields_update
from apps.optimizer.types import Draft, Goals, Progress, StepResult, verdict
from apps.scaling import manifests, services
from apps.scaling.models import ScalingPolicy, WorkloadForecast


def measure(goals: Goals, progress: Progress) -> StepResult:
    policies = list(ScalingPolicy.objects.filter(enabled=True).select_related("service"))
    if goals.service_slug:
        policies = [p for p in policies if p.service.slug == goals.service_slug]
    if not policies:
        return StepResult(skipped="No enabled scaling policy (admin: Scaling policies).")
    findings, drafts = {"services": []}, []
    for position, policy in enumerate(policies):
        progress(position / len(policies), f"forecast {policy.service.slug}")
        report = services.forecasts_refresh(services=[policy.service]) if policy.predictive else {"skipped": []}
        docs = services.policy_manifests(policy)
        errors = manifests.validate(docs)
        summary = _summary(policy, report, errors)
        findings["services"].append(summary)
        drafts += _drafts(policy, summary, errors)
    return StepResult(findings=findings, drafts=drafts)


def _latest(policy: ScalingPolicy, metric: str) -> WorkloadForecast | None:
    return policy.service.forecasts.filter(metric=metric).first()


def _summary(policy: ScalingPolicy, report: dict, errors: list[str]) -> dict:
    summary = {
        "service": policy.service.slug,
        "source": policy.get_history_source_display(),
        "skipped": report.get("skipped", []),
        "manifest_errors": errors,
        "apply_state": policy.apply_state,
        "min_replicas": policy.min_replicas,
        "max_replicas": policy.max_replicas,
        "max_replicas_ceiling": policy.max_replicas_ceiling,
    }
    request_rate = _latest(policy, WorkloadForecast.Metric.REQUEST_RATE)
    if request_rate is not None:
        chosen = next((c for c in request_rate.scores.get("candidates", []) if c["model"] == request_rate.model), {})
        scores = {key: chosen.get(key) for key in ("mase_24", "mase_168", "smape", "coverage")}
        peaks = [peak["name"] for peak in request_rate.patterns.get("peaks", [])]
        summary["forecast"] = {"id": request_rate.pk, "model": request_rate.model, **scores, "peaks": peaks}
    plan = policy.service.scaling_recommendations.first()
    if plan is not None:
        summary["plan"] = {
            "id": plan.pk,
            "min": plan.min_replicas,
            "peak": plan.peak_replicas,
            "needed_peak": max(hour.get("needed", hour["replicas"]) for hour in plan.hours),
            "reasons": plan.reasons,
            "created_at": plan.created_at.isoformat(),
            "stale": plan.is_stale(),
        }
    response = _latest(policy, WorkloadForecast.Metric.RESPONSE_TIME)
    if response is not None:
        peak = max(response.points, key=lambda point: point["p50"])
        summary["response_time_peak"] = {"at": peak["at"], "p50_ms": peak["p50"], "p90_ms": peak["p90"]}
    return summary


def _drafts(policy: ScalingPolicy, summary: dict, errors: list[str]) -> list[Draft]:
    drafts = []
    plan = summary.get("plan")
    if plan and plan.get("stale"):
        # It plans no hour ahead any more: what it needed weeks ago is no reason to pay for more replicas now.
        slug = policy.service.slug
        drafts.append(
            Draft(
                kind="scaling_plan_stale",
                subject=slug,
                title=f"{slug}'s replica plan is stale: check its forecasts",
                reason=f"The newest replica plan was made at {plan['created_at']} and no forecast has replaced it; "
                "its KEDA cron windows (if any) repeat its hours every day. Why the forecasts stopped is in the "
                "policy's forecast notes (admin) and the workers' logs. No maximum is proposed from it.",
                change={},
                evidence=plan,
                actionable=False,
            )
        )
    elif plan and plan["needed_peak"] > policy.max_replicas:
        needed, ceiling, slug = plan["needed_peak"], policy.max_replicas_ceiling, policy.service.slug
        reason = "The P90 request-rate forecast needs more replicas than the maximum allows: " + " ".join(
            plan["reasons"]
        )
        held = f"The forecast needs {needed} replicas, above this policy's ceiling for the optimizer ({ceiling})"
        evidence = {**plan, "max_replicas_ceiling": ceiling, "capped": needed > ceiling}
        raised = min(needed, ceiling)
        if raised > policy.max_replicas:
            drafts.append(
                Draft(
                    kind="scaling_max_replicas",
                    subject=slug,
                    title=f"Raise {slug}'s maximum replicas from {policy.max_replicas} to {raised}"
                    + (f", its ceiling (the forecast needs {needed})" if needed > ceiling else ""),
                    reason=reason
                    + (f" {held}: raised to the ceiling; above it only by hand." if needed > ceiling else ""),
                    change={"max_replicas": raised},
                    evidence=evidence,
                )
            )
        else:
            drafts.append(
                Draft(
                    kind="scaling_max_replicas_ceiling",
                    subject=slug,
                    title=f"{slug} needs {needed} replicas, above its ceiling of {ceiling}: check the forecast",
                    reason=f"{reason} {held} and its maximum ({policy.max_replicas}): the optimizer raises it no "
                    "further. Check the capacity per replica and the history; raise the ceiling or the maximum by "
                    "hand if the load is real.",
                    change={},
                    evidence=evidence,
                    actionable=False,
                )
            )
    if errors:
        drafts.append(
            Draft(
                kind="scaling_manifests_invalid",
                subject=policy.service.slug,
                title=f"Fix {policy.service.slug}'s scaling policy: its manifests would be refused",
                reason="; ".join(errors),
                change={},
                evidence={"errors": errors},
                actionable=False,
            )
        )
    return drafts


def apply(change: dict, subject: str) -> dict:
    """Raise the maximum replicas, held to the policy's ceiling as it is now (a proposal made before the
    ceiling, or before an admin lowered it, asks for more); never lowers it. The outcome says when the
    ceiling held it."""
    with transaction.atomic():
        policy = ScalingPolicy.objects.select_for_update().get(service__slug=subject)
        asked, ceiling = change["max_replicas"], policy.max_replicas_ceiling
        raised = min(asked, ceiling)
        if raised <= policy.max_replicas:
            raise ValueError(
                f"{subject}'s maximum is already {policy.max_replicas} replicas, at or above the {raised} this "
                f"would raise it to (asked {asked}, ceiling {ceiling}): nothing to raise."
            )
        _, before = fields_update(ScalingPolicy.objects.filter(pk=policy.pk), {"max_replicas": raised})
    outcome = {"service": subject, "before": before, "after": {"max_replicas": raised}}
    if asked > ceiling:
        outcome["capped"] = {"asked": asked, "ceiling": ceiling}
    return outcome


def verdicts(findings: dict, goals: Goals) -> list[dict]:
    if goals.response_time_ms is None:
        return []
    return [
        verdict(
            target="response_time",
            subject=f"{summary['service']} response time forecast at tomorrow's peak (P50)",
            measured=summary["response_time_peak"]["p50_ms"],
            goal=goals.response_time_ms,
            unit="ms",
            higher_is_better=False,
        )
        for summary in findings.get("services", [])
        if "response_time_peak" in summary
    ]


def report_charts(findings: dict) -> dict[str, dict]:
    """Per service: the request-rate forecast and the replica plan the run made, as inline SVG."""
    from apps.scaling.charts import forecast_svg, replicas_svg
    from apps.scaling.models import ScalingRecommendation

    charts = {}
    for summary in findings.get("services", []):
        forecast = WorkloadForecast.objects.filter(pk=summary.get("forecast", {}).get("id")).first()
        plan = ScalingRecommendation.objects.filter(pk=summary.get("plan", {}).get("id")).first()
        charts[summary["service"]] = {
            "forecast": forecast_svg(forecast.recent, forecast.points) if forecast else "",
            "plan": replicas_svg(plan.hours) if plan else "",
        }
    return charts
