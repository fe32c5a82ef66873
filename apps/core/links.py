"""Links the management commands print: whole URLs on the address the product is served at, which a user can
open from the terminal. A bare path (`/benchmarks/runs/7/report/`) names no host, so it opened nothing."""

from __future__ import annotations

import os

DEFAULT_BASE_URL = "http://127.0.0.1:8000"  # make run's HOST and PORT, as seed_demo's default --base-url


def absolute_url(path: str) -> str:
    """`path` on CONTROLPLANE_URL, the address seed_demo's links use too (make run's when it is unset or empty)."""
    base = os.environ.get("CONTROLPLANE_URL", "").strip().rstrip("/") or DEFAULT_BASE_URL
    return f"{base}/{path.lstrip('/')}"
