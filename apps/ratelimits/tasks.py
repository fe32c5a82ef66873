import psutil
from celery import shared_task

from apps.metrics.selectors import service_p95_ms_recent
from apps.ratelimits import services


@shared_task(name="ratelimits.adapt")
def adapt() -> int:
    """Sample the host CPU over a second and adjust the adaptive policies."""
    signals = services.LoadSignals(cpu_pct=psutil.cpu_percent(interval=1.0), p95_ms_by_service=service_p95_ms_recent())
    return len(services.ratelimits_adapt(signals=signals))
