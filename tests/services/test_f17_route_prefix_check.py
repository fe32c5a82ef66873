"""Route prefixes the rules now refuse (non-ASCII, not ending at '/', covering the control plane's own routes)
are kept on old services until edited, and until then those services count the control plane's own requests
as theirs ("a-svc ... 63 requests" that were admin calls). Nothing named them at upgrade: a `manage.py check`
warning now names each, with the problem and a hint."""

from io import StringIO

import pytest
from django.core.checks import Warning, run_checks
from django.core.management import call_command

from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


def _stored(slug: str, route_prefix: str) -> Service:
    """A service whose route prefix was written around the model's checks (as before the rules: one UPDATE)."""
    service = service_create(name=slug.title(), slug=slug, base_url="https://ok.internal/")
    Service.objects.filter(pk=service.pk).update(route_prefix=route_prefix)
    return service


def _warnings() -> list[Warning]:
    return [message for message in run_checks(tags=["services"]) if message.id == "services.W002"]


def test_each_service_on_a_refused_prefix_is_named_with_the_problem_and_a_hint():
    _stored("admin-grabber", "admin/")
    _stored("a-svc", "a")
    _stored("cyrillic", "\u0430pi/v1/patients/")
    _stored("fine", "api/v1/patients/")
    warnings = _warnings()
    assert len(warnings) == 3, [str(w) for w in warnings]
    by_slug = {slug: w for w in warnings for slug in ("admin-grabber", "a-svc", "cyrillic") if f" {slug}:" in w.msg}
    assert set(by_slug) == {"admin-grabber", "a-svc", "cyrillic"}
    assert all(isinstance(w, Warning) and w.hint for w in warnings)
    assert "control plane's own routes" in by_slug["admin-grabber"].msg
    assert "End it with '/'" in by_slug["a-svc"].msg
    assert "U+0430" in by_slug["cyrillic"].msg
    assert all(slug in by_slug[slug].hint for slug in by_slug)


def test_usable_or_empty_prefixes_give_no_warning():
    _stored("fine", "api/v1/patients/")
    _stored("fhir", "fhir/")
    _stored("none", "")
    assert _warnings() == []


def test_manage_py_check_warns_and_does_not_fail():
    _stored("admin-grabber", "admin/")
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err)  # raises SystemCheckError on an error, not on a warning
    assert "services.W002" in err.getvalue() and "admin-grabber" in err.getvalue()
