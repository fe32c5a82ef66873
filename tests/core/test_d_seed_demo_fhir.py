"""`seed_demo` seeds the FHIR R4 API as a service of its own (route prefix fhir/, so its traffic counts in an SLO)
with a load plan; a demo service whose route prefix an operator's service already holds is not seeded, nor any
row that would point to it (its scaling policy, load plan, the ai_inference limit's watch)."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.benchmarks.models import BenchmarkPlan
from apps.metrics.recorder import recorder
from apps.metrics.selectors import slo_status
from apps.ratelimits.models import RateLimitPolicy
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def _token(output: str) -> str:
    line = next(line for line in output.splitlines() if "Authorization: Bearer" in line)
    return line.split("Bearer ")[1].split("'")[0]


def test_the_fhir_api_is_seeded_once_with_its_load_plan_and_scaling_policy():
    _seed()
    _seed()
    fhir = Service.objects.get(slug="fhir-api")
    assert fhir.route_prefix == "fhir/" and fhir.kind == Service.Kind.API
    fhir.full_clean()  # its SLO targets keep their order
    plan = BenchmarkPlan.objects.get(service=fhir)
    assert plan.name == "fhir-api load" and plan.kind == BenchmarkPlan.Kind.LOAD
    assert all(request["path"].startswith("/fhir/") for request in plan.requests)
    plan.full_clean()  # the requests are ones a plan may hold
    assert ScalingPolicy.objects.filter(service=fhir).count() == 1
    assert BenchmarkPlan.objects.filter(name="clinical-api load", service__slug="clinical-api").count() == 1


def test_fhir_traffic_counts_in_the_fhir_apis_slo(client):
    token = _token(_seed())
    recorder.flush()  # nothing from earlier tests in this process
    for path in ("/fhir/metadata", "/fhir/Patient?family=nobody", "/fhir/Patient/1"):
        client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    recorder.flush()
    assert slo_status(Service.objects.get(slug="fhir-api"))["windows"]["1h"]["count"] == 3
    assert slo_status(Service.objects.get(slug="clinical-api"))["windows"]["1h"]["count"] == 0


@pytest.mark.parametrize(
    ("slug", "prefix", "plan"),
    [("fhir-api", "fhir/", "fhir-api load"), ("clinical-api", "api/v1/patients/", "clinical-api load")],
)
def test_a_demo_api_whose_route_an_operator_holds_is_not_seeded_nor_its_plan_or_policy(slug, prefix, plan):
    operators = Service.objects.create(slug="ehr-gateway", name="EHR gateway", route_prefix=prefix)
    output = _seed()
    assert f"{slug}: not seeded, its route prefix {prefix} is ehr-gateway's" in output
    assert not Service.objects.filter(slug=slug).exists()
    assert not BenchmarkPlan.objects.filter(name=plan).exists()
    assert not BenchmarkPlan.objects.filter(service=operators).exists()
    assert not ScalingPolicy.objects.filter(service=operators).exists()
    assert Service.objects.get(slug="ehr-gateway").route_prefix == prefix
    _seed()  # and again: still theirs, nothing seeded beside it
    assert not Service.objects.filter(slug=slug).exists()
    assert BenchmarkPlan.objects.count() == 1  # the other demo API's


def test_the_ai_inference_limit_does_not_watch_a_service_that_was_not_seeded():
    prefix = "api/v1/inference/<slug:name>/embed"
    Service.objects.create(slug="ehr-embeddings", name="EHR embeddings", route_prefix=prefix)
    assert RateLimitPolicy.objects.filter(scope="ai_inference").update(service=None) == 1
    _seed()
    assert not Service.objects.filter(slug="embeddings").exists()
    assert all(policy.service is None for policy in RateLimitPolicy.objects.filter(scope="ai_inference"))
