"""Across real processes: a policy edit reaches another process within about a second."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from apps.caching import services
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)

WATCHER = """
import time, django
django.setup()
from apps.caching.stack import default_stack
stack = default_stack()
deadline = time.time() + 20
while time.time() < deadline:
    print(stack.policy("patient_data").ttl, flush=True)
    time.sleep(0.02)
"""


def test_a_policy_edit_reaches_another_process_within_about_a_second():
    services.cache_policy_ensure(namespace="patient_data")
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
    }
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCHER], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert watcher.stdout.readline().strip() == "1800"  # the brief's 30 minutes
        policy = services.cache_policy_ensure(namespace="patient_data")
        policy.ttl_seconds = 45
        policy.save()
        edited = time.monotonic()
        for line in watcher.stdout:
            if line.strip() == "45":
                break
        seen_after = time.monotonic() - edited
    finally:
        watcher.kill()
        watcher.wait()
    assert seen_after < 2.0, f"the other process saw the edit after {seen_after:.2f}s"
