"""A scaling policy whose Deployment Kubernetes would refuse (a request above its limit, a zero request, an
image that is not a reference) is refused field by field in its form; generated manifests are checked too."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict

from apps.scaling import manifests
from apps.scaling.manifests import MedicalAIServiceAutoscalingConfig, ServiceScaling
from apps.scaling.models import ScalingPolicy, quantity_value
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    return service_ensure(slug="triage", name="Triage", base_url="http://127.0.0.1:9")[0]


def _errors(service, **fields) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as refused:
        ScalingPolicy(service=service, **fields).full_clean()
    return refused.value.message_dict


def test_quantities_are_read_in_base_units():
    assert quantity_value("500m") == quantity_value("0.5") < quantity_value("2")
    assert quantity_value("1Gi") == 1024 * quantity_value("1Mi") > quantity_value("1G")
    assert quantity_value("1.5k") == 1500
    assert quantity_value("4 cores") is None and quantity_value("500m\n") is None and quantity_value("") is None


@pytest.mark.parametrize(
    "image",
    ["", "triage", "triage:1.4", "medical/triage:1.4", "registry.example.org:5000/medical/triage:1.4",
     "localhost:5000/a__b/c-d.e:latest", "ghcr.io/org/triage@sha256:" + "a" * 64,
     "ghcr.io/org/triage:1.4@sha256:" + "0" * 64],
)  # fmt: skip
def test_images_and_sizes_kubernetes_takes_are_accepted(service, image):
    ScalingPolicy(service=service, image=image, cpu_request="2", cpu_limit="2", memory_request="1Gi",
                  memory_limit="1024Mi").full_clean()  # fmt: skip


@pytest.mark.parametrize(
    "image",
    ["UPPER CASE::bad image", "Triage:1.4", "medical/Triage", "triage:", "triage::1", "-triage", "triage:1.4\n",
     "triage@sha256:abc", "triage:tag with space", "registry:5000//triage"],
)  # fmt: skip
def test_malformed_image_references_are_refused(service, image):
    assert list(_errors(service, image=image)) == ["image"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cpu_request": "4", "cpu_limit": "500m"}, "cpu_request"),
        ({"memory_request": "4Gi", "memory_limit": "1Mi"}, "memory_request"),
        ({"memory_request": "2G", "memory_limit": "1.5Gi"}, "memory_request"),
        ({"cpu_request": "0"}, "cpu_request"),
        ({"cpu_request": "0m"}, "cpu_request"),
        ({"memory_limit": "0"}, "memory_limit"),
    ],
)
def test_requests_above_limits_or_zero_are_refused(service, fields, field):
    errors = _errors(service, **fields)
    assert list(errors) == [field]


def test_an_unreadable_quantity_keeps_its_own_error_only(service):
    assert _errors(service, cpu_request="4 cores", cpu_limit="500m") == {
        "cpu_request": ["A Kubernetes quantity, e.g. 500m or 1Gi."]
    }


def test_the_admin_form_shows_the_errors_not_a_valid_preview(service, admin_client):
    policy = ScalingPolicy.objects.create(service=service)
    form = {key: ("" if value is None else value) for key, value in model_to_dict(policy).items() if value is not False}
    form |= {"cpu_request": "4", "cpu_limit": "500m", "memory_request": "4Gi", "memory_limit": "1Mi",
             "image": "UPPER CASE::bad image"}  # fmt: skip
    response = admin_client.post(f"/admin/scaling/scalingpolicy/{policy.pk}/change/", form)
    assert response.status_code == 200
    assert {"cpu_request", "memory_request", "image"} <= set(response.context["adminform"].form.errors)
    policy.refresh_from_db()
    assert (policy.cpu_request, policy.image) == ("500m", "")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"cpu_request": "4", "cpu_limit": "500m"}, "requests.cpu 4: must not be above limits.cpu 500m"),
        ({"memory_request": "4Gi", "memory_limit": "1Mi"}, "requests.memory 4Gi: must not be above limits.memory 1Mi"),
        ({"cpu_request": "0"}, "requests.cpu 0: must be above 0"),
    ],
)
def test_generated_manifests_with_a_request_above_its_limit_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        MedicalAIServiceAutoscalingConfig().generate_complete_config({"name": "triage", **config})


def test_range_errors_name_unreadable_quantities():
    docs = manifests.documents(ServiceScaling(name="triage"))
    resources = docs["triage-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    resources["limits"]["cpu"] = "NaN"
    assert manifests.range_errors(docs["triage-deployment.yaml"]) == ["limits.cpu 'NaN': not a quantity"]


def test_a_disruption_budget_that_lets_every_pod_go_is_refused(service):
    """maxUnavailable at the minimum (2 of 2 replicas) is taken by the API server, and lets a node drain
    evict every pod of the service at once."""
    assert "pdb_max_unavailable" in _errors(service, min_replicas=2, pdb_max_unavailable=2)
    assert "pdb_max_unavailable" in _errors(service, min_replicas=3, pdb_max_unavailable=5)
    ScalingPolicy(service=service, min_replicas=3, pdb_max_unavailable=2).full_clean()
    ScalingPolicy(service=service, min_replicas=1, pdb_max_unavailable=1).full_clean()  # nothing to keep
