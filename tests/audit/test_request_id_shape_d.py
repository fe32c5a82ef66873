"""A caller's X-Request-ID was kept verbatim (any 1-64 of [A-Za-z0-9._-]) in every audit record, which can never be
deleted, and in the access log: a bearer token or an MRN sent as the header landed in the permanent trail. Only a
UUID is kept now; anything else is replaced by a fresh id, and the caller's is kept nowhere."""

import uuid
from datetime import date

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.core.log_filters import _correlation_id
from apps.core.middleware import RequestIdMiddleware

pytestmark = pytest.mark.django_db


@pytest.fixture
def ward_app(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    patient = patient_create(
        mrn="S001-0000005", family_name="Doe", given_name="Jo", birth_date=date(1970, 1, 2), sex="female"
    )
    return api, token, patient


def _every_value(event: AuditEvent) -> str:
    return "\x1f".join(str(getattr(event, field.attname)) for field in AuditEvent._meta.concrete_fields)


@pytest.mark.parametrize("kind", ["token", "mrn", "short"])
def test_a_request_id_that_could_be_a_secret_or_an_identifier_is_replaced(ward_app, kind):
    api, token, patient = ward_app
    offered = {"token": token, "mrn": patient.mrn, "short": "req-42"}[kind]
    response = api.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_REQUEST_ID=offered)
    assert response.status_code == 200
    echoed = response["X-Request-ID"]  # what the access log prints (gunicorn's %({x-request-id}o)s)
    assert echoed != offered and len(echoed) == 32
    record = AuditEvent.objects.filter(resource_type="Patient").latest("id")
    assert record.request_id == echoed and offered not in _every_value(record)


@pytest.mark.parametrize("offered", [str(uuid.uuid4()), str(uuid.uuid4()).upper(), uuid.uuid4().hex])
def test_a_uuid_request_id_is_kept(ward_app, offered):
    api, _, patient = ward_app
    response = api.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_REQUEST_ID=offered)
    assert response["X-Request-ID"] == offered
    assert AuditEvent.objects.filter(resource_type="Patient").latest("id").request_id == offered


def test_log_lines_do_not_carry_a_refused_request_id():
    seen = []

    def view(request):
        seen.append((request.request_id, _correlation_id.get()))
        return HttpResponse()

    offered = "cpk_00e404d1_" + "x" * 43
    RequestIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID=offered))
    assert seen[0][0] == seen[0][1] and offered not in seen[0]
