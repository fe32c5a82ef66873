"""kubernetes (~0.8 s) and pandas (~1 s) were imported by apps.scaling.manifests, kube, history and services at
module level, and those load with the admin, the URLconf and the Celery tasks: every manage.py command, worker
and server paid for them. Now they are imported where they are used (STYLE.md 7: heavy imports where used)."""

import os

from tests.helpers import run_python

HEAVY = ("kubernetes", "pandas")

STARTUP = """
import sys
from importlib import import_module
from importlib.util import find_spec

import django
from django.apps import apps
from django.conf import settings
from django.core.management import call_command

django.setup()
call_command("check")
import_module(settings.ROOT_URLCONF)
import controlplane.celery  # noqa: F401  (a worker's start)
for config in apps.get_app_configs():
    for module in ("admin", "tasks", "selectors", "services"):
        if find_spec(f"{config.name}.{module}") is not None:
            import_module(f"{config.name}.{module}")
import_module("apps.scaling.management.commands.scaling")
import_module("apps.benchmarks.management.commands.bench")
print(" ".join(name for name in HEAVY if name in sys.modules) or "none")
"""


def test_startup_imports_neither_kubernetes_nor_pandas():
    result = run_python(f"HEAVY = {HEAVY!r}\n{STARTUP}", env=dict(os.environ), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "none", result.stdout[-2000:]


def test_the_scaling_services_still_reach_them_when_used():
    code = (
        "import django; django.setup()\n"
        "from apps.scaling import manifests, services\n"
        "spec = manifests.ServiceScaling(name='svc', namespace='default', image='img:1')\n"
        "docs = manifests.documents(spec)\n"
        "print(sorted(docs), manifests.validate(docs))\n"
        "print(services.MIN_HISTORY_HOURS, services.RECENT_HOURS)\n"
    )
    result = run_python(code, env=dict(os.environ), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "svc-deployment.yaml" in result.stdout and "] []" in result.stdout and "72 72" in result.stdout, (
        result.stdout
    )
