"""`_pretty=true` lays every FHIR answer out indented (R4 3.1.1.5.7), `false` or none compact.

Before: `_pretty` was taken and ignored, every answer compact whatever it asked. The layout is chosen when the
answer is rendered: the cached card serves both, and the ETag (from the patient's update time) is the same.
"""

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from apps.audit.models import AuditEvent
from apps.clinical.fhir import views

pytestmark = pytest.mark.django_db

LENIENT = {"HTTP_PREFER": "handling=lenient"}


@pytest.fixture(autouse=True)
def _fresh_shapes():
    views.compiled_searches.clear()
    yield
    views.compiled_searches.clear()


def _pretty(response) -> dict:
    """The body, asserted indented by two spaces (and otherwise what json.dumps writes)."""
    text = response.content.decode()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, ensure_ascii=False), text[:300]
    return data


def _compact(response) -> dict:
    text = response.content.decode()
    data = json.loads(text)
    assert text == json.dumps(data, separators=(",", ":"), ensure_ascii=False), text[:300]
    return data


def test_a_read_is_indented_for_pretty_true_and_the_cached_card_serves_both_layouts(clinician, patient):
    url = f"/fhir/Patient/{patient.pk}"
    compact = clinician.get(url)  # loads the card into the cache
    pretty = clinician.get(url, {"_pretty": "true"})
    again = clinician.get(url, {"_pretty": "false"})
    assert [r.status_code for r in (compact, pretty, again)] == [200, 200, 200]
    assert _pretty(pretty) == _compact(compact) == _compact(again)
    assert pretty["ETag"] == compact["ETag"] == again["ETag"]
    assert pretty["Last-Modified"] == compact["Last-Modified"]
    records = AuditEvent.objects.filter(action="read", patient_id=patient.pk).order_by("seq")
    assert [record.served_from_cache for record in records] == [False, True, True]
    # The version the compact read gave is current for a pretty conditional read: 304, no body to lay out.
    assert clinician.get(url, {"_pretty": "true"}, HTTP_IF_NONE_MATCH=compact["ETag"]).status_code == 304


def test_searches_get_and_posted_and_their_totals_are_indented(clinician, patient, vitals):
    query = {"patient": patient.pk, "_count": 3}
    plain = _compact(clinician.get("/fhir/Observation", query))
    searched = _pretty(clinician.get("/fhir/Observation", {**query, "_pretty": "true"}))
    assert [e["resource"]["id"] for e in searched["entry"]] == [e["resource"]["id"] for e in plain["entry"]]
    next_url = {link["relation"]: link["url"] for link in searched["link"]}["next"]
    assert "_pretty" not in next_url  # the cursor binds the search, not its layout
    _pretty(clinician.get(f"{next_url}&_pretty=true"))
    _compact(clinician.get(next_url))
    _pretty(clinician.get("/fhir/Observation", {"patient": patient.pk, "_summary": "count", "_pretty": "true"}))
    form = "application/x-www-form-urlencoded"
    posted = clinician.post("/fhir/Observation/_search", f"patient={patient.pk}&_pretty=true", content_type=form)
    assert len(_pretty(posted)["entry"]) == len(vitals)
    in_url = clinician.post("/fhir/Observation/_search?_pretty=true", f"patient={patient.pk}", content_type=form)
    assert len(_pretty(in_url)["entry"]) == len(vitals)
    _compact(clinician.post("/fhir/Observation/_search", f"patient={patient.pk}&_pretty=false", content_type=form))


def test_a_lenient_search_honours_pretty_rather_than_listing_it_as_ignored(clinician, patient, vitals):
    bundle = _pretty(clinician.get("/fhir/Observation", {"patient": patient.pk, "_pretty": "true"}, **LENIENT))
    assert all(entry["search"]["mode"] == "match" for entry in bundle["entry"])  # no outcome naming `_pretty`
    assert len(bundle["entry"]) == len(vitals)


def test_metadata_and_operation_outcomes_are_indented(clinician, patient):
    assert _pretty(clinician.get("/fhir/metadata", {"_pretty": "true"}))["resourceType"] == "CapabilityStatement"
    _compact(clinician.get("/fhir/metadata"))
    missing = clinician.get(f"/fhir/Patient/{patient.pk + 1000}", {"_pretty": "true"})
    assert missing.status_code == 404 and _pretty(missing)["resourceType"] == "OperationOutcome"
    refused = clinician.get("/fhir/Observation", {"patient": patient.pk, "foo": "1", "_pretty": "true"})
    assert refused.status_code == 400 and _pretty(refused)["issue"][0]["expression"] == ["foo"]
    malformed = clinician.get("/fhir/Observation", {"patient": patient.pk, "_pretty": "yes"})
    assert malformed.status_code == 400 and _compact(malformed)["issue"][0]["expression"] == ["_pretty"]


def test_every_fhir_operation_documents_pretty():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    documented = {}
    for path, item in schema["paths"].items():
        if not path.startswith("/fhir/") or path == "/fhir/{rest}":
            continue
        for method, operation in item.items():
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            if method == "post":
                ref = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["$ref"]
                names |= set(schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"])
            documented[(method, path)] = "_pretty" in names
    # 13, Observation/$lastn's GET and POST, Patient/{id}/$everything's GET and POST
    assert len(documented) == 17 and all(documented.values()), documented
