"""The shipped k8s config allows benchmark tokens to `controlplane-api` (the API Service's short name), but a
service could not be saved with base URL `http://controlplane-api:8000`: Django's URLValidator takes no
one-label host but localhost, so every benchmark run was refused its token. One-label host names are now
taken everywhere a base URL is checked (API, admin, seed_demo's --base-url, a plan's service), garbage still
refused. And BENCHMARK_TOKEN_HOSTS entries that start-up accepted but matched no URL (a trailing dot,
IPv6 not as ipaddress writes it, upper case) now match: entries and URLs' hosts are compared canonically."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from apps.benchmarks.models import BenchmarkPlan, token_host_allowed
from apps.benchmarks.token_hosts import token_host_problem
from apps.core.link_local import RefusedAddressError, guarded_create_connection
from apps.services.models import Service, base_url_problem

CONFIGMAP = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "configmap.yaml"
SHORT_NAME_URL = "http://controlplane-api:8000"

# Refused before and still: spaces, an empty or hyphen-edged label, a user name, a bad port, a one-label
# host the resolver reads as an IPv4 address (2130706433 is 127.0.0.1), the metadata service's short name.
GARBAGE = [
    "http://controlplane api:8000",
    "http://-api:8000",
    "http://api-:8000",
    "http://api_x:8000",
    "http://:8000",
    "http://api..:8000",
    "http://u:p@controlplane-api:8000",
    "http://controlplane-api:0",
    "http://controlplane-api:99999",
    "http://controlplane-api:8000/?x=1",
    "ftp://controlplane-api",
    "http://2130706433:8000",
    "http://0x7f000001:8000",
    "http://2852039166/",
    "http://metadata/",
]


def _shipped_hosts() -> list[str]:
    data = yaml.safe_load(CONFIGMAP.read_text())["data"]
    return [host.strip() for host in data["BENCHMARK_TOKEN_HOSTS"].split(",")]


@pytest.mark.django_db
def test_a_service_at_the_configmaps_short_name_gets_its_benchmark_token(settings, staff_api):
    settings.BENCHMARK_TOKEN_HOSTS = _shipped_hosts()
    created = staff_api.post("/api/v1/services/", {"name": "CP API", "slug": "cp-api", "base_url": SHORT_NAME_URL})
    assert created.status_code == 201, created.content  # was 400 {"base_url": ["Enter a valid URL."]}
    service = Service.objects.get(slug="cp-api")
    assert service.base_url == SHORT_NAME_URL and service.base_url_error is None
    assert token_host_allowed(service.base_url) is True
    plan = BenchmarkPlan(name="cp load", service=service, scopes=["patient:read"],
                         requests=[{"name": "card", "path": "/card", "weight": 1}])  # fmt: skip
    plan.full_clean()  # a load test plan of it is valid (its service's URL, its token host)


@pytest.mark.django_db
def test_the_admin_form_saves_a_one_label_base_url(client, admin_user):
    client.force_login(admin_user)
    data = {"name": "CP API", "slug": "cp-api", "kind": "api", "base_url": SHORT_NAME_URL, "is_active": "on",
            "slo_p95_ms": 2000, "slo_p99_ms": 3000, "slo_avg_ms": 1000, "slo_min_rps": 50,
            "slo_error_rate_pct": 5}  # fmt: skip
    response = client.post("/admin/services/service/add/", data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert Service.objects.get(slug="cp-api").base_url == SHORT_NAME_URL


def test_seed_demos_base_url_check_takes_it():
    assert base_url_problem(SHORT_NAME_URL) is None
    assert base_url_problem("http://localhost:8000") is None


@pytest.mark.django_db
@pytest.mark.parametrize("base_url", GARBAGE)
def test_garbage_is_still_refused_everywhere(staff_api, base_url):
    assert base_url_problem(base_url) is not None
    response = staff_api.post("/api/v1/services/", {"name": "Bad", "slug": "bad", "base_url": base_url})
    assert response.status_code == 400 and "base_url" in response.json()["errors"], response.content
    service = Service(name="Bad", slug="bad", base_url=base_url)
    with pytest.raises(Exception, match="base_url"):
        service.full_clean()
    assert not Service.objects.filter(slug="bad").exists()


def test_the_outbound_guard_still_refuses_a_one_label_metadata_name():
    with pytest.raises(RefusedAddressError):
        guarded_create_connection(("metadata", 80), timeout=1)


@pytest.mark.parametrize(
    ("entry", "base_url"),
    [
        ("controlplane-api.default.svc.cluster.local.", "http://controlplane-api.default.svc.cluster.local:8000"),
        ("api.svc", "http://api.svc.:8000"),  # the URL's host with the root's dot
        ("CONTROLPLANE-API", SHORT_NAME_URL),
        ("0:0:0:0:0:0:0:1", "http://[::1]:8000"),
        ("[0:0:0:0:0:0:0:1]:8000", "http://[::1]:8000"),
        ("::1", "http://[0:0:0:0:0:0:0:1]:8000"),
        ("[::FFFF:7F00:1]", "http://[::ffff:127.0.0.1]:8000"),
    ],
)
def test_an_accepted_entry_matches_its_url(settings, entry, base_url):
    assert token_host_problem(entry) is None  # start-up took it ...
    settings.BENCHMARK_TOKEN_HOSTS = [entry]
    assert token_host_allowed(base_url) is True  # ... and it matched nothing


def test_canonical_forms_still_keep_ports_and_other_hosts_apart(settings):
    settings.BENCHMARK_TOKEN_HOSTS = ["[0:0:0:0:0:0:0:1]:8000", "api.svc."]
    assert token_host_allowed("http://[::1]:8001") is False
    assert token_host_allowed("http://[::2]:8000") is False
    assert token_host_allowed("http://api.svc.evil.example:8000") is False
    assert token_host_allowed("http://api:8000") is False
