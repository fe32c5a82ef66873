"""Writes of the inference app: the bundled deployments, and storing what profiling measured."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.inference import profiling
from apps.inference.backends import LoadSpec
from apps.inference.models import ModelDeployment, QuantizationProfile

BUNDLED = [
    {"name": "clinical-embeddings", "source": ModelDeployment.Source.MINILM, "task": ModelDeployment.Task.EMBEDDING,
     "service_slug": "embeddings", "max_batch_size": 32, "max_queue_delay_ms": 10, "slo_p95_ms": 300,
     "fidelity_budget": 0.02, "max_input_tokens": 256},
    {"name": "clinical-assistant", "source": ModelDeployment.Source.SMOLLM2, "task": ModelDeployment.Task.GENERATION,
     "service_slug": "clinical-assistant", "max_batch_size": 4, "max_queue_delay_ms": 20, "slo_p95_ms": 8000,
     "fidelity_budget": 0.1, "max_input_tokens": 512, "max_new_tokens": 64},
]  # fmt: skip


def bundled_deployments_ensure() -> list[ModelDeployment]:
    """The two deployments of the bundled models (idempotent; an admin's edits are kept)."""
    from apps.services.models import Service

    deployments = []
    for spec in BUNDLED:
        fields = dict(spec)
        slug = fields.pop("service_slug")
        fields["service"] = Service.objects.filter(slug=slug).first()
        deployment, _ = ModelDeployment.objects.get_or_create(name=fields.pop("name"), defaults=fields)
        deployments.append(deployment)
    return deployments


def deployment_profile(
    deployment: ModelDeployment,
    *,
    modes: list[str] | None = None,
    workload: list[str] | None = None,
    progress: profiling.Progress = lambda fraction, message: None,
) -> list[QuantizationProfile]:
    """Measure every mode on this host, store one profile per mode, record the choice on the deployment."""
    results = profiling.profile(LoadSpec.of(deployment), slo_ms=deployment.slo_p95_ms,
                                max_batch=deployment.max_batch_size, modes=modes, workload=workload,
                                progress=progress)  # fmt: skip
    chosen = profiling.choose(results, budget=deployment.fidelity_budget, task=deployment.task)
    measured_at = timezone.now()
    with transaction.atomic():
        profiles = [
            QuantizationProfile.objects.create(
                deployment=deployment, measured_at=measured_at, mode=result.mode, device=result.device,
                available=result.available, chosen=result is chosen, verdict=result.verdict, fidelity=result.fidelity,
                fidelity_loss=result.fidelity_loss, **_rounded(result.figures),
            )
            for result in results
        ]  # fmt: skip
        ModelDeployment.objects.filter(pk=deployment.pk).update(
            chosen_quantization=chosen.mode, chosen_at=measured_at, updated_at=measured_at
        )
    deployment.refresh_from_db()
    return profiles


def _rounded(figures: dict) -> dict:
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in figures.items()}
