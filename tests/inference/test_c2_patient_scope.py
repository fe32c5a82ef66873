"""An inference call naming a patient_id needs `patient:read` besides `inference`: an inference-only client was
told "No active patient has this id." for a missing patient and got an answer for an existing one, a probe of
which patient ids exist. It is a 403 now, the same for both, before any patient is looked up, and audited."""

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("/api/v1/inference/{}/embed", {"inputs": ["fever"]}),
    ("/api/v1/inference/{}/generate", {"prompt": "fever"}),
]


@pytest.fixture(autouse=True)
def _room():
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)


@pytest.fixture
def known() -> int:
    return patient_create(mrn="MRN-1", family_name="Ng", given_name="Al", birth_date=date(1970, 1, 1)).pk


def _post(api, token, url, body):
    return api.post(url.format("no-such-model"), body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.parametrize(("url", "body"), ENDPOINTS)
def test_an_inference_only_client_naming_a_patient_is_refused_alike_for_any_id(api, issue_token, known, url, body):
    token = issue_token("inference")
    answers = []
    for patient_id in (known, known + 1000):
        before = AuditEvent.objects.count()
        response = _post(api, token, url, {**body, "patient_id": patient_id})
        assert response.status_code == 403, response.content[:300]
        assert "patient:read" in response.json()["detail"]
        answers.append(response.json())
        refusal = AuditEvent.objects.order_by("-id").first()
        assert AuditEvent.objects.count() == before + 1
        # The answer is the same; the record names only a patient who exists (an unknown id, perhaps a future
        # patient's, is kept out of every history, as a not-found read's is).
        assert (refusal.outcome, refusal.patient_id) == ("denied", patient_id if patient_id == known else None)
    assert answers[0] == answers[1]


@pytest.mark.parametrize(("url", "body"), ENDPOINTS)
def test_patient_read_lets_the_call_on_and_no_patient_needs_no_more_than_inference(api, issue_token, known, url, body):
    both = _post(api, issue_token("inference", "patient:read"), url, {**body, "patient_id": known})
    assert both.status_code == 404, both.content[:300]  # past the scope check, to the deployment's lookup
    alone = _post(api, issue_token("inference"), url, body)
    assert alone.status_code == 404, alone.content[:300]


@pytest.mark.parametrize(("url", "body"), ENDPOINTS)
@pytest.mark.parametrize("patient_id", ["1", True])
def test_a_quoted_or_boolean_patient_id_is_a_400_on_the_field(api, issue_token, url, body, patient_id):
    response = _post(api, issue_token("inference", "patient:read"), url, {**body, "patient_id": patient_id})
    assert response.status_code == 400, response.content[:300]
    assert "json number" in str(response.json()["errors"]["patient_id"]).lower()


def test_a_quoted_token_limit_is_a_400_on_the_field(api, issue_token):
    url, body = ENDPOINTS[1]
    response = _post(api, issue_token("inference"), url, {**body, "max_new_tokens": "10"})
    assert response.status_code == 400, response.content[:300]
    assert "json number" in str(response.json()["errors"]["max_new_tokens"]).lower()
