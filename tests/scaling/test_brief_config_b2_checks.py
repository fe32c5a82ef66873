"""The brief's generate_complete_config checked less than the policy's model: a namespace "Bad_NS" and an
image "UPPER/Case" were turned into manifests (the API server refuses the first, the kubelet never pulls the
second), and a min_replicas of "2" failed with a TypeError instead of the ValueError the API promises."""

import pytest

from scaling.kubernetes_scaling.k8s_autoscaling_config import MedicalAIServiceAutoscalingConfig


def _generate(**config) -> dict[str, str]:
    return MedicalAIServiceAutoscalingConfig().generate_complete_config({"name": "triage", **config})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"namespace": "Bad_NS"}, "namespace 'Bad_NS': A DNS label"),
        ({"namespace": ""}, "namespace '': A DNS label"),
        ({"image": "UPPER/Case"}, "image 'UPPER/Case': An image reference"),
        ({"image": "triage:latest tag"}, "image 'triage:latest tag': An image reference"),
        ({"min_replicas": "2"}, "min_replicas '2': must be of type int"),
        ({"max_replicas": 2.5}, "2.5 is not of type 'integer'"),  # a number: the schema says it is not whole
        ({"max_replicas": True}, "max_replicas True: must be of type int"),
        ({"target_cpu_pct": "70"}, "target_cpu_pct '70': must be of type int or None"),
        ({"target_rps_per_pod": "25"}, "target_rps_per_pod '25': must be of type float or None"),
        ({"target_rps_per_pod": float("inf")}, "target_rps_per_pod inf: must be a finite number"),  # OverflowError
        ({"keda_enabled": "yes"}, "keda_enabled 'yes': must be of type bool"),
        ({"cpu_request": 1}, "cpu_request 1: must be of type str"),
        ({"peak_windows": {"start_hour": 6}}, "peak_windows .*: must be of type list"),
    ],
)
def test_what_the_policy_model_refuses_is_a_value_error(config, message):
    with pytest.raises(ValueError, match=message):
        _generate(**config)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"namespace": "radiology-2", "image": "registry.example.org:5000/medical/triage:1.4"},
        {"target_rps_per_pod": 25, "keda_enabled": True},  # a whole number of req/s is a float's value
        {"target_rps_per_pod": 12.5, "keda_enabled": True, "target_memory_pct": None},
        {"image": "triage@sha256:" + "a" * 64},
    ],
)
def test_valid_configs_still_give_manifests(config):
    assert "triage-deployment.yaml" in _generate(**config)
