"""A deleted policy's removal in the embedded mode (SQLite): the lookup of the policies that still record an object
used a JSON `contains` filter, which SQLite lacks: NotSupportedError, which the task does not retry, so the
autoscalers stayed on the cluster for good. Run in a process of its own on a migrated SQLite database.

No Kubernetes API server can run here: the cluster's deletes are stood in for by a function that returns what it
was asked to remove."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO_ROOT

REMOVE_ON_SQLITE = """
import json, django
django.setup()
from unittest import mock
from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

def hpa(name):
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "namespace": "medical-ai", "name": name}

service = Service.objects.create(name="kept", slug="kept", route_prefix="api/kept/")
policy = services.scaling_policy_ensure(service, history_source="synthetic", predictive=False)[0]
ScalingPolicy.objects.filter(pk=policy.pk).update(applied_objects=[hpa("kept")])
asked = []
with mock.patch("apps.scaling.kube.remove_objects", lambda refs, **kw: asked.extend(refs) or [r["name"] for r in refs]):
    outcome = services.deleted_objects_remove([hpa("gone"), hpa("kept")])
print(json.dumps({"asked": [r["name"] for r in asked], "outcome": outcome}))
"""


def test_a_deleted_policys_removal_runs_on_sqlite(tmp_path):
    keep = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    env = {**keep, "VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "controlplane.settings"}
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    run = subprocess.run([sys.executable, "-c", REMOVE_ON_SQLITE], cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["asked"] == ["gone"]  # the one another policy records is left
    assert "gone" in result["outcome"]
    assert any("left HorizontalPodAutoscaler/kept" in line for line in result["outcome"]), result
