"""Behind the hospital's ingress the audit trail, the limiter and the lockout see the caller, not the proxy."""

from datetime import date

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.core.client_address import client_address, parse_trusted_proxies

INGRESS = parse_trusted_proxies(["10.42.0.0/16", "2001:db8:42::/48"])


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "client"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not through our proxy: a forged header is ignored
        ("10.42.0.7", "198.51.100.1", "198.51.100.1"),  # through the ingress
        ("10.42.0.7", "1.1.1.1, 198.51.100.1", "198.51.100.1"),  # the caller wrote 1.1.1.1 itself
        ("10.42.0.7", "198.51.100.1, 10.42.3.3", "198.51.100.1"),  # two of our hops
        ("10.42.0.7", "10.42.9.9, 10.42.3.3", "10.42.9.9"),  # every hop ours: the farthest one
        ("10.42.0.7", "", "10.42.0.7"),  # no header: the proxy is the caller
        ("10.42.0.7", "198.51.100.1, not-an-address", "10.42.0.7"),  # garbage ends the walk at our proxy
        ("10.42.0.7", "198.51.100.1:51234", "198.51.100.1"),  # a port
        ("2001:db8:42::5", "[2001:db8:77::1]:443", "2001:db8:77::1"),
        ("::ffff:10.42.0.7", "::ffff:198.51.100.1", "198.51.100.1"),  # IPv4-mapped on a dual-stack socket
        ("10.42.0.7", "127.0.0.1", "10.42.0.7"),  # loopback from a pod: /metrics' allow-list trusts loopback
        ("10.42.0.7", "198.51.100.1, ::1", "10.42.0.7"),
    ],
)
def test_the_caller_is_the_first_hop_from_the_right_that_is_not_ours(remote_addr, forwarded_for, client):
    assert client_address(remote_addr, forwarded_for, INGRESS) == client


def test_without_trusted_proxies_the_header_is_never_read():
    assert client_address("10.42.0.7", "198.51.100.1", ()) == "10.42.0.7"


def test_a_misspelt_network_stops_start_up():
    with pytest.raises(ImproperlyConfigured, match=r"10\.42\.0\.0/33"):
        parse_trusted_proxies(["10.42.0.0/33"])


@pytest.mark.django_db
def test_a_phi_read_through_the_ingress_is_audited_with_the_callers_address(issue_token):
    patient = patient_create(mrn="MRN-0042", family_name="Ode", given_name="Ada", birth_date=date(1980, 1, 2))
    token = issue_token("patient:read", name="ward-app")
    with override_settings(TRUSTED_PROXIES=["10.42.0.0/16"]):
        ward = APIClient(REMOTE_ADDR="10.42.0.7", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert (
            ward.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.23").status_code
            == 200
        )
    forger = APIClient(REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {token}")  # no proxy configured
    assert forger.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_FORWARDED_FOR="198.51.100.23").status_code == 200
    assert list(AuditEvent.objects.order_by("id").values_list("source_ip", flat=True)) == [
        "198.51.100.23",
        "203.0.113.9",
    ]


@pytest.mark.parametrize("proxies", [["::ffff:10.42.0.0/112"], ["::ffff:10.42.0.7"]])
def test_a_proxy_named_in_its_ipv4_mapped_form_is_trusted(proxies):
    """A dual-stack socket shows the ingress as ::ffff:10.42.0.7, and naming it so matched no connection: every
    request was attributed to the ingress (one rate-limit quota, its lockouts, its address in the audit trail)."""
    trusted = parse_trusted_proxies(proxies)
    assert client_address("::ffff:10.42.0.7", "198.51.100.1", trusted) == "198.51.100.1"
    assert client_address("10.42.0.7", "198.51.100.1", trusted) == "198.51.100.1"
    assert client_address("::ffff:10.43.0.7", "198.51.100.1", trusted) == "::ffff:10.43.0.7"


def test_drfs_own_throttle_ident_is_the_resolved_address_not_a_forged_header():
    """Without NUM_PROXIES, DRF's get_ident() returned the X-Forwarded-For header itself: any throttle built on
    it (AnonRateThrottle, a scope's own) gave each forged header a quota of its own."""
    from rest_framework.test import APIRequestFactory
    from rest_framework.throttling import AnonRateThrottle

    request = APIRequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.77")
    assert AnonRateThrottle().get_ident(request) == "203.0.113.9"
