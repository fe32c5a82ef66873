"""The patient window posted (`POST /api/v1/patients/window/` with a JSON body): the dashboard's name search put
the name in the URL (`?name=<fragment>`), and so in every ingress and proxy access log. The POST form answers
what the GET answers, with the same audit record, query budget and 400s, and keeps the search out of the URL."""

from datetime import date

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db

WINDOW = "/api/v1/patients/window/"


@pytest.fixture
def family(db) -> list:
    return [
        patient_create(mrn=f"MRN-W{i}", family_name=name, given_name="Al", birth_date=date(1970, 1, 1 + i))
        for i, name in enumerate(["Okafor", "Okonkwo", "Oduya", "Smith"])
    ]


def _last_event() -> AuditEvent:
    return AuditEvent.objects.order_by("-seq").first()


def test_the_posted_window_answers_as_the_get_and_is_audited_alike(clinician, family):
    got = clinician.get(WINDOW, {"name": "ok", "offset": 1, "limit": 5})
    assert got.status_code == 200, got.content[:300]
    by_get = _last_event()
    posted = clinician.post(WINDOW, {"name": "ok", "offset": 1, "limit": 5}, format="json")
    assert posted.status_code == 200, posted.content[:300]
    assert posted.json() == got.json()
    assert posted.json()["count"] == 2 and [row["id"] for row in posted.json()["results"]] == [family[1].pk]
    by_post = _last_event()
    assert by_post.pk != by_get.pk
    fields = (
        "action",
        "resource_type",
        "outcome",
        "result_count",
        "patient_id",
        "patient_ids",
        "query_digest",
        "actor_id",
    )
    assert {f: getattr(by_post, f) for f in fields} == {f: getattr(by_get, f) for f in fields}
    assert by_post.action == "search" and by_post.patient_id == family[1].pk  # one patient disclosed
    assert "ok" not in by_post.query_digest  # a keyed digest, as for the GET
    # No name at all: the whole list, as the GET's defaults.
    assert clinician.post(WINDOW, {}, format="json").json() == clinician.get(WINDOW).json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "\u0301"}, "name"),  # names no one: it would list every patient
        ({"name": "x" * 101}, "name"),
        ({"name": None}, "name"),
        ({"limit": 100_000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "a"}, "offset"),
        ({"birth_date": "1970-02-30"}, "birth_date"),
        ({"nmae": "ok"}, "nmae"),  # misspelt: refused, not ignored (a search for everyone)
    ],
)
def test_bad_input_is_a_400_on_its_field_and_reads_nothing(clinician, family, body, field):
    before = AuditEvent.objects.count()
    response = clinician.post(WINDOW, body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json()["errors"]
    assert AuditEvent.objects.count() == before


def test_a_search_in_the_url_or_a_body_that_is_not_a_json_object_is_refused(clinician, family):
    before = AuditEvent.objects.count()
    in_url = clinician.post(f"{WINDOW}?name=ok", {}, format="json")
    assert in_url.status_code == 400 and "name" in in_url.json()["errors"]
    assert clinician.post(WINDOW, ["ok"], format="json").status_code == 400
    assert clinician.post(WINDOW, "{not json", content_type="application/json").status_code == 400
    assert clinician.post(WINDOW, "name=ok", content_type="application/x-www-form-urlencoded").status_code == 415
    assert AuditEvent.objects.count() == before


def test_the_posted_window_keeps_the_gets_query_budget(clinician, loaded, query_budget):
    assert clinician.post(WINDOW, {"name": "a", "limit": 1}, format="json").status_code == 200
    for limit in (2, 30):
        with query_budget(8):  # as the GET's (test_query_budgets.py)
            response = clinician.post(WINDOW, {"name": "a", "limit": limit}, format="json")
        assert response.status_code == 200, response.content[:300]


def test_a_staff_session_posts_from_its_own_pages_and_nothing_else(admin_user, family):
    """A session POST needs evidence that this site sent it (Sec-Fetch-Site same-origin, this site's Origin, an
    HTTPS Referer of this site) or the CSRF token; a JSON body with none of them was taken, so a client sending
    no fetch metadata could run an audited PHI search in a clinician's name."""
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    ok = browser.post(WINDOW, {"name": "ok"}, format="json", HTTP_SEC_FETCH_SITE="same-origin")
    assert ok.status_code == 200 and ok.json()["count"] == 2
    assert _last_event().actor_id == admin_user.pk
    form = browser.post(WINDOW, "name=ok", content_type="application/x-www-form-urlencoded")
    plain = browser.post(WINDOW, '{"name": "ok"}', content_type="text/plain")
    assert form.status_code == plain.status_code == 403 and "CSRF" in form.json()["detail"]
    for site in ("cross-site", "same-site"):
        forged = browser.post(WINDOW, {"name": "ok"}, format="json", HTTP_SEC_FETCH_SITE=site)
        assert forged.status_code == 403 and "CSRF" in forged.json()["detail"], site
    # A browser without Sec-Fetch-Site that names another origin: no exemption either.
    elsewhere = browser.post(WINDOW, {"name": "ok"}, format="json", HTTP_ORIGIN="https://evil.example")
    assert elsewhere.status_code == 403 and "CSRF" in elsewhere.json()["detail"]
    own = browser.post(WINDOW, {"name": "ok"}, format="json", HTTP_ORIGIN="http://testserver")
    assert own.status_code == 200
    # No Origin, no fetch metadata, no token: refused, and no search is run or audited.
    searches = AuditEvent.objects.filter(outcome=AuditEvent.Outcome.SUCCESS).count()
    bare = browser.post(WINDOW, {"name": "ok"}, format="json")
    assert bare.status_code == 403 and "CSRF" in bare.json()["detail"]
    assert AuditEvent.objects.filter(outcome=AuditEvent.Outcome.SUCCESS).count() == searches
    # Registering a patient with the same session still needs the token.
    write = browser.post(
        "/api/v1/patients/",
        {"mrn": "MRN-X", "family_name": "Doe", "given_name": "Jo", "birth_date": "1970-01-01"},
        format="json",
    )
    assert write.status_code == 403


def test_the_schema_documents_the_posted_window(clinician):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    post = schema["paths"][WINDOW]["post"]
    assert post["operationId"] == "patients_window_search"
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PatientWindowInput")
    assert not [p for p in post.get("parameters", []) if p["in"] == "query"]
    assert {"200", "400", "415"} <= set(post["responses"])
