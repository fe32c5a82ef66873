"""A deleted plan takes its nightly schedules with it, however it was deleted (admin, API, a cascade)."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.benchmarks.models import BenchmarkPlan


@receiver(post_delete, sender=BenchmarkPlan)
def benchmark_plan_deleted(sender, instance: BenchmarkPlan, **kwargs) -> None:
    from apps.benchmarks.services import nightly_benchmark_forget

    nightly_benchmark_forget(plan_id=instance.pk)
