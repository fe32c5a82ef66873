"""Reads of the inference app: the latest measured table per deployment, whether a deployment is a bundled one."""

from __future__ import annotations

from apps.inference.models import ModelDeployment, QuantizationProfile
from apps.services.selectors import of_visible_services


def is_bundled_deployment(deployment: ModelDeployment) -> bool:
    """One of the deployments `services.bundled_deployments_ensure` (seed_demo) keeps by name: renamed, its API URL
    moves and the next seed makes the old name again, a second deployment of the same model."""
    from apps.inference.services import BUNDLED

    return deployment.pk is not None and deployment.name in {spec["name"] for spec in BUNDLED}


def latest_profiles(deployment: ModelDeployment) -> list[QuantizationProfile]:
    """The profiles of the most recent measurement, the chosen mode first, then the fastest."""
    newest = deployment.profiles.order_by("-measured_at").values_list("measured_at", flat=True).first()
    if newest is None:
        return []
    rows = list(deployment.profiles.filter(measured_at=newest))
    return sorted(rows, key=lambda p: (not p.chosen, not p.available, -(p.tokens_per_s or p.sequences_per_s or 0)))


PROFILE_FIELDS = (
    *("mode", "device", "available", "chosen", "verdict", "p50_ms_batch1", "p95_ms_batch1", "best_batch_size"),
    *("p95_ms_best_batch", "sequences_per_s", "tokens_per_s", "tokens_per_s_batch1", "ttft_ms", "tpot_ms"),
    *("peak_memory_mb", "weights_mb", "load_seconds", "fidelity", "fidelity_loss"),
)


def deployment_overview(*, visible_services: frozenset[int] | None = None) -> list[dict]:
    """Every deployment (of the visible services, and those of none) with what it serves and the table of
    its last measurement (the dashboard). `serving_quantization` is the mode this process answers in (see
    serving.serving_here), `serving_reason` why that is not the mode asked for, `load_failure` the last load
    that failed on a serving process."""
    from apps.inference import serving

    rows = []
    deployments = of_visible_services(ModelDeployment.objects.select_related("service"), visible_services,
                                      unassigned=True)  # fmt: skip
    for deployment in deployments:
        profiles = latest_profiles(deployment)
        mode, reason = serving.serving_here(deployment)
        rows.append({
            "id": deployment.pk, "name": deployment.name, "task": deployment.task, "source": deployment.source,
            "service": deployment.service.slug if deployment.service else None, "enabled": deployment.enabled,
            "quantization": deployment.quantization, "serving_quantization": mode, "serving_reason": reason,
            "load_failure": deployment.load_failure or None,
            "load_failed_at": deployment.load_failed_at.isoformat() if deployment.load_failed_at else None,
            "chosen_quantization": deployment.chosen_quantization or None,
            "measured_at": profiles[0].measured_at.isoformat() if profiles else None,
            "max_batch_size": deployment.max_batch_size, "max_queue_delay_ms": deployment.max_queue_delay_ms,
            "slo_p95_ms": deployment.slo_p95_ms, "fidelity_budget": deployment.fidelity_budget,
            "profiles": [{name: getattr(p, name) for name in PROFILE_FIELDS} for p in profiles],
        })  # fmt: skip
    return rows
