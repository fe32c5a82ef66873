"""FHIR searches run through SQL compiled once per shape: every page of every shape must hold exactly
the rows the ORM finds for the same search."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.http import QueryDict

from apps.clinical import selectors
from apps.clinical.fhir import views
from apps.clinical.fhir.params import date_filter, encode_cursor, search_binding
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_shapes():
    views.compiled_searches.clear()
    yield
    views.compiled_searches.clear()


def _all_pages(client, query: str, resource_type: str = "Observation") -> list[int]:
    ids, url = [], f"/fhir/{resource_type}?{query}"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        bundle = response.json()
        ids += [int(entry["resource"]["id"]) for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        url = url and url.replace("http://testserver", "")
    return ids


def _orm(patient_id: int, *, category=None, codes=(), dates=(), statuses=(), ascending=False) -> list[int]:
    rows = selectors.observation_list(patient_id=patient_id, category=category, codes=codes)
    if dates:
        rows = rows.filter(date_filter("effective_at", "date", list(dates)))
    if statuses:
        rows = rows.filter(status__in=statuses)
    ordering = ["effective_at", "id"] if ascending else ["-effective_at", "-id"]
    return list(rows.order_by(*ordering).values_list("id", flat=True))


def test_every_shape_pages_through_exactly_the_orms_rows(clinician, loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    first = Observation.objects.filter(patient_id=patient_id).order_by("effective_at").first().effective_at
    day, next_day = first.date().isoformat(), (first + timedelta(days=1)).date().isoformat()
    noon = f"{next_day}T12:00:00Z"
    amended = Observation.objects.filter(patient_id=patient_id, code="8867-4").order_by("id")[:3]
    Observation.objects.filter(pk__in=[o.pk for o in amended]).update(status="amended")
    cases = [
        ("", {}),
        ("&category=vital-signs", {"category": "vital-signs"}),
        ("&code=8867-4", {"codes": ["8867-4"]}),
        ("&code=http://loinc.org|8867-4,8310-5", {"codes": ["8867-4", "8310-5"]}),
        (f"&date={day}", {"dates": [day]}),
        (f"&date=ge{day}&date=lt{noon}", {"dates": [f"ge{day}", f"lt{noon}"]}),
        (f"&date=gt{day}", {"dates": [f"gt{day}"]}),
        (f"&date=le{day}", {"dates": [f"le{day}"]}),
        (f"&date=ne{day}", {"dates": [f"ne{day}"]}),
        (f"&date=sa{day}&date=eb{noon}", {"dates": [f"sa{day}", f"eb{noon}"]}),
        (f"&date=ap{noon}", {"dates": [f"ap{noon}"]}),
        ("&status=amended", {"statuses": ["amended"]}),
        ("&status=final,amended&code=8867-4", {"statuses": ["final", "amended"], "codes": ["8867-4"]}),
        (f"&category=vital-signs&code=8867-4&date=ge{day}&_sort=date", {
            "category": "vital-signs", "codes": ["8867-4"], "dates": [f"ge{day}"], "ascending": True}),
    ]  # fmt: skip
    for query, orm in cases:
        expected = _orm(patient_id, **orm)
        for count in (7, 50):
            found = _all_pages(clinician, f"patient={patient_id}{query}&_count={count}")
            assert found == expected, query
    assert expected  # the last case matches rows, so its pages were compared, not two empty lists


def test_a_shape_is_compiled_once_and_reused_with_other_values(clinician, loaded):
    first, second = Patient.objects.order_by("pk")[:2]
    for patient in (first, second):
        _all_pages(clinician, f"patient={patient.pk}&category=vital-signs&_count=10")
    shapes = len(views.compiled_searches)
    statements = []

    def remember(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    expected = _orm(second.pk, category="vital-signs")
    with connection.execute_wrapper(remember):
        assert _all_pages(clinician, f"patient={second.pk}&category=vital-signs&_count=10") == expected
    assert len(views.compiled_searches) == shapes  # no new shape for new values
    searches = {sql for sql in statements if "clinical_observation" in sql and "LIMIT" in sql}  # not hasMember's
    assert len(searches) == 2  # one statement text for the first page, one for the pages after a cursor


def test_past_the_bound_on_shapes_searches_take_the_orm_with_the_same_answer(clinician, loaded, monkeypatch):
    patient_id = Patient.objects.order_by("pk").first().pk
    monkeypatch.setattr(views.compiled_searches, "at_most", 0)
    assert _all_pages(clinician, f"patient={patient_id}&code=8867-4&_count=5") == _orm(patient_id, codes=["8867-4"])
    assert len(views.compiled_searches) == 0


def test_a_cursor_with_an_empty_value_is_a_400(clinician, loaded):
    """Signed for this very search, as the server signs its own, so the check past the signature refuses it (a
    signature refusal says "... for this search: ..." instead)."""
    query = {"patient": str(Patient.objects.order_by("pk").first().pk)}
    search = search_binding("Observation", QueryDict(urlencode(query)))
    aware = encode_cursor(["2026-01-01T00:00:00Z", 5], search)  # the same cursor, every value set: it pages
    assert clinician.get("/fhir/Observation", {**query, "_cursor": aware}).status_code == 200
    for values in (["", 5], [None, 5], ["2026-01-01T00:00:00Z", ""]):
        response = clinician.get("/fhir/Observation", {**query, "_cursor": encode_cursor(values, search)})
        assert response.status_code == 400, (values, response.content[:200])
        (issue,) = response.json()["issue"]
        assert (issue["expression"], issue["diagnostics"]) == (["_cursor"], "not a cursor this server issued")


def _patient_ids(client, query: str) -> list[int]:
    response = client.get(f"/fhir/Patient?{query}")
    assert response.status_code == 200, response.content[:300]
    return [int(entry["resource"]["id"]) for entry in response.json().get("entry", [])]


def test_patient_searches_without_names_find_what_the_orm_finds(clinician, loaded):
    from django.conf import settings

    patients = list(Patient.objects.order_by("pk"))
    target = patients[3]
    Patient.objects.filter(pk=patients[4].pk).update(birth_date=target.birth_date)
    Patient.objects.filter(pk=patients[5].pk).update(is_deleted=True, birth_date=target.birth_date)
    born = target.birth_date.isoformat()
    cases = [
        (f"identifier={target.mrn}", [target.pk]),
        (f"identifier={settings.MRN_SYSTEM}|{target.mrn}", [target.pk]),
        (f"identifier=|{target.mrn}", [target.pk]),  # an empty system is the default one
        (f"identifier=http://other.example.org/mrn|{target.mrn}", []),
        (f"_id={target.pk}", [target.pk]),
        (f"_id={target.pk}&identifier={patients[0].mrn}", []),
        (f"birthdate={born}", sorted({target.pk, patients[4].pk} | {
            p.pk for p in patients if p.birth_date == target.birth_date and p.pk != patients[5].pk})),
        (f"birthdate={born}&identifier={target.mrn}", [target.pk]),
    ]  # fmt: skip
    for query, expected in cases:
        assert _patient_ids(clinician, query) == expected, query
    with_names = f"family={target.family_name[:3]}&birthdate={born}"
    assert target.pk in _patient_ids(clinician, with_names)  # names: the ORM path, unchanged


def test_patient_pages_by_cursor_through_the_compiled_path(clinician, loaded):
    target = Patient.objects.order_by("pk").first()
    same_day = list(Patient.objects.filter(birth_date=target.birth_date, is_deleted=False).order_by("pk"))
    Patient.objects.exclude(pk__in=[p.pk for p in same_day]).filter(pk__lte=same_day[-1].pk + 3).update(
        birth_date=target.birth_date
    )
    expected = list(
        Patient.objects.filter(birth_date=target.birth_date, is_deleted=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    ids = _all_pages(clinician, f"birthdate={target.birth_date.isoformat()}&_count=2", "Patient")
    assert len(expected) > 2 and ids == expected


def _with_history(patient: Patient, start) -> None:
    """Twelve encounters and twelve prescriptions over as many days, some on the same instant (the cursor's
    tie-breaker), across statuses and intents."""
    statuses = ["finished", "in-progress", "cancelled"]
    intents = ["order", "plan", "proposal"]
    for n in range(12):
        at = start + timedelta(days=n // 2)  # pairs on one instant
        encounter = Encounter.objects.create(patient=patient, encounter_class="AMB", status=statuses[n % 3],
                                             period_start=at, period_end=at + timedelta(hours=2))  # fmt: skip
        MedicationRequest.objects.create(patient=patient, encounter=encounter, rxnorm_code=["197361", "310965"][n % 2],
                                         display="drug", status=["active", "stopped"][n % 2], intent=intents[n % 3],
                                         authored_at=at)  # fmt: skip


def test_encounter_and_medication_searches_page_through_exactly_the_orms_rows(clinician, loaded):
    patient = Patient.objects.order_by("pk").first()
    start = Encounter.objects.filter(patient=patient).order_by("period_start").first().period_start
    # At noon: the load ends at the current hour, and a history starting after 22:00 had every two-hour stay
    # cross midnight, so `date=<day>` (a stay wholly inside the day) had no rows to compare at that hour.
    base = (start - timedelta(days=20)).replace(hour=12, minute=0, second=0, microsecond=0)
    _with_history(patient, base)
    day, until = (base + timedelta(days=3)).date().isoformat(), (base + timedelta(days=5)).date().isoformat()
    encounters = Encounter.objects.filter(patient=patient).order_by("-period_start", "-id")

    def dated(*dates: str):
        return encounters.filter(date_filter("period_start", "date", list(dates), end_field="period_end"))

    encounter_cases = [
        ("", encounters),
        ("&status=finished", encounters.filter(status="finished")),
        ("&status=finished,cancelled", encounters.filter(status__in=["finished", "cancelled"])),
        (f"&date=ge{day}", dated(f"ge{day}")),
        (f"&date=ge{day}&date=le{until}&status=in-progress", dated(f"ge{day}", f"le{until}").filter(
            status="in-progress")),
        (f"&date={day}", dated(day)),
        (f"&date=ne{day}", dated(f"ne{day}")),
        (f"&date=sa{day}", dated(f"sa{day}")),
        (f"&date=eb{until}", dated(f"eb{until}")),
    ]  # fmt: skip
    medications = MedicationRequest.objects.filter(patient=patient).order_by("-authored_at", "-id")
    medication_cases = [
        ("", medications),
        ("&status=active", medications.filter(status="active")),
        ("&intent=order,plan", medications.filter(intent__in=["order", "plan"])),
        ("&code=http://www.nlm.nih.gov/research/umls/rxnorm|197361", medications.filter(rxnorm_code="197361")),
        ("&code=197361,310965&status=stopped&intent=plan", medications.filter(
            rxnorm_code__in=["197361", "310965"], status="stopped", intent="plan")),
    ]  # fmt: skip
    for resource_type, cases in (("Encounter", encounter_cases), ("MedicationRequest", medication_cases)):
        for query, rows in cases:
            expected = list(rows.values_list("id", flat=True))
            assert expected, (resource_type, query)  # every case compares pages of rows, not two empty lists
            for count in (3, 50):
                found = _all_pages(clinician, f"patient={patient.pk}{query}&_count={count}", resource_type)
                assert found == expected, (resource_type, query, count)
    shapes = len(views.compiled_searches)
    other = Patient.objects.order_by("pk")[1]
    _all_pages(clinician, f"patient={other.pk}&status=finished&_count=3", "Encounter")
    assert shapes and len(views.compiled_searches) == shapes  # the same shapes serve another patient's searches


def test_encounter_and_medication_searches_refuse_bad_values(clinician, loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    for resource_type, query in [
        ("Encounter", "status=done"),
        ("Encounter", "date=2024-02-30"),
        ("MedicationRequest", "intent=wish"),
        ("MedicationRequest", "code=http://loinc.org|8867-4"),
    ]:
        response = clinician.get(f"/fhir/{resource_type}?patient={patient_id}&{query}")
        assert response.status_code == 400, (resource_type, query, response.content[:200])
        assert response.json()["resourceType"] == "OperationOutcome"
