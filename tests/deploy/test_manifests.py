"""Every Kubernetes manifest validates offline against the API schemas (kubernetes-validate)."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helpers import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
KUBERNETES_VERSION = "1.33"


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> list[Path]:
    # deploy/generated/ holds `manage.py scaling export` output (CRDs included): tested in tests/scaling.
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml" and "generated" not in p.parts)


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_is_valid(path):
    for document in _documents(path):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_base_manifest():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present


def _deployments() -> dict[str, dict]:
    return {
        doc["metadata"]["name"]: doc
        for path in BASE.glob("*-deployment.yaml")
        for doc in _documents(path)
        if doc["kind"] == "Deployment"
    }


def test_the_four_processes_are_deployed():
    assert set(_deployments()) == {"controlplane-api", "controlplane-live", "controlplane-worker", "controlplane-beat"}


@pytest.mark.parametrize("name", ["controlplane-api", "controlplane-live"])
def test_web_processes_probe_healthz_and_readyz(name):
    container = _deployments()[name]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_every_process_reads_config_and_the_secret_reference():
    for deployment in _deployments().values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        sources = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert sources == {"configMapRef": "controlplane-config", "secretRef": "controlplane-secrets"}


def test_beat_never_runs_twice():
    beat = _deployments()["controlplane-beat"]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"]["type"] == "Recreate"


def test_dockerfile_builds_the_frontend_and_runs_as_non_root():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "npm run build" in dockerfile
    assert "USER 10001" in dockerfile
