"""Helpers shared by the tests that read the request metrics (rollups, SLO figures, verdicts)."""

from __future__ import annotations

from apps.metrics.recorder import Recorder

VITALS_ROUTE = "api/v1/vitals/<id>/"


def record_traffic(latency_ms: float, *, count: int, status: int, route: str = VITALS_ROUTE) -> None:
    """`count` requests to `route` answered `status` in `latency_ms`, recorded and flushed as a process would."""
    process = Recorder(flush_interval=3600, background=False)
    for _ in range(count):
        process.record(route=route, method="GET", status=status, client="app", elapsed_us=int(latency_ms * 1000))
    process.flush()
