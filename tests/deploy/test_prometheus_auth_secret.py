"""The example `prometheus-auth` Secret (deploy/k8s/prometheus-auth-secret.example.yaml): what the exported
TriggerAuthentication reads Prometheus' credentials from. Validated offline like every manifest, and its keys
are the ones the TriggerAuthentication names, for basic auth and (the commented alternative) a bearer token."""

import re

import kubernetes_validate
import pytest
import yaml

from apps.scaling import manifests
from apps.scaling.manifests import ServiceScaling
from apps.scaling.models import ScalingPolicy
from tests.helpers import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
EXAMPLE = DEPLOY / "k8s" / "prometheus-auth-secret.example.yaml"
KUBERNETES_VERSION = "1.33"


def _secret() -> dict:
    (secret,) = [doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc]
    return secret


def _referenced(mode: str) -> tuple[set[str], set[str]]:
    """(the Secret names, the keys) that the TriggerAuthentication exported for `mode` reads."""
    spec = ServiceScaling(name="triage", keda_enabled=True, target_rps_per_pod=20)
    refs = manifests.trigger_authentication(spec, mode)["spec"]["secretTargetRef"]
    return {ref["name"] for ref in refs}, {ref["key"] for ref in refs}


def test_the_example_validates_against_the_schemas():
    kubernetes_validate.validate(_secret(), KUBERNETES_VERSION, strict=True)


def test_it_is_the_secret_the_trigger_authentication_names_in_the_policies_default_namespace():
    secret = _secret()
    assert secret["kind"] == "Secret" and secret["type"] == "Opaque"
    names, _ = _referenced("basic")
    assert names == {secret["metadata"]["name"]} == {manifests.PROMETHEUS_AUTH_SECRET}
    assert secret["metadata"]["namespace"] == ScalingPolicy._meta.get_field("namespace").default
    assert secret["metadata"]["namespace"] == ServiceScaling(name="triage").namespace


def test_its_keys_are_the_basic_auth_keys_the_trigger_authentication_reads():
    _, keys = _referenced("basic")
    assert set(_secret()["stringData"]) == keys


def test_its_commented_alternative_holds_the_bearer_token_key():
    """The bearer form is shown as a comment (one Secret of that name per namespace): uncommented in place of
    the basic keys, it is what a bearer-mode TriggerAuthentication reads."""
    alternative = re.findall(r"^\s*#\s+(\w+):\s*\"replace-with-[^\"]*\"\s*$", EXAMPLE.read_text(), re.M)
    _, keys = _referenced("bearer")
    assert set(alternative) == keys
    assert f"--from-literal={next(iter(keys))}=" in EXAMPLE.read_text()  # the kubectl line says the same


def test_every_value_is_a_placeholder():
    assert all(value.startswith("replace-with-") for value in _secret()["stringData"].values())


@pytest.mark.parametrize("example", ["secret.example.yaml", "prometheus-auth-secret.example.yaml"])
def test_no_kustomization_applies_an_example(example):
    """Like secret.example.yaml, the example is never applied: its placeholders would overwrite the real Secret."""
    assert (DEPLOY / "k8s" / example).exists()
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        assert example not in kustomization.read_text(), kustomization
