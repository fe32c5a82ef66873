"""What a browser posts for an admin page as it shows it: the admin-walking tests start from it and change one
field at a time."""

from __future__ import annotations

import datetime


def form_data(form) -> dict:
    """One form's fields as the page shows them (a ticked box as "on", a split date and time as two fields)."""
    data = {}
    for field in form:
        value = field.value()
        if value is None or value is False:
            continue
        if value is True:
            data[field.html_name] = "on"
        elif isinstance(value, list | tuple):
            data[field.html_name] = [str(item) for item in value]
        elif isinstance(value, datetime.datetime):
            data[f"{field.html_name}_0"], data[f"{field.html_name}_1"] = f"{value:%Y-%m-%d}", f"{value:%H:%M:%S}"
        else:
            data[field.html_name] = str(value)
    return data


def page_data(context) -> dict:
    """An add or change page's form, its inlines' forms and management forms, and its Save button."""
    data = {**form_data(context["adminform"].form), "_save": "Save"}
    for inline in context.get("inline_admin_formsets", []):
        formset = inline.formset
        data |= {f"{formset.prefix}-{key}": str(value) for key, value in formset.management_form.initial.items()}
        for form in formset.forms:
            data |= form_data(form)
    return data


def rows_the_workers_make(*, service, plan, policy, deployment, user, label: str, run_statuses=("pending",),
                          decided_by=None) -> None:  # fmt: skip
    """A row of each model that only the workers fill (alerts and their notices, optimization runs and their
    recommendations, adaptive rate-limit changes, resource samples, forecasts, benchmark runs and regressions,
    quantization profiles), for the admin's lists to show; `label` keeps names and hosts apart between calls."""
    from apps.benchmarks.models import BenchmarkRun, Regression
    from apps.inference.models import QuantizationProfile
    from apps.metrics.models import Alert, AlertNotification, AlertRule
    from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation
    from apps.ratelimits.models import RateLimitAdjustment
    from apps.resources.models import ResourceRecommendation, ResourceSample
    from apps.scaling.models import ScalingRecommendation, WorkloadForecast

    rule = AlertRule.objects.create(name=f"rule {label}", metric="p95_ms", threshold=2000, service=service)
    alert = Alert.objects.create(rule=rule, value=1, last_value=1, message="m", state=Alert.State.RESOLVED)
    AlertNotification.objects.create(alert=alert, event="fire", channel="email", target="oncall@example.org")
    for status in run_statuses:
        run = OptimizationRun.objects.create(target="cache", service=service, status=status)
        OptimizationStep.objects.create(run=run, name="cache", position=0)
        Recommendation.objects.create(run=run, step="cache", kind="ttl", subject="s", title=f"t {label} {status}",
                                      reason="r", decided_by=decided_by)  # fmt: skip
    RateLimitAdjustment.objects.create(policy=policy, direction="tighten", old_factor=1, new_factor=0.5, reason="x")
    ResourceRecommendation.objects.create(kind="cpu", host=f"host-{label}", metric="cpu_pct", value=90, threshold=70,
                                          message="m")  # fmt: skip
    ResourceSample.objects.create(host=f"host-{label}", cpu_pct=1, memory_pct=1, disk_pct=1)
    forecast = WorkloadForecast.objects.create(service=service, metric="rps", source="metrics", history_hours=1,
                                               model="seasonal")  # fmt: skip
    ScalingRecommendation.objects.create(service=service, forecast=forecast, peak_replicas=2, min_replicas=1)
    bench = BenchmarkRun.objects.create(plan=plan)
    Regression.objects.create(plan=plan, run=bench, baseline=1, current=2, change_pct=100, p_value=0.01,
                              threshold_pct=10, acknowledged_by=user)  # fmt: skip
    QuantizationProfile.objects.create(deployment=deployment, mode="fp32", device="cpu")
