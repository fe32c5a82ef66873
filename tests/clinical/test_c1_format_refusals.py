"""`?format=` on the schema and docs views: an unknown one was a 400 written as YAML (/api/schema/) or an HTML
page (/api/docs/), and one given twice (`format=json&format=yaml`) was answered in the last. Both are a JSON 400
on `format` naming the formats the view answers, and `format` twice is a 400 on every API view."""

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

pytestmark = pytest.mark.django_db


def _refused(response, *answers: str) -> str:
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].split(";")[0] == "application/json"
    message = response.json()["errors"]["format"]
    message = message if isinstance(message, str) else " ".join(message)
    assert all(answer in message for answer in answers), message
    return message


@pytest.mark.parametrize(
    ("path", "query", "answers"),
    [
        ("/api/schema/", "format=xml", ("json", "yaml")),
        ("/api/schema/", "format=json&format=yaml", ("json", "yaml")),
        ("/api/schema/", "format=json&format=json", ("json", "yaml")),
        ("/api/docs/", "format=xml", ("html",)),
        ("/api/docs/", "format=json", ("html",)),
        ("/api/docs/", "format=html&format=json", ("html",)),
    ],
)
def test_schema_and_docs_refuse_in_json_naming_their_formats(client, path, query, answers):
    _refused(client.get(f"{path}?{query}"), *answers)


def test_schema_and_docs_still_answer(client, staff_api):
    assert staff_api.get("/api/v1/?format=json").status_code == 200
    assert client.get("/api/schema/?format=json").json()["openapi"].startswith("3.")
    assert client.get("/api/schema/?format=yaml")["Content-Type"].startswith("application/vnd.oai.openapi")
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and docs["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/services/", "/api/v1/whoami/"])
def test_format_twice_is_a_400_on_any_api_view(staff_api, path):
    assert "more than once" in _refused(staff_api.get(f"{path}?format=json&format=json"), "json")


def test_format_twice_on_patient_data_and_fhir(clinician, patient):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/?format=json&format=json")
    # json is a format it answers: the refusal says it came twice (734444b), not "Not a format this view answers".
    assert "more than once" in _refused(response, "json")
    response = clinician.get(f"/fhir/Patient/{patient.pk}?format=json&format=json")
    assert response.status_code == 400, response.content[:300]
    issue = OperationOutcome.model_validate(response.json()).issue[0]
    assert issue.expression == ["format"] and "more than once" in issue.diagnostics
