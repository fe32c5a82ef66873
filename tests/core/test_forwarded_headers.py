"""X-Forwarded-Proto, -Host and -Port are believed only from our proxies once TRUSTED_PROXIES names any."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings

from apps.core.client_address import ClientAddressMiddleware

BEHIND_TLS = {
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_HSTS_SECONDS": 3600,
    "USE_X_FORWARDED_HOST": True,
    "USE_X_FORWARDED_PORT": True,
}
FORWARDED = {
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_HOST": "controlplane.example.org",
    "HTTP_X_FORWARDED_PORT": "443",
}


def _seen(remote_addr: str) -> HttpRequest:
    """The request as the views see it after the middleware (absolute links are built from it)."""
    seen = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse()

    request = RequestFactory().get("/fhir/Patient", REMOTE_ADDR=remote_addr, **FORWARDED)
    ClientAddressMiddleware(view)(request)
    return seen[0]


@override_settings(TRUSTED_PROXIES=["10.42.0.0/16"], ALLOWED_HOSTS=["*"], **BEHIND_TLS)
def test_a_peer_that_is_not_our_proxy_cannot_claim_https_or_another_host():
    request = _seen("203.0.113.9")
    assert not request.is_secure()
    assert request.build_absolute_uri() == "http://testserver/fhir/Patient"


@override_settings(TRUSTED_PROXIES=["10.42.0.0/16"], ALLOWED_HOSTS=["*"], **BEHIND_TLS)
def test_our_proxy_is_believed():
    request = _seen("10.42.0.7")
    assert request.is_secure()
    assert request.build_absolute_uri() == "https://controlplane.example.org/fhir/Patient"


@override_settings(TRUSTED_PROXIES=["10.42.0.0/16"], **BEHIND_TLS)
def test_hsts_is_not_sent_because_a_stranger_says_https():
    response = Client(REMOTE_ADDR="203.0.113.9").get("/healthz", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" not in response.headers
    response = Client(REMOTE_ADDR="10.42.0.7").get("/healthz", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" in response.headers


def test_the_kustomize_base_names_no_proxy_and_keeps_https_behind_its_ingress():
    """deploy/'s base sets no TRUSTED_PROXIES: its ingress's X-Forwarded-Proto must still be believed."""
    configmap = yaml.safe_load((Path(settings.BASE_DIR) / "deploy/k8s/base/configmap.yaml").read_text())
    proxies = [name for name in configmap["data"].get("TRUSTED_PROXIES", "").split(",") if name.strip()]
    assert proxies == []
    with override_settings(TRUSTED_PROXIES=proxies, ALLOWED_HOSTS=["*"], **BEHIND_TLS):
        response = Client(REMOTE_ADDR="10.244.1.5").get("/healthz", HTTP_X_FORWARDED_PROTO="https")
        assert "Strict-Transport-Security" in response.headers


@pytest.mark.parametrize("remote_addr", ["203.0.113.9", "not-an-address", ""])
@override_settings(TRUSTED_PROXIES=["10.42.0.0/16"])
def test_every_forwarded_request_header_is_dropped_from_strangers(remote_addr):
    request = _seen(remote_addr)
    assert not any(header in request.META for header in FORWARDED)
