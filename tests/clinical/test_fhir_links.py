"""Bundle links behind a TLS-terminating proxy: absolute, and on the scheme the client used."""

from urllib.parse import urlparse

import pytest

from apps.clinical.models import Patient

pytestmark = pytest.mark.django_db


def test_links_behind_a_tls_proxy_are_https(clinician, loaded, settings):
    """Production trusts X-Forwarded-Proto (settings: TRUST_X_FORWARDED_PROTO); an http next link would send a
    client's bearer token in clear, or be refused by a client pinned to https."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["cp.example.org"]
    proxied = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "cp.example.org"}  # the proxy passes the Host on
    patient_id = Patient.objects.order_by("pk").first().pk
    for response in (
        clinician.get(f"/fhir/Observation?patient={patient_id}&_count=2", **proxied),
        clinician.post("/fhir/Observation/_search", f"patient={patient_id}&_count=2",
                       content_type="application/x-www-form-urlencoded", **proxied),
    ):  # fmt: skip
        bundle = response.json()
        urls = [link["url"] for link in bundle["link"]] + [entry["fullUrl"] for entry in bundle["entry"]]
        assert {link["relation"] for link in bundle["link"]} == {"self", "next"}
        assert all(urlparse(url).scheme == "https" and urlparse(url).netloc == "cp.example.org" for url in urls), urls
    assert clinician.get("/fhir/metadata", **proxied).json()["implementation"]["url"] == (
        "https://cp.example.org/fhir/"
    )
