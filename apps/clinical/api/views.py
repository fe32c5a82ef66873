"""The clinical REST API (/api/v1/patients/...). Thin: parse, call a selector or service, audit, answer."""

from __future__ import annotations

import base64
from urllib import parse

from django.db import transaction
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from apps.accounts import scopes
from apps.accounts.authentication import BearerTokenAuthentication, SameOriginJSONSessionAuthentication
from apps.audit.views import PhiAPIView
from apps.audit.writer import writer
from apps.caching.stack import served_from_cache
from apps.clinical import selectors, services
from apps.clinical.api import serializers as s
from apps.clinical.api.representations import encounter_json, medication_request_json, observation_json, patient_json
from apps.clinical.api.schema import PatientWindowOutputSerializer, VitalsOutputSerializer
from apps.clinical.models import Encounter, Observation, Patient
from apps.clinical.services import patient_scope
from apps.core.api.pagination import KeysetPagination
from apps.core.api.params import reject_unknown_params, validated_body, validated_query
from apps.core.api.parsers import JSONParser
from apps.core.api.schema import ErrorOutputSerializer, error_responses
from apps.core.idempotency import (
    HEADER,
    REPLAYED_HEADER,
    IdempotentResourceGone,
    idempotent_create,
    idempotent_request,
)

# Every PHI view: bad input (or X-Purpose-Of-Use), credentials, scope, its rate limit, the audit trail.
PHI_ERRORS = error_responses(400, 401, 403, 429, 503)
PATIENT_ERRORS = {**PHI_ERRORS, **error_responses(404, e404="No active patient has this id.")}
# A POST's body is JSON: a form or multipart body is a 415, not read as strings field by field.
JSON_BODY_ERRORS = {415: OpenApiResponse(ErrorOutputSerializer, description="A body other than JSON.")}
IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    description="Makes a retry safe: the same key with the same body within 24 h answers the first request's "
    "result (header `Idempotent-Replayed: true`) instead of creating again.",
)
IDEMPOTENCY_ERRORS = {
    410: OpenApiResponse(ErrorOutputSerializer, description="The key's first request created what is deleted since."),
    422: OpenApiResponse(ErrorOutputSerializer, description="The Idempotency-Key was sent with another request."),
}


def _duplicate_mrn(refused: Exception) -> bool:
    return any(error.code == "duplicate_mrn" for error in getattr(refused, "error_dict", {}).get("mrn", []))


class _NoSuchPatient(Exception):
    """A create's patient is missing: answered 404 (and audited) once its transaction rolled back."""


def _replayed(view: PhiAPIView, request: Request, resource, patient_id: int | None):
    """What an Idempotency-Key's first request created, answered again: a disclosure, audited as a read; 410
    where it (or its patient) has been deleted since."""
    resource_type = type(resource).__name__ if resource is not None else view.resource_type
    resource_id = resource.pk if resource is not None else None
    if patient_id is None:
        view.audit(request, action="read", resource_type=resource_type, resource_id=resource_id, outcome="not_found")
        raise IdempotentResourceGone()
    view.audit(request, action="read", resource_type=resource_type, resource_id=resource_id, patient_id=patient_id)
    return resource


def _created(body: dict, replayed: bool, location: str | None = None) -> Response:
    """A 201 (a replayed one too), with Location naming the new resource where it has a URL of its own."""
    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    if location:
        headers["Location"] = location
    return Response(body, status=status.HTTP_201_CREATED, headers=headers or None)


class PatientPathView(PhiAPIView):
    """A view under patients/<id:patient_id>/: the id as the server writes it, or None for another spelling of it
    (`007`, which `<id:...>` reads as 7), answered as an unknown id is, audited, naming no resource (and so is
    its refusal). So one patient has one URL, one cache key and one resource id in the trail, as FHIR's
    `Patient/007` is not `Patient/7`. Checked here, not by another converter, so the route template (the
    metrics' `route` label) stays as it is; by the path's text, as a reverse() would cost the hot read more."""

    def dispatch(self, request, *args, **kwargs):
        if f"/patients/{kwargs['patient_id']}/" not in request.path_info:
            kwargs["patient_id"] = None
        return super().dispatch(request, *args, **kwargs)

    def refusal_worth_keeping(self, request: Request) -> bool:
        """Its URL names a patient, spelt as the server writes it or not: its 404 is recorded, so is any refusal
        (naming no one when the id is spelt otherwise)."""
        return True


def _patient_or_404(view: PhiAPIView, request: Request, patient_id: int | None) -> dict:
    """The patient as JSON (cached); an unknown one is audited as such and answered 404, as is an id spelt
    otherwise than the server writes it (None: `007` is not patient 7), naming no resource."""
    patient = selectors.patient_card(patient_id=patient_id) if patient_id is not None else None
    if patient is None:
        view.audit(request, action="read", resource_type="Patient", resource_id=patient_id, outcome="not_found")
        raise NotFound("No such patient.")
    return patient


class PatientLookupView(PhiAPIView):
    """Find a patient by MRN. A POST, so the identifier never appears in a URL or an access log."""

    required_scopes = [scopes.PATIENT_READ]
    resource_type = "Patient"
    refusal_action = "search"  # a POST, yet a search by identifier
    parser_classes = [JSONParser]

    @extend_schema(
        request=s.PatientLookupInputSerializer,
        responses={
            200: s.PatientOutputSerializer,
            **PHI_ERRORS,
            **error_responses(404, e404="No active patient has this MRN."),
            409: OpenApiResponse(
                ErrorOutputSerializer,
                description="More than one active patient has this MRN, under colliding spellings of its system "
                "(`ambiguous_identifier`): ambiguous until their records are resolved.",
            ),
            **JSON_BODY_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        body = validated_body(request, s.PatientLookupInputSerializer)
        services.validate_mrn(body["mrn"])
        if "system" in body:  # not a URI: a slip (the type code "MRN"), not a system no patient is in
            services.validate_identifier_system(body["system"])
        query = {"identifier": body["mrn"], "system": body.get("system", "")}
        try:
            patient_id = selectors.patient_id_by_identifier(value=body["mrn"], system=body.get("system"))
        except selectors.AmbiguousIdentifier:  # "these patients have this MRN": recorded as the 404 is, naming them
            holders = selectors.patients_by_identifier(value=body["mrn"], system=body.get("system"))
            self.audit(request, action="search", outcome="error", result_count=0, query=query,
                       patient_ids=[holder.pk for holder in holders])  # fmt: skip
            raise
        patient = selectors.patient_card(patient_id=patient_id) if patient_id else None
        if patient is None:
            self.audit(request, action="search", outcome="not_found", result_count=0, query=query)
            raise NotFound("No patient has this MRN.")
        self.audit(request, action="read", resource_id=patient_id, patient_id=patient_id, query=query,
                   served_from_cache=served_from_cache())  # fmt: skip
        return Response(patient)


class PatientWindowView(PhiAPIView):
    """Rows `offset` to `offset + limit` of a patient search and the total: what a virtualized list asks
    for when the user drags its scrollbar to any point of 100k+ rows (a keyset page cannot jump).

    GET takes the search in the query string; POST takes it as a JSON body, so a name (or birth date) never
    reaches a URL, an access log or a proxy's log, as FHIR's `POST [type]/_search` does."""

    required_scopes = [scopes.PATIENT_READ]
    resource_type = "Patient"
    refusal_action = "search"  # a refused GET or POST alike
    authentication_classes = [BearerTokenAuthentication, SameOriginJSONSessionAuthentication]
    parser_classes = [JSONParser]

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST":  # a read, like the GET: its audit record joins the group commit
            with writer.expecting():
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        parameters=[s.PatientWindowInputSerializer],
        responses={200: PatientWindowOutputSerializer, **PHI_ERRORS},
        description="The search in the query string puts names and birth dates in URLs, and so in access logs: "
        "prefer the POST form.",
    )
    def get(self, request: Request) -> Response:
        return self._window(request, dict(validated_query(request, s.PatientWindowInputSerializer)))

    @extend_schema(
        operation_id="patients_window_search",
        request=s.PatientWindowInputSerializer,
        responses={
            200: PatientWindowOutputSerializer,
            **PHI_ERRORS,
            **JSON_BODY_ERRORS,
        },
        description="The same window with the search in a JSON body, kept out of URLs and logs. A staff session's "
        "POST needs evidence that this site sent it: `Sec-Fetch-Site: same-origin`, an Origin of this site or of "
        "CSRF_TRUSTED_ORIGINS, an HTTPS Referer of this site, or the CSRF token (whoami's `csrf_token`) as "
        "X-CSRFToken.",
    )
    def post(self, request: Request) -> Response:
        reject_unknown_params(request, [])  # nothing in the URL: the search is the body
        return self._window(request, dict(validated_body(request, s.PatientWindowInputSerializer)))

    def _window(self, request: Request, query: dict) -> Response:
        offset, limit = query.pop("offset"), query.pop("limit")
        patients = selectors.patient_search(**query)
        rows = [patient_json(patient) for patient in patients[offset : offset + limit]]
        if rows or offset == 0:
            count, result_count, named = patients.count(), len(rows), [row["id"] for row in rows]
        else:  # past the end of its matches, the answer is their count alone: audited as FHIR's _summary=count
            count, named = selectors.patients_counted(patients)
            result_count = count
        self.audit(request, action="search", result_count=result_count, patient_ids=named,
                   query={**{k: str(v) for k, v in query.items()}, "offset": str(offset)})  # fmt: skip
        return Response({"count": count, "offset": offset, "results": rows})


class SearchBoundPagination(KeysetPagination):
    """Keyset pages whose cursor is bound to the search that issued it. A cursor holds only the last position
    seen, so one reused with other parameters (another name, another status) or on another list (another
    patient's encounters) answered that search's rows after that position: pages of a search never asked for in
    that order, silently. The cursor carries a keyed digest of its search (not the search: cursors reach logs):
    the query's parameters, the list's path ids (the patient) and the kind of list (the `salt`); another search
    is a 400 on `cursor`. The page size may change between pages."""

    ordering = ("id",)
    unbound = ("cursor", "page_size")
    salt = "clinical.patient-search-cursor"
    mismatch = "This cursor belongs to another search; start again without it."

    def paginate_queryset(self, queryset, request, view=None):
        self.path_ids = sorted(getattr(view, "kwargs", {}).items())
        return super().paginate_queryset(queryset, request, view)

    def search_digest(self, request: Request) -> str:
        search = sorted((k, v) for k, v in request.query_params.lists() if k not in self.unbound)
        # A list under a path with ids binds them too; a search with none keeps the digest it always had.
        bound = (self.path_ids, search) if getattr(self, "path_ids", None) else search
        return salted_hmac(self.salt, repr(bound)).hexdigest()[:32]

    def decode_cursor(self, request: Request):
        self.digest = self.search_digest(request)
        cursor = super().decode_cursor(request)
        if cursor is not None:
            encoded = request.query_params[self.cursor_query_param]
            tokens = parse.parse_qs(base64.b64decode(encoded.encode("ascii")).decode("ascii"))
            if "s" not in tokens:  # none this server issues: as any other cursor it never issued
                raise NotFound(self.invalid_cursor_message)
            if not constant_time_compare(tokens["s"][0], self.digest):
                raise ValidationError({self.cursor_query_param: [self.mismatch]})
        return cursor

    def encode_cursor(self, cursor) -> str:
        tokens = {"o": str(cursor.offset)} if cursor.offset else {}
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = cursor.position
        tokens["s"] = self.digest
        encoded = base64.b64encode(parse.urlencode(tokens, doseq=True).encode("ascii")).decode("ascii")
        return replace_query_param(self.base_url, self.cursor_query_param, encoded)


def search_bound_pagination(*ordering: str, salt: str) -> type[SearchBoundPagination]:
    """A search-bound pagination ordered by the given fields (the last one unique), for the list `salt` names."""
    return type("SearchBoundPagination", (SearchBoundPagination,), {"ordering": ordering, "salt": salt})


class PatientListView(PhiAPIView):
    """Search active patients by name prefix and birth date (GET), or register one (POST)."""

    required_scopes = {"GET": [scopes.PATIENT_READ], "POST": [scopes.PATIENT_WRITE]}
    resource_type = "Patient"
    # By id: the cursor then carries no name, and pages stay exact however many share a surname.
    pagination_class = SearchBoundPagination
    parser_classes = [JSONParser]

    @extend_schema(
        parameters=[s.PatientSearchInputSerializer],
        responses={200: s.PatientOutputSerializer(many=True), **PHI_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, s.PatientSearchInputSerializer)
        query.pop("page_size", None)
        return self.audited_page(
            request,
            selectors.patient_search(**query),
            lambda page: [patient_json(patient) for patient in page],
            query={k: str(v) for k, v in query.items()},
            spans_patients=True,
        )

    @extend_schema(
        request=s.PatientCreateInputSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.PatientOutputSerializer, **PHI_ERRORS, **JSON_BODY_ERRORS, **IDEMPOTENCY_ERRORS},
    )
    def post(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        fields = dict(validated_body(request, s.PatientCreateInputSerializer))
        claim = idempotent_request(request)
        system = fields.pop("system", None)

        def create() -> Patient:  # in the create's transaction: the patient and its audit record, or neither
            patient = services.patient_create(identifier_system=system, **fields)
            self.audit(request, action="create", resource_id=patient.pk, patient_id=patient.pk)
            return patient

        def replay(resource_id: str) -> Patient:
            patient = Patient.objects.filter(pk=int(resource_id)).first()
            return _replayed(self, request, patient, patient.pk if patient and not patient.is_deleted else None)

        # "This MRN exists" answers a lookup, so it is recorded like one (after the rollback, so the record stays).
        lookup = {"identifier": fields["mrn"], "system": system or ""}

        def holder() -> list[int]:  # named as the lookup's record names them: each, in any spelling of the system
            return [patient.pk for patient in selectors.patients_by_identifier(value=fields["mrn"], system=system)]

        with self.refusal_audited(request, action="create", only=_duplicate_mrn, named=holder, query=lookup):
            patient, replayed = idempotent_create(claim, create=create, replay=replay, resource_id=lambda p: p.pk)
        location = request.build_absolute_uri(reverse("patient-detail", kwargs={"patient_id": patient.pk}))
        return _created(patient_json(patient), replayed, location)


class PatientDetailView(PatientPathView):
    required_scopes = [scopes.PATIENT_READ]
    resource_type = "Patient"

    def refused_resource_id(self, request: Request) -> str:
        return str(self.kwargs.get("patient_id") or "")  # as its read and not-found records: the patient

    @extend_schema(responses={200: s.PatientOutputSerializer, **PATIENT_ERRORS})
    def get(self, request: Request, patient_id: int | None) -> Response:
        reject_unknown_params(request, [])
        patient = _patient_or_404(self, request, patient_id)
        self.audit(request, action="read", resource_id=patient_id, patient_id=patient_id,
                   served_from_cache=served_from_cache())  # fmt: skip
        return Response(patient)


class PatientVitalsView(PatientPathView):
    """A patient's vital signs: by code, in a time window, newest first, or only the latest of each."""

    required_scopes = {"GET": [scopes.CLINICAL_READ], "POST": [scopes.CLINICAL_WRITE]}
    resource_type = "Observation"
    parser_classes = [JSONParser]

    def refused_action(self, request: Request) -> str:
        return "search" if request.method in ("GET", "HEAD") else super().refused_action(request)  # as served

    @extend_schema(parameters=[s.VitalsInputSerializer], responses={200: VitalsOutputSerializer, **PATIENT_ERRORS})
    def get(self, request: Request, patient_id: int | None) -> Response:
        query = validated_query(request, s.VitalsInputSerializer)
        _patient_or_404(self, request, patient_id)
        observations = selectors.vital_signs_cards(
            patient_id=patient_id,
            codes=query.get("code"),
            since=query.get("since"),
            until=query.get("until"),
            latest=query["latest"],
            limit=query["limit"],
        )
        self.audit(request, action="search", patient_id=patient_id, result_count=len(observations),
                   served_from_cache=served_from_cache())  # fmt: skip
        return Response({"results": observations})

    @extend_schema(
        request=s.ObservationCreateInputSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.ObservationOutputSerializer, **PATIENT_ERRORS, **JSON_BODY_ERRORS, **IDEMPOTENCY_ERRORS},
    )
    def post(self, request: Request, patient_id: int | None) -> Response:
        reject_unknown_params(request, [])
        # The body first: its errors (unparsable, wrong type, a bad field) answer alike for any patient id.
        fields = dict(validated_body(request, s.ObservationCreateInputSerializer))
        claim = idempotent_request(request)
        encounter_id = fields.pop("encounter_id", None)

        def create() -> Observation:  # in the create's transaction: the observation and its audit record, or neither
            # The row itself, not the cached card: a card cached before a delete whose invalidation is still on its
            # way would pass, and the lookup's own 404 then went unrecorded.
            patient = Patient.objects.filter(pk=patient_id, is_deleted=False).first() if patient_id else None
            if patient is None:
                raise _NoSuchPatient()
            encounter = None
            if encounter_id is not None:
                encounter = Encounter.objects.filter(pk=encounter_id, patient=patient).first()
                if encounter is None:
                    raise ValidationError({"encounter_id": "This patient has no encounter with this id."})
            observation = services.observation_record(patient=patient, encounter=encounter, **fields)
            self.audit(request, action="create", resource_id=observation.pk, patient_id=patient.pk)
            return observation

        def replay(resource_id: str) -> Observation:
            observation = Observation.objects.filter(pk=int(resource_id)).select_related("patient").first()
            kept = observation is not None and not observation.patient.is_deleted
            return _replayed(self, request, observation, observation.patient_id if kept else None)

        try:
            # A 400 raised once the patient was found (only then can create raise one) is kept, or the two answers
            # would tell an existing patient from a missing one unrecorded; a missing one is audited as such.
            with self.refusal_audited(request, action="create", patient_id=patient_id):
                observation, replayed = idempotent_create(
                    claim, create=create, replay=replay, resource_id=lambda o: o.pk
                )
        except _NoSuchPatient:
            self.audit(request, action="read", resource_type="Patient", resource_id=patient_id, outcome="not_found")
            raise NotFound("No such patient.") from None
        location = reverse("patient-vital-detail", kwargs={"patient_id": patient_id, "observation_id": observation.pk})
        return _created(observation_json(observation), replayed, request.build_absolute_uri(location))


class NotRetractable(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A cancelled reading has no result to retract."
    default_code = "conflict"


class PatientVitalDetailView(PatientPathView):
    """One vital-sign reading: GET reads it (the URL a reading's 201 names in Location, which was a 405), PATCH
    retracts it (status entered-in-error), the only change a reading takes."""

    required_scopes = {"GET": [scopes.CLINICAL_READ], "PATCH": [scopes.CLINICAL_WRITE]}
    resource_type = "Observation"
    parser_classes = [JSONParser]

    def dispatch(self, request, *args, **kwargs):
        # As the patient's id: `/vitals/007/` names no reading.
        if f"/vitals/{kwargs['observation_id']}/" not in request.path_info:
            kwargs["observation_id"] = None
        return super().dispatch(request, *args, **kwargs)

    def refused_resource_id(self, request: Request) -> str:
        return str(self.kwargs.get("observation_id") or "")  # the reading, as its update's record names it

    @extend_schema(
        responses={
            200: s.ObservationOutputSerializer,
            **PHI_ERRORS,
            **error_responses(404, e404="No active patient has this id, or it has no such vital-sign reading."),
        },
        description="One vital-sign reading, whatever its status (a retracted one says entered-in-error).",
        operation_id="patients_vital_retrieve",  # the list's GET is patients_vitals_retrieve
    )
    def get(self, request: Request, patient_id: int | None, observation_id: int | None) -> Response:
        reject_unknown_params(request, [])
        _patient_or_404(self, request, patient_id)
        reading = None
        if observation_id is not None:
            reading = selectors.patient_reading(patient_id=patient_id, observation_id=observation_id)
        if reading is None:
            self.audit(request, action="read", resource_id=observation_id, patient_id=patient_id, outcome="not_found")
            raise NotFound("This patient has no vital-sign reading with this id.")
        self.audit(request, action="read", resource_id=observation_id, patient_id=patient_id)
        return Response(reading)

    @extend_schema(
        request=s.ObservationRetractInputSerializer,
        responses={
            200: s.ObservationOutputSerializer,
            **PHI_ERRORS,
            **error_responses(404, e404="No active patient has this id, or it has no such vital-sign reading."),
            409: OpenApiResponse(ErrorOutputSerializer, description="The reading was cancelled: nothing to retract."),
            **JSON_BODY_ERRORS,
        },
        description="Retract a reading entered in error. Retracting a retracted reading answers it unchanged.",
    )
    def patch(self, request: Request, patient_id: int | None, observation_id: int | None) -> Response:
        reject_unknown_params(request, [])
        validated_body(request, s.ObservationRetractInputSerializer)  # the body first, as the create's
        patient = Patient.objects.filter(pk=patient_id, is_deleted=False).first() if patient_id is not None else None
        if patient is None:
            self.audit(request, action="read", resource_type="Patient", resource_id=patient_id, outcome="not_found")
            raise NotFound("No such patient.")
        retracted = None
        try:
            with transaction.atomic():  # the retraction and its audit record commit together, or neither
                if observation_id is not None:
                    retracted = services.observation_retract(patient=patient, observation_id=observation_id)
                if retracted is not None:
                    self.audit(request, action="update", resource_id=observation_id, patient_id=patient.pk)
        except services.ObservationNotRetractable:  # recorded after the rollback, so the record stays
            self.audit(request, action="update", resource_id=observation_id, patient_id=patient.pk, outcome="error")
            raise NotRetractable() from None
        if retracted is None:
            self.audit(request, action="read", resource_id=observation_id, patient_id=patient.pk, outcome="not_found")
            raise NotFound("This patient has no vital-sign reading with this id.")
        return Response(observation_json(retracted[0]))


class PatientEncountersView(PatientPathView):
    required_scopes = [scopes.CLINICAL_READ]
    refusal_action = "search"  # a list, recorded as a search when served
    resource_type = "Encounter"
    pagination_class = search_bound_pagination("-period_start", "-id", salt="clinical.encounter-list-cursor")

    @extend_schema(
        parameters=[s.EncounterListInputSerializer],
        responses={200: s.EncounterOutputSerializer(many=True), **PATIENT_ERRORS},
    )
    def get(self, request: Request, patient_id: int | None) -> Response:
        query = validated_query(request, s.EncounterListInputSerializer)
        _patient_or_404(self, request, patient_id)
        encounters = selectors.encounter_list(
            patient_id=patient_id, status=query.get("status"), date_from=query.get("since"), date_to=query.get("until")
        )
        return self.audited_page(
            request,
            encounters,
            lambda page: [encounter_json(encounter) for encounter in page],
            patient_id=patient_id,
            cache=("clinical_data", patient_scope(patient_id)),
        )


class PatientMedicationsView(PatientPathView):
    required_scopes = [scopes.CLINICAL_READ]
    refusal_action = "search"  # a list, recorded as a search when served
    resource_type = "MedicationRequest"
    pagination_class = search_bound_pagination("-authored_at", "-id", salt="clinical.medication-list-cursor")

    @extend_schema(
        parameters=[s.MedicationListInputSerializer],
        responses={200: s.MedicationOutputSerializer(many=True), **PATIENT_ERRORS},
    )
    def get(self, request: Request, patient_id: int | None) -> Response:
        query = validated_query(request, s.MedicationListInputSerializer)
        _patient_or_404(self, request, patient_id)
        requests = selectors.medication_request_list(
            patient_id=patient_id, status=query.get("status"), intent=query.get("intent")
        )
        return self.audited_page(
            request,
            requests,
            lambda page: [medication_request_json(request) for request in page],
            patient_id=patient_id,
            cache=("medications", patient_scope(patient_id)),
        )
