"""A streamed generation about a patient refused for want of a slot (503 `streams_busy`) left no audit record,
while a full generation queue's refusal is audited `error`: the stream's slot was taken before the patient was
noted. And the `denied` record of a call naming a patient_id without `patient:read` put the patient id in
resource_id, where the view's other records keep the deployment's name. The stream test loads the real SmolLM2
(its context is checked before the slot is asked for); the scope test needs no model (it is refused first)."""

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.inference import services, serving
from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db

URL = "/api/v1/inference/{}/generate"


@pytest.fixture(autouse=True)
def _room():
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)


@pytest.fixture
def patient_id() -> int:
    return patient_create(mrn="MRN-F3", family_name="Roe", given_name="Jane", birth_date=date(1970, 1, 1)).pk


def _post(api, token, name, body):
    return api.post(URL.format(name), body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_stream_about_a_patient_refused_for_want_of_a_slot_is_audited(api, issue_token, patient_id):
    _, assistant = services.bundled_deployments_ensure()
    assistant.max_concurrent_streams = 1
    assistant.save()
    release = serving.stream_slots.take(assistant, 1)  # every stream of the deployment running
    try:
        before = AuditEvent.objects.count()
        body = {"prompt": "Summarise.", "max_new_tokens": 4, "stream": True, "patient_id": patient_id}
        refused = _post(api, issue_token("inference", "patient:read"), assistant.name, body)
        assert refused.status_code == 503, refused.content[:300]
        assert refused.json()["code"] == "streams_busy"
        assert AuditEvent.objects.count() == before + 1  # was none
        record = AuditEvent.objects.order_by("-id").first()
        assert (record.outcome, record.patient_id, record.action) == ("error", patient_id, "create")
        assert (record.resource_type, record.resource_id) == ("ModelInference", assistant.name)
    finally:
        release()


@pytest.mark.parametrize("endpoint", ["embed", "generate"])
def test_the_denied_record_names_the_deployment_as_its_resource_and_the_patient_as_its_patient(
    api, issue_token, patient_id, endpoint
):
    before = AuditEvent.objects.count()
    body = {"inputs": ["fever"]} if endpoint == "embed" else {"prompt": "fever"}
    url = f"/api/v1/inference/any-deployment/{endpoint}"
    response = api.post(url, {**body, "patient_id": patient_id}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}")  # fmt: skip
    assert response.status_code == 403, response.content[:300]
    assert AuditEvent.objects.count() == before + 1
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.outcome, record.action, record.patient_id) == ("denied", "create", patient_id)
    assert (record.resource_type, record.resource_id) == ("ModelInference", "any-deployment")  # was the patient id


@pytest.mark.parametrize("endpoint", ["embed", "generate"])
def test_a_call_refused_for_its_scope_names_the_deployment_as_the_other_records_do(api, issue_token, endpoint):
    """A missing `inference` scope is recorded (README: every refused attempt) with the deployment asked for as
    its resource, like the view's other records: it was recorded with none."""
    before = AuditEvent.objects.count()
    body = {"inputs": ["fever"]} if endpoint == "embed" else {"prompt": "fever"}
    response = api.post(f"/api/v1/inference/any-deployment/{endpoint}", body, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read')}")  # fmt: skip
    assert response.status_code == 403, response.content[:300]
    [record] = AuditEvent.objects.order_by("id")[before:]
    assert (record.outcome, record.action, record.patient_id) == ("denied", "create", None)
    assert (record.resource_type, record.resource_id) == ("ModelInference", "any-deployment")
