"""Access control: roles as groups, per-service visibility, brute-force lockout, CSP and cookie flags."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS, OPERATORS, VIEWERS
from apps.caching.models import CachePolicy
from apps.caching.services import cache_policy_ensure
from apps.metrics.recorder import Recorder
from apps.services.models import Service
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def test_the_three_roles_exist_with_their_permissions(staff):
    operator, viewer, admin = staff("op", OPERATORS), staff("viewer", VIEWERS), staff("adm", ADMINISTRATORS)
    assert operator.has_perm("caching.change_cachepolicy") and operator.has_perm("optimizer.change_recommendation")
    assert operator.has_perm("metrics.view_alert") and not operator.has_perm("accounts.change_apiclient")
    assert not operator.has_perm("clinical.view_patient") and not operator.has_perm("audit.view_auditevent")
    assert viewer.has_perm("caching.view_cachepolicy") and not viewer.has_perm("caching.change_cachepolicy")
    assert admin.has_perm("accounts.change_apiclient") and admin.has_perm("clinical.view_patient")


def test_a_viewer_sees_policies_but_cannot_change_them(client, staff):
    policy = cache_policy_ensure(namespace="vital_signs")
    client.force_login(staff("viewer", VIEWERS))
    url = f"/admin/caching/cachepolicy/{policy.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"namespace": "vital_signs", "ttl_seconds": 5, "stale_while_revalidate_seconds": 0,
                                 "l1_max_entries": 10})  # fmt: skip
    assert response.status_code == 403
    assert CachePolicy.objects.get(pk=policy.pk).ttl_seconds == 600


def test_a_service_restricted_to_a_team_is_invisible_to_other_roles(client, api, staff, monkeypatch):
    from apps.metrics.recorder import recorder as requests_recorder

    monkeypatch.setattr(requests_recorder, "flush_interval", 3600)  # this test's own requests stay out of the totals
    team = Group.objects.create(name="Oncology AI")
    hidden, _ = service_ensure(slug="onco-triage", name="Oncology triage")
    hidden.visible_to.add(team)
    service_ensure(slug="open-svc", name="Open service")
    outsider, member = staff("outsider", OPERATORS), staff("member", OPERATORS, "Oncology AI")

    api.force_login(outsider)
    assert {s["slug"] for s in api.get("/api/v1/services/").json()["results"]} == {"open-svc"}
    assert api.get("/api/v1/services/onco-triage/").status_code == 404
    client.force_login(outsider)
    assert "Oncology triage" not in client.get("/admin/services/service/").content.decode()
    assert client.get(f"/admin/services/service/{hidden.pk}/change/").status_code == 302  # "does not exist"

    series = {"metric": "rps", "service": "onco-triage"}
    assert api.get("/api/v1/metrics/series/", series).status_code == 400  # as unknown as a missing service

    # Without service=, the total carries only the traffic of the services this user sees.
    hidden.route_prefix, open_service = "api/onco/", Service.objects.get(slug="open-svc")
    hidden.save()
    open_service.route_prefix = "api/open/"
    open_service.save()
    recorder = Recorder(flush_interval=3600)
    for route, count in (("api/onco/<int:id>/", 30), ("api/open/<int:id>/", 5), ("healthz", 2)):
        for _ in range(count):
            recorder.record(route=route, method="GET", status=200, client="app", elapsed_us=1000)
    recorder.flush()

    def total(user) -> int:
        api.force_login(user)
        points = api.get("/api/v1/metrics/series/", {"metric": "requests", "step": 300}).json()["points"]
        return sum(value or 0 for _, value in points)  # null: before the first rollup

    assert total(outsider) == 5
    assert total(member) == 35
    assert total(staff("adm", ADMINISTRATORS)) == 37  # those who see every service see every route
    open_service.route_prefix = ""  # served elsewhere: no route of this process is its
    open_service.save()
    assert total(outsider) == 0

    api.force_login(member)
    assert {s["slug"] for s in api.get("/api/v1/services/").json()["results"]} == {"open-svc", "onco-triage"}
    assert api.get("/api/v1/metrics/series/", series).status_code == 200


def test_what_belongs_to_a_hidden_service_is_hidden_with_it(client, api, staff):
    from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
    from apps.inference.models import ModelDeployment
    from apps.metrics.models import Alert, AlertRule
    from apps.optimizer.models import OptimizationRun
    from apps.scaling.services import scaling_policy_ensure

    team = Group.objects.create(name="Oncology AI")
    hidden, _ = service_ensure(slug="onco-triage", name="Oncology triage")
    hidden.visible_to.add(team)
    shown, _ = service_ensure(slug="open-svc", name="Open service")
    rows = {}
    for service in (hidden, shown):
        plan = BenchmarkPlan.objects.create(name=f"{service.slug} nightly", service=service)
        run = BenchmarkRun.objects.create(plan=plan, report_html="<h1>run</h1>")
        Regression.objects.create(plan=plan, run=run, metric="p95_ms", baseline=10, current=20, change_pct=100,
                                  p_value=0.01, threshold_pct=10)  # fmt: skip
        rule = AlertRule.objects.create(name=f"{service.slug} p95", metric="p95_ms", threshold=100, service=service)
        Alert.objects.create(rule=rule, state="firing", value=200, last_value=200, message="over")
        policy, _ = scaling_policy_ensure(service)
        rows[service.slug] = (plan, run, policy)
    for name, service in (("onco-embed", hidden), ("open-embed", shown), ("any-embed", None)):
        ModelDeployment.objects.create(name=name, service=service, source=ModelDeployment.Source.MINILM,
                                       task="embedding")  # fmt: skip
    optimization = OptimizationRun.objects.create(target="caching", service=hidden, report_html="<h1>run</h1>")
    optimization.recommendations.create(step="caching", kind="ttl", subject="onco cache", title="Raise onco TTL",
                                        reason="hit rate")  # fmt: skip
    every_route = AlertRule.objects.create(name="every route p95", metric="p95_ms", threshold=100)
    Alert.objects.create(rule=every_route, state="firing", value=200, last_value=200, message="over")

    outsider, member = staff("outsider", OPERATORS), staff("member", OPERATORS, "Oncology AI")
    plan, run, policy = rows["onco-triage"]
    for user, sees_hidden in ((outsider, False), (member, True)):
        api.force_login(user)
        runs = {r["service"] for r in api.get("/api/v1/benchmarks/runs/").json()["results"]}
        assert runs == ({"open-svc", "onco-triage"} if sees_hidden else {"open-svc"})
        assert api.get(f"/api/v1/benchmarks/runs/{run.pk}/").status_code == (200 if sees_hidden else 404)
        policies = {p["service"] for p in api.get("/api/v1/scaling/policies/").json()["results"]}
        assert policies == ({"open-svc", "onco-triage"} if sees_hidden else {"open-svc"})
        manifests = api.get(f"/api/v1/scaling/policies/{policy.pk}/manifests/")
        assert manifests.status_code == (200 if sees_hidden else 404)
        alerts = {a["rule"] for a in api.get("/api/v1/metrics/alerts/").json()["results"]}
        # A rule of no service sums every route, the hidden service's too: only for who sees all of them.
        assert alerts == {"open-svc p95", *(["onco-triage p95", "every route p95"] if sees_hidden else [])}

        client.force_login(user)
        pages = (
            f"/benchmarks/runs/{run.pk}/report/",
            f"/benchmarks/plans/{plan.pk}/report/",
            f"/admin/benchmarks/benchmarkrun/{run.pk}/change/",
            f"/admin/scaling/scalingpolicy/{policy.pk}/change/",
        )
        assert [client.get(page).status_code for page in pages] == (
            [200, 200, 200, 200] if sees_hidden else [404, 404, 302, 302]  # admin: "does not exist", to its list
        )  # fmt: skip
        listed = client.get("/admin/benchmarks/regression/").content.decode()
        assert ("onco-triage nightly" in listed) is sees_hidden and "open-svc nightly" in listed
        alert_page = client.get("/admin/metrics/alert/").content.decode()
        assert ("onco-triage p95" in alert_page) is sees_hidden and ("every route p95" in alert_page) is sees_hidden
        rule_page = client.get("/admin/metrics/alertrule/").content.decode()
        assert ("every route p95" in rule_page) is sees_hidden and "open-svc p95" in rule_page
        plan_form = client.get("/admin/benchmarks/benchmarkplan/add/").content.decode()
        assert ("Oncology triage" in plan_form) is sees_hidden  # the service choices too
        deployments = {d["name"] for d in api.get("/api/v1/inference/deployments/").json()["results"]}
        assert deployments == {"open-embed", "any-embed", *(["onco-embed"] if sees_hidden else [])}
        optimizer_page = client.get(f"/optimizer/runs/{optimization.pk}/report/").status_code
        assert optimizer_page == (200 if sees_hidden else 404)
        overview = client.get("/admin/overview/").content.decode()
        assert ("onco-triage p95" in overview) is sees_hidden and "open-svc p95" in overview  # firing alerts
        assert ("every route p95" in overview) is sees_hidden
        assert ("onco-triage nightly" in overview) is sees_hidden  # recent regressions
        assert ("Raise onco TTL" in overview) is sees_hidden  # pending recommendations


def test_report_pages_need_the_view_permission_the_api_needs(client, staff):
    from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
    from apps.optimizer.models import OptimizationRun

    service, _ = service_ensure(slug="reports", name="Reports")
    plan = BenchmarkPlan.objects.create(name="nightly", service=service)
    run = BenchmarkRun.objects.create(plan=plan, report_html="<h1>run</h1>")
    optimization = OptimizationRun.objects.create(target="database", report_html="<h1>optimization</h1>")
    pages = (f"/benchmarks/runs/{run.pk}/report/", f"/benchmarks/plans/{plan.pk}/report/",
             f"/optimizer/runs/{optimization.pk}/report/")  # fmt: skip
    client.force_login(staff("no-role"))
    assert [client.get(page).status_code for page in pages] == [403, 403, 403]
    client.force_login(staff("viewer", VIEWERS))
    assert [client.get(page).status_code for page in pages] == [200, 200, 200]
    running = BenchmarkRun.objects.create(plan=plan, status="running")
    response = client.get(f"/benchmarks/runs/{running.pk}/report/")
    assert response.status_code == 404 and b"no report yet (it is running)" in response.content


def test_admin_login_locks_out_after_five_failures(client, staff, settings):
    staff("nurse-admin", OPERATORS)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        failed = client.post("/admin/login/?next=/admin/", {"username": "nurse-admin", "password": "wrong"})
        assert failed.status_code == 200  # the form again, with its error
    last = client.post("/admin/login/?next=/admin/", {"username": "nurse-admin", "password": "wrong"})
    assert last.status_code == 429  # the fifth failure locks the username from this address
    locked = client.post("/admin/login/?next=/admin/", {"username": "nurse-admin", "password": "pw-Long-enough-1"})
    assert locked.status_code == 429
    assert client.get("/admin/").status_code == 302  # not signed in


def test_headers_csp_and_cookie_flags(client, staff, settings):
    response = client.get("/admin/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
    staff("cookie", OPERATORS)
    signed_in = client.post("/admin/login/?next=/admin/", {"username": "cookie", "password": "pw-Long-enough-1"})
    assert signed_in.cookies["sessionid"]["httponly"] and client.cookies["csrftoken"]["httponly"]


def test_a_sign_in_whose_next_points_elsewhere_lands_on_the_admin(client, staff):
    staff("nurse-admin", OPERATORS)
    for outside in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post(f"/admin/login/?next={outside}",
                               {"username": "nurse-admin", "password": "pw-Long-enough-1"})  # fmt: skip
        assert response.status_code == 302 and response["Location"] == "/admin/", outside
        client.logout()


def test_admin_sign_in_does_not_tell_a_known_username_from_an_unknown_one(client, staff, settings):
    """The failure and the lockout read the same for a staff account, a non-staff one and no account at all."""
    import re

    staff("nurse-admin", OPERATORS)
    answers = {}
    for username in ("nurse-admin", "nobody-here"):
        texts = []
        for _ in range(settings.AXES_FAILURE_LIMIT):
            response = client.post("/admin/login/?next=/admin/", {"username": username, "password": "wrong"})
            body = re.sub(r'value="[^"]*"', "", response.content.decode())  # the CSRF token and echoed username
            texts.append((response.status_code, body.replace(username, "<name>")))
        answers[username] = texts
    assert answers["nurse-admin"] == answers["nobody-here"]
    assert [status for status, _ in answers["nobody-here"]] == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]


def test_only_a_superuser_clears_a_lockout(client, staff, settings, admin_user):
    """An Administrator who could delete axes' access attempts could keep guessing a superuser's password."""
    staff("nurse-admin", OPERATORS)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/?next=/admin/", {"username": "nurse-admin", "password": "wrong"})
    administrator = staff("adm", ADMINISTRATORS)
    assert not any(administrator.has_perm(f"axes.{action}_accessattempt") for action in ("view", "change", "delete"))
    client.force_login(administrator)
    assert client.get("/admin/axes/accessattempt/").status_code == 403
    client.force_login(admin_user)
    assert client.get("/admin/axes/accessattempt/").status_code == 200
