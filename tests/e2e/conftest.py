"""One running product for the whole e2e session: the accessibility audit and the browser test drove the same
e2e database and Redis db through a stack of their own each (a migrate, the demo's seeding and checks, one
gunicorn and one uvicorn start a module: about a minute and a half of CI each). A module says how many
synthetic patients it needs with E2E_PATIENTS; the session loads the most any collected module asks for, so a
module run alone loads only its own (the accessibility audit alone: a few hundred, not the browser test's
100,000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.stack import CHROMIUM, prepare, running


def _patients_needed(session: pytest.Session) -> int:
    """The most E2E_PATIENTS of the collected modules whose tests use the stack."""
    return max(
        (
            getattr(item.module, "E2E_PATIENTS", 0)
            for item in session.items
            if "stack" in getattr(item, "fixturenames", ()) and getattr(item, "module", None) is not None
        ),
        default=0,
    )


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory):
    """The product as `make run` starts it, with the patients the session's modules need. Tests that change it
    put it back (the live process restarted on its port; a session's idle state is its own)."""
    from playwright.sync_api import sync_playwright  # noqa: F401  (fail here, clearly, if it is missing)

    assert Path(CHROMIUM).is_file(), "Debian's chromium is not installed (scripts/test.sh installs it)"
    env = prepare(patients=_patients_needed(request.session), var_dir=tmp_path_factory.mktemp("e2e-var"))
    with running(env) as running_stack:
        yield running_stack
