"""What an inference body may be: a form naming a single-valued field twice is refused on that field (the last
was read and the others dropped: a call naming two patients was audited under the second only), a list field may
repeat; a text of invisible format characters alone (U+200B, U+FEFF) is no content; a JSON body that is not an
object is refused on `body`, not as a non-field error."""

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from tests.inference.support import EMBED_URL, deployment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_let_go_of_test_models")]
FORM = "application/x-www-form-urlencoded"


def _post(api, token, name: str, body: str, content_type: str = FORM):
    return api.generic("POST", EMBED_URL.format(name), body, content_type=content_type,
                       HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip


def test_a_form_naming_two_patients_is_refused_and_nothing_audited(api, token):
    first = patient_create(mrn="MRN-B2-1", family_name="Ng", given_name="Al", birth_date=date(1970, 1, 1)).pk
    second = patient_create(mrn="MRN-B2-2", family_name="Ro", given_name="Bo", birth_date=date(1971, 1, 1)).pk
    deployment("form-embed")
    response = _post(api, token, "form-embed", f"inputs=fever&patient_id={first}&patient_id={second}")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {"patient_id": "Given more than once; give it once."}
    assert not AuditEvent.objects.filter(resource_type="ModelInference").exists()


def test_a_form_may_repeat_a_list_field(api, token):
    deployment("form-embed")
    response = _post(api, token, "form-embed", "inputs=fever&inputs=cough")
    assert response.status_code == 200, response.content
    assert len(response.json()["embeddings"]) == 2


@pytest.mark.parametrize("text", ["\u200b", "\ufeff", " \u200b\u2060\u00ad\n", "\u200d\u200c"])
def test_a_text_of_invisible_characters_alone_is_no_content(api, token, text):
    deployment("form-embed")
    response = api.post(EMBED_URL.format("form-embed"), {"inputs": ["fever", text]}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {
        "inputs": {"1": ["Must contain more than white space and invisible characters."]}
    }


def test_a_text_with_invisible_characters_besides_others_is_embedded(api, token):
    deployment("form-embed")
    response = api.post(EMBED_URL.format("form-embed"), {"inputs": ["\u200bfever\ufeff"]}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("body", ["[1, 2]", '"fever"', "42", "null", "true", '[{"inputs": ["fever"]}]'])
@pytest.mark.parametrize("endpoint", ["embed", "generate"])
def test_a_json_body_that_is_not_an_object_is_refused_on_body(api, token, body, endpoint):
    response = api.generic("POST", f"/api/v1/inference/no-such/{endpoint}", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {"body": ["A JSON object."]}
