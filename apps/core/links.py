"""Links the management commands print: whole URLs on the address the product is served at, which a user can
open from the terminal. A bare path (`/benchmarks/runs/7/report/`) names no host, so it opened nothing."""

from __future__ import annotations

import os

DEFAULT_BASE_URL = "http://127.0.0.1:8000"  # make run's HOST and PORT, as seed_demo's default --base-url


def base_url() -> str:
    """CONTROLPLANE_URL without a trailing slash, make run's address when it is unset or blank: the one reading of
    it, for seed_demo's default --base-url too (which took it raw: an empty one was refused, a trailing slash
    printed `//admin/`)."""
    return os.environ.get("CONTROLPLANE_URL", "").strip().rstrip("/") or DEFAULT_BASE_URL


def absolute_url(path: str) -> str:
    """`path` on base_url(), the address seed_demo's links use too."""
    return f"{base_url()}/{path.lstrip('/')}"
