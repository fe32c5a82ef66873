"""The staff API behind the dashboard's pages: cache, rate limits, benchmarks, scaling, the patient window.
Real PostgreSQL and Redis; every figure comes from traffic or rows the test made."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from apps.accounts.roles import ADMINISTRATORS, VIEWERS
from apps.audit.models import AuditEvent
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
from apps.caching.stack import default_stack, get_or_load
from apps.clinical.models import Patient
from apps.metrics.recorder import recorder
from apps.ratelimits.models import RateLimitPolicy
from apps.scaling import services as scaling
from apps.scaling.models import ScalingPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user("viewer", "v@example.org", "pw-viewer-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=VIEWERS))
    return user


@pytest.fixture
def admin_user(django_user_model):
    user = django_user_model.objects.create_user("chief", "c@example.org", "pw-chief-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=ADMINISTRATORS))
    return user


def test_pages_need_the_view_permission(api, staff_user, viewer):
    for url in ("/api/v1/cache/namespaces/", "/api/v1/ratelimits/", "/api/v1/benchmarks/runs/",
                "/api/v1/scaling/policies/"):  # fmt: skip
        assert api.get(url).status_code in (401, 403)
        api.force_login(staff_user)  # staff without a role: no view permission
        assert api.get(url).status_code == 403
        api.force_login(viewer)
        assert api.get(url).status_code == 200, url
        assert api.get(url, {"bogus": 1}).status_code == 400
        api.logout()


def test_cache_page_shows_policies_with_their_reads(api, viewer):
    for _ in range(3):
        get_or_load("vital_signs", ["dashboard-test"], lambda: {"v": 1})
    default_stack().flush_stats()
    api.force_login(viewer)
    rows = {row["namespace"]: row for row in api.get("/api/v1/cache/namespaces/").json()["results"]}
    vitals = rows["vital_signs"]
    assert vitals["ttl_seconds"] == 600 and vitals["tiers_enabled"] == ["l1", "l2", "l3"]
    assert vitals["requests"] == 3 and vitals["hit_rate"] == pytest.approx(2 / 3, abs=0.001)
    assert vitals["tiers"]["l1"]["hits"] == 2


def test_rate_limit_page_counts_requests_and_429s_per_scope(api, issue_token, viewer):
    RateLimitPolicy.objects.filter(scope="patient_data").update(requests=3)
    token = issue_token("patient:read")
    statuses = [api.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code for _ in range(5)]
    assert statuses.count(429) == 2
    recorder.flush()
    api.force_login(viewer)
    rows = {row["scope"]: row for row in api.get("/api/v1/ratelimits/").json()["results"]}
    usage = rows["patient_data"]["usage"]
    assert usage["requests"] == 5 and usage["refused"] == 2
    assert usage["busiest_client_per_minute"] == 3 and usage["busiest_client_share"] == 1.0
    assert sum(minute[2] for minute in usage["minutes"]) == 2
    assert rows["clinical_data"]["usage"]["requests"] == 0


def test_benchmark_pages_list_runs_and_show_one(api, viewer):
    call_command("seed_demo", stdout=StringIO())
    plan = BenchmarkPlan.objects.first()
    run = BenchmarkRun.objects.create(
        plan=plan, status="succeeded", passed=False, summary={"p95_ms": 41.0, "rps": 120.0},
        timeline=[{"t": 0, "users": 5, "rps": 100, "p95_ms": 40}], histogram=[[10.0, 5], [40.0, 1]],
        verdicts=[{"gate": "p95_ms", "limit": 30, "value": 41, "passed": False}],
    )  # fmt: skip
    Regression.objects.create(plan=plan, run=run, baseline=20, current=41, change_pct=105, p_value=0.001,
                              threshold_pct=10)  # fmt: skip
    api.force_login(viewer)
    listed = api.get("/api/v1/benchmarks/runs/", {"plan": plan.pk}).json()["results"]
    assert [r["id"] for r in listed] == [run.pk] and listed[0]["regressions"][0]["change_pct"] == 105
    detail = api.get(f"/api/v1/benchmarks/runs/{run.pk}/").json()
    assert detail["histogram"] == [[10.0, 5], [40.0, 1]] and detail["verdicts"][0]["passed"] is False
    assert detail["report_url"].endswith(f"/runs/{run.pk}/report/")
    assert api.get("/api/v1/benchmarks/runs/999999/").status_code == 404
    assert "limit" in api.get("/api/v1/benchmarks/runs/", {"limit": 0}).json()["errors"]


def test_scaling_page_shows_forecasts_plans_and_manifests(api, viewer, settings):
    settings.SCALING_HISTORY_DAYS = 10
    settings.SCALING_BACKTEST_FOLDS = 1
    call_command("seed_demo", stdout=StringIO())
    policy = ScalingPolicy.objects.select_related("service").first()
    scaling.forecasts_refresh(services=[policy.service])
    api.force_login(viewer)
    row = next(r for r in api.get("/api/v1/scaling/policies/").json()["results"] if r["id"] == policy.pk)
    rate = row["forecasts"]["request_rate"]
    assert len(rate["points"]) == 24 and all(p["p10"] <= p["p50"] <= p["p90"] for p in rate["points"])
    assert rate["recent"] and row["plan"]["peak_replicas"] >= row["min_replicas"]
    preview = api.get(f"/api/v1/scaling/policies/{policy.pk}/manifests/").json()
    assert preview["errors"] == [] and any("HorizontalPodAutoscaler" in text for text in preview["files"].values())
    assert api.get("/api/v1/scaling/policies/999999/manifests/").status_code == 404


def test_patient_window_jumps_anywhere_and_is_audited(api, admin_user):
    call_command("load_synthetic", patients=120, days=1, rounds_per_day=1, no_progress=True, stdout=StringIO())
    api.force_login(admin_user)
    before = AuditEvent.objects.count()
    body = api.get("/api/v1/patients/window/", {"offset": 100, "limit": 50}).json()
    ids = list(Patient.objects.order_by("id").values_list("id", flat=True))
    assert body["count"] == 120 and [p["id"] for p in body["results"]] == ids[100:120]
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1 and event.action == "search" and event.result_count == 20
    assert api.get("/api/v1/patients/window/", {"limit": 100000}).status_code == 400
    assert api.get("/api/v1/patients/window/", {"offset": -1}).status_code == 400


def test_inference_page_shows_each_deployment_and_its_last_measured_table(api, staff_user, viewer):
    from django.utils import timezone

    from apps.inference.models import ModelDeployment, QuantizationProfile
    from apps.inference.services import bundled_deployments_ensure

    embeddings, _ = bundled_deployments_ensure()
    earlier, now = timezone.now() - timedelta(days=1), timezone.now()
    QuantizationProfile.objects.create(deployment=embeddings, measured_at=earlier, mode="fp32", device="cpu")
    for mode, chosen, speed in (("fp32", False, 200.0), ("bf16", True, 400.0)):
        QuantizationProfile.objects.create(deployment=embeddings, measured_at=now, mode=mode, device="cpu",
                                           chosen=chosen, sequences_per_s=speed, fidelity_loss=0.0)  # fmt: skip
    missing = "unavailable: bitsandbytes is not installed"
    QuantizationProfile.objects.create(deployment=embeddings, measured_at=now, mode="nf4", device="cpu",
                                       available=False, verdict=missing)  # fmt: skip
    ModelDeployment.objects.filter(pk=embeddings.pk).update(chosen_quantization="bf16")
    url = "/api/v1/inference/deployments/"
    api.force_login(staff_user)
    assert api.get(url).status_code == 403
    api.force_login(viewer)
    rows = {row["name"]: row for row in api.get(url).json()["results"]}
    row = rows["clinical-embeddings"]
    assert row["serving_quantization"] == "bf16" and row["quantization"] == "auto"
    assert [p["mode"] for p in row["profiles"]] == ["bf16", "fp32", "nf4"]  # chosen, then fastest, then unavailable
    assert rows["clinical-assistant"]["profiles"] == [] and rows["clinical-assistant"]["measured_at"] is None
