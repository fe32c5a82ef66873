"""manifests.validate reads kubernetes-validate's schema files once per process: it parsed them (the 1.6 MB
_definitions.json too) for each manifest on each call, and the scaling admin validates a policy's manifests on
each view of its page, so a view or a refused form took seconds (the admin's bad-input walk of ScalingPolicy:
minutes)."""

import json

from apps.scaling import manifests
from apps.scaling.manifests import ServiceScaling


def test_validating_again_parses_no_schema_file(monkeypatch):
    docs = manifests.documents(ServiceScaling(name="triage"))
    assert manifests.validate(docs) == []
    parsed = []
    real_load = json.load
    monkeypatch.setattr(json, "load", lambda f, *a, **k: parsed.append(f.name) or real_load(f, *a, **k))
    assert manifests.validate(docs) == []
    assert parsed == []


def test_a_cached_schema_still_refuses_an_invalid_manifest():
    docs = manifests.documents(ServiceScaling(name="triage"))
    assert manifests.validate(docs) == []
    hpa = docs["triage-hpa.yaml"]
    hpa["spec"]["maxReplica"] = 50  # a typo the strict schema refuses
    errors = manifests.validate(docs)
    assert any(error.startswith("triage-hpa.yaml: ") and "'maxReplica'" in error for error in errors), errors
