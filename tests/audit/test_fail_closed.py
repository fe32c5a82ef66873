"""When the audit trail cannot be written, nothing is served: a read, a cache hit and a refusal are all a 503
(never the data, never a 500). The database refuses the records for real (a trigger raising disk_full, as a
full volume would), inside the test's transaction, which takes it away again."""

from datetime import date

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient():
    return patient_create(
        mrn="MRN-FC-0042", family_name="Okonkwo", given_name="Ada", birth_date=date(1961, 2, 3), sex="female"
    )


@pytest.fixture
def refuse_audit_writes():
    """Call it to make every audit INSERT fail as a full disk would."""

    def refuse() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION pg_temp.audit_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER audit_disk_full BEFORE INSERT ON audit_auditevent "
                "FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_disk_full()"
            )

    return refuse


def _assert_unavailable_without_data(response, patient) -> None:
    assert response.status_code == 503, response.content
    assert b"Okonkwo" not in response.content and patient.mrn.encode() not in response.content


def test_a_read_and_a_cache_hit_are_refused_when_their_record_cannot_be_written(
    api, issue_token, patient, refuse_audit_writes
):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    assert api.get(f"/api/v1/patients/{patient.pk}/").status_code == 200  # now in the cache
    refuse_audit_writes()
    _assert_unavailable_without_data(api.get(f"/api/v1/patients/{patient.pk}/"), patient)
    _assert_unavailable_without_data(api.get(f"/fhir/Patient/{patient.pk}"), patient)


@pytest.mark.parametrize(
    ("scopes", "headers"),
    [
        (("clinical:read",), {}),  # no patient:read: a 403
        (("patient:read",), {"HTTP_X_PURPOSE_OF_USE": "SNOOP"}),  # a 400
    ],
)
def test_a_refusal_whose_record_cannot_be_written_is_a_503_not_a_500(
    api, issue_token, patient, refuse_audit_writes, scopes, headers
):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(*scopes)}")
    refuse_audit_writes()
    api.raise_request_exception = False  # a 500 is an answer here, not the test's crash
    _assert_unavailable_without_data(api.get(f"/api/v1/patients/{patient.pk}/", **headers), patient)
    assert not AuditEvent.objects.exists()


def test_a_401_whose_record_cannot_be_written_is_a_503_too(api, patient, refuse_audit_writes):
    refuse_audit_writes()
    _assert_unavailable_without_data(api.get(f"/api/v1/patients/{patient.pk}/"), patient)


@pytest.fixture
def refuse_audit_writes_with_an_error():
    """Call it to make every audit INSERT fail with an error that is not a lost connection (a trigger's own
    exception, an InternalError): the API's handler makes no 503 of it by itself."""

    def refuse() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION pg_temp.audit_refused() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'audit row refused'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_auditevent "
                "FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_refused()"
            )

    return refuse


@pytest.mark.parametrize(
    ("scopes", "headers", "url"),
    [
        (("clinical:read",), {}, "/api/v1/patients/{pk}/"),  # no patient:read: a 403
        (("patient:read",), {"HTTP_X_PURPOSE_OF_USE": "SNOOP"}, "/api/v1/patients/{pk}/"),  # a 400
        (("patient:read",), {}, "/api/v1/patients/987654321/"),  # a 404
        (("patient:read",), {}, "/api/v1/patients/{pk}/"),  # a read that would be served
        ((), {}, "/api/v1/patients/{pk}/"),  # a 401 (no credentials)
    ],
)
def test_any_refusal_whose_record_cannot_be_written_is_a_503_with_retry_after(
    api, issue_token, patient, refuse_audit_writes_with_an_error, scopes, headers, url
):
    if scopes:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(*scopes)}")
    refuse_audit_writes_with_an_error()
    api.raise_request_exception = False  # a 500 is an answer here, not the test's crash
    response = api.get(url.format(pk=patient.pk), **headers)
    _assert_unavailable_without_data(response, patient)
    assert response.json()["code"] == "audit_unavailable"
    assert int(response["Retry-After"]) >= 1
