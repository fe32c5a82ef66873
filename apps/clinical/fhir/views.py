"""FHIR R4 endpoints (/fhir/...): read, search (GET and POST _search), CapabilityStatement.

Every error is an OperationOutcome; every PHI read and search writes an audit record.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import Count, Max, Model, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.http import http_date, parse_etags, parse_http_date_safe
from django_redis.exceptions import ConnectionInterrupted
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from redis.exceptions import RedisError
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotAcceptable, NotFound, UnsupportedMediaType
from rest_framework.exceptions import ValidationError as BodyError
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.mediatypes import _MediaType
from rest_framework.views import APIView

from apps.accounts import scopes
from apps.audit.views import PhiAPIView
from apps.caching.layers import CodecError
from apps.caching.stack import default_stack, get_or_load, served_from_cache
from apps.clinical import selectors
from apps.clinical.api.representations import patient_json
from apps.clinical.api.schema import FhirBundleSerializer, FhirOperationOutcomeSerializer
from apps.clinical.codes import LOINC, OBSERVATION_CATEGORY, OBSERVATION_CODES, RXNORM
from apps.clinical.fhir import resources
from apps.clinical.fhir.params import (
    DATE_PREFIX_BOUNDS,
    ID_PATTERN,
    MAX_COUNT,
    MAX_ROW_ID,
    SUPPORTED_DATE_PREFIXES,
    FhirParamError,
    Token,
    birthdate_condition,
    date_condition,
    date_filter,
    decode_cursor,
    encode_cursor,
    is_exact_date,
    keyset_after,
    parse_birthdate,
    parse_count,
    parse_date,
    parse_reference,
    parse_token,
    parse_tokens,
    search_binding,
    split_or,
)
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient
from apps.clinical.services import patient_scope, validate_identifier_system, validate_mrn, validate_search_term
from apps.core.api.exceptions import api_exception_handler
from apps.core.api.parsers import JSONParser
from apps.core.compiled import BOUND, CompiledQuery, CompiledShapes
from apps.core.negotiation import UnknownFormat, answers_fhir_version, only_other_fhir_versions
from apps.ratelimits.throttling import client_identity

COMMON_PARAMS = {"_count", "_cursor", "_format", "_search", "_summary"}
LAYOUT_PARAMS = {"_pretty"}  # FHIR's general parameters that change how an answer is laid out, not what it holds
PRETTY_VALUES = ("true", "false")


def _without_layout(params):
    """`params` less `_pretty`, R4's standard result parameter (3.1.1.5.7), taken on every interaction, strict
    handling too: it lays the answer out (see `FhirMixin.get_renderer_context`) and changes nothing found, so
    nothing else reads it. Strict handling refused it (400), so a client that asks for it on every call (many
    FHIR tools do) could not use the server. Given twice, or with a value other than true or false, it is
    refused, as any parameter is."""
    if "_pretty" not in params:
        return params
    values = params.getlist("_pretty")
    if len(values) > 1:
        raise FhirParamError("_pretty", "given more than once")
    if values[0] not in PRETTY_VALUES:
        raise FhirParamError("_pretty", "supported: true, false")
    params = params.copy()
    del params["_pretty"]
    return params


SUMMARIES = ("count", "false")  # the total alone, or whole resources (the default)
JSON_FORMATS = ("json", "application/fhir+json", "application/json")
REPEATABLE_PARAMS = {"date", "birthdate", "_lastUpdated"}  # date=ge...&date=le...: a range
# `_lastUpdated`'s slots: a slot's name up to its first `_` names its field (FhirSearchView.slot_field).
LAST_UPDATED_SLOT = "lastUpdated"
# A range needs two (ge and le); each repeat is one more AND of up to MAX_ALTERNATIVES, and each alternative
# one more condition (and bound value) in the SQL: unbounded, a single request held a core for minutes.
MAX_REPEATS = 4
MAX_SEARCH_ALTERNATIVES = 100  # the comma-separated values of all of a search's parameters together

# Search SQL compiled per (view, shape, sort, cursor); the page size is bound: see FhirSearchView.find.
compiled_searches = CompiledShapes(at_most=512)
POSTED_SEARCH_TTL = 15 * 60
# A count-only Patient search's record names at most this many of the patients its total counts (the lowest
# ids): as many as the largest page of the same search would (selectors.patients_counted).
COUNT_NAMES_AT_MOST = min(MAX_COUNT, selectors.COUNT_NAMES_AT_MOST)


def _store_search(resource_type: str, kept: dict, owner: str) -> str:
    """Keep a posted search's parameters (identifiers among them) sealed, under an opaque key, for the
    client that posted it: the seal's context names that client, so no other one can open it."""
    key = secrets.token_urlsafe(16)
    name = f"fhir:search:{resource_type}:{key}"
    sealed = default_stack().codec.encode(kept, encrypt=True, context=f"{name}:{owner}".encode())
    cache.set(name, sealed, POSTED_SEARCH_TTL)
    return key


def _pretty(view: FhirMixin, request: Request) -> bool:
    """Whether the client asked for `_pretty=true`, in the URL or a posted search's form body or Parameters
    resource (FHIR merges the two). Anything else, a refused value too, is compact: the refusal's
    OperationOutcome says why."""
    values = request.query_params.getlist("_pretty")
    if request.method == "POST" and view.accepted_params is None:  # a search: its body was read already
        values = values + _readable_form(request).getlist("_pretty")
        values = values + getattr(view, "body_parameters", QueryDict()).getlist("_pretty")  # a Parameters body
    return values == ["true"]


def _lenient(request: Request) -> bool:
    """Whether the client asked, in FHIR's `Prefer: handling=lenient` (the value may be quoted, as RFC 7240
    allows), that unknown parameters be ignored rather than refused (strict, this server's default). A header
    that asks for both is strict: ignoring a parameter changes the answer, refusing it does not."""
    handling = set()
    for preference in re.split(r"[,;]", request.headers.get("Prefer", "")):
        name, _, value = preference.partition("=")
        if name.strip().lower() == "handling":
            handling.add(value.strip().strip('"').strip().lower())
    return "lenient" in handling and "strict" not in handling


def _leniently(request: Request, params: QueryDict, known: set[str]) -> tuple[QueryDict, list[str]]:
    """FHIR's `Prefer: handling=lenient`: the parameters the search does not know left out (and said so in the
    Bundle), the rest as given; strict (the default) leaves every one for the search to refuse."""
    if not _lenient(request):
        return params, []
    ignored = sorted(name for name in params if _ignorable(name, known))
    if ignored:
        params = params.copy()
        for name in ignored:
            del params[name]
    return params, ignored


def _checked_params(params, known: set[str], unknown: str, *, modifiable: set[str] | None = None,
                    capped: dict[str, str] | None = None) -> None:  # fmt: skip
    """Refuse (400) what a search or operation does not take, once `_leniently` left out what it may ignore: a name
    not in `known` (`unknown` says so; a known one in `modifiable`, `known` by default, with a modifier is named
    as that modifier), more comma-separated values than allowed over `capped`'s parameters, and a `_format`
    other than JSON (a posted body may carry it too). One check for the searches, `$lastn` and `$everything`."""
    names = sorted(set(params) - known)
    if names:
        base, modified, modifier = names[0].partition(":")
        if modified and base in (known if modifiable is None else modifiable):
            raise FhirParamError(names[0], f"the :{modifier[:64]} modifier is not supported on {base}")
        raise FhirParamError(names[0], unknown)
    if capped is not None:
        _refuse_too_many_values(params, capped)  # each one a condition in the SQL
    if params.get("_format", "json") not in JSON_FORMATS:
        raise FhirParamError("_format", "only JSON is supported")


def _ignorable(name: str, known: set[str]) -> bool:
    """Whether a lenient search may leave out parameter `name`: only one whose base name (before any `:`) this
    resource does not know. A known parameter with a modifier (`code:not`, `_id:not`) is refused even then, as
    FHIR has servers reject unsupported modifiers: dropping `:not` answers the opposite question. So is an
    unknown `_` parameter (`_include`, `_elements`, `_has`): a control or result parameter, whose absence
    changes what the client gets back, not merely how much. A chain on a known reference (`patient.identifier`)
    is refused too: dropping it searched every patient."""
    base = re.split(r"[:.]", name, maxsplit=1)[0]
    return base not in known and not base.startswith("_")


def _readable_form(request: Request) -> QueryDict:
    """A refused POST's form body, or nothing where it cannot be read: the refusal stands either way."""
    if request.method != "POST":
        return QueryDict()
    try:
        return request.data if isinstance(request.data, QueryDict) else QueryDict()
    except Exception:  # noqa: BLE001 - any unreadable body (type, size, encoding) names no patient
        return QueryDict()


def _refuse_malformed(params) -> None:
    """Refuse a parameter given more often than it may be, or with a NUL or empty value (any name)."""
    for name in params:
        values = params.getlist(name)
        if len(values) > 1 and name not in REPEATABLE_PARAMS:
            # Repeats mean AND in FHIR; only a date range needs that here. Keeping the last value
            # would answer a different question than the one asked.
            raise FhirParamError(name, "given more than once; list alternatives in one value, comma-separated")
        if len(values) > MAX_REPEATS:
            raise FhirParamError(name, f"given more than {MAX_REPEATS} times")
        if any("\x00" in value for value in values):  # a form body's; the URL's never get this far
            raise FhirParamError(name, "contains a NUL character")
        # An empty `_cursor` read as no cursor (the first page), a blank token as a code to look for.
        if any(not value.strip() for value in values):
            raise FhirParamError(name, "empty; give a value or leave the parameter out")


def _stored_search(resource_type: str, params, owner: str) -> QueryDict:
    extra = sorted(set(params) - {"_search", "_cursor"})
    if extra:
        raise FhirParamError(extra[0], "the next page of a posted search takes only _search and _cursor")
    name = f"fhir:search:{resource_type}:{params['_search'][:64]}"
    sealed = cache.get(name)
    try:
        stored = default_stack().codec.decode(sealed, f"{name}:{owner}".encode()) if isinstance(sealed, bytes) else None
    except CodecError:  # sealed for another client, or with a key since rotated out
        stored = None
    if stored is None:
        raise FhirParamError("_search", "no such paged search for this client (they expire); post the search again")
    restored = QueryDict(mutable=True)
    for key, values in stored.items():
        restored.setlist(key, values)
    if "_cursor" in params:
        restored["_cursor"] = params["_cursor"]
    return restored


# --- OpenAPI: what each endpoint takes and answers (documentation only) ----------------------------
_OUTCOME_TEXT = {
    400: "An unsupported or malformed search parameter, or a _format other than JSON.",
    401: "No or invalid credentials.",
    403: "The credentials lack this resource's scope.",
    404: "No such resource.",
    410: "The resource was deleted.",
    429: "Rate limited.",
    503: "The audit trail cannot be written, so patient data is not served; retry shortly.",
}


def _outcomes(*statuses: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """Error responses: each an OperationOutcome (`descriptions`, e.g. `e404=`, replace the generic text)."""
    return {
        status: OpenApiResponse(
            FhirOperationOutcomeSerializer, description=descriptions.get(f"e{status}", _OUTCOME_TEXT[status])
        )
        for status in statuses
    }


_FORMAT_PARAM = OpenApiParameter("_format", str, enum=list(JSON_FORMATS), description="JSON only (the default).")
_PRETTY_DOC = "true: the JSON indented by two spaces; false (the default): compact. The content is the same."
_PRETTY_PARAM = OpenApiParameter("_pretty", str, enum=list(PRETTY_VALUES), description=_PRETTY_DOC)
_SUBJECT_DOC = (
    "R4's other name for the patient: Patient/<id> or <id>, as `patient` (another type, e.g. Group/1, is a 400); "
    "with `patient`, the same patient."
)
_COUNT_DOC = f"Entries per page, 1-{MAX_COUNT} (default 50); 0: the total alone, as _summary=count."
_DATE_DOC = (
    f"[prefix]YYYY[-MM[-DD[Thh:mm[:ss][Z|+hh:mm]]]], prefix one of {', '.join(SUPPORTED_DATE_PREFIXES)} (eq: the "
    "whole period the value names; ap: widened by a tenth of its distance from now); comma-separated: any of "
    "them; repeat it for a range (date=ge2024-01-01&date=lt2024-02-01)."
)
_LAST_UPDATED_DOC = (
    "When the resource last changed (its meta.lastUpdated), as `date`: "
    + _DATE_DOC.replace("date=", "_lastUpdated=")
    + " An incremental sync asks _lastUpdated=gt<the instant it last synced>."
)
# A read's conditional headers: the validators its 200 carries (ETag, Last-Modified from meta) answer 304.
_CONDITIONAL_PARAMS = [
    OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER,
                     description='A version\'s ETag (W/"<versionId>"): 304 while it is current.'),
    OpenApiParameter("If-Modified-Since", str, OpenApiParameter.HEADER,
                     description="An HTTP date: 304 unless the resource changed after it."),
]  # fmt: skip
_NOT_MODIFIED = OpenApiResponse(description="Not modified: the version the client holds is current (no body).")


def documented_search(**docs: str):
    """A search view's parameters, form body and answers in the OpenAPI schema, from its `search_params`
    (`docs` describes each one; they must match, so the schema cannot drift from what the view accepts)."""

    def decorate(view: type[FhirSearchView]) -> type[FhirSearchView]:
        if set(docs) != set(view.search_params):  # checked at import, also under python -O
            raise ImproperlyConfigured(f"{view.__name__}: document exactly its search_params")
        name = view.resource_type

        parameters = [
            OpenApiParameter(param, str, description=docs[param], many=True, explode=True)
            if param in REPEATABLE_PARAMS
            else OpenApiParameter(
                param, str, description=docs[param], enum=["date", "-date"] if param == "_sort" else None
            )
            for param in view.search_params
        ]
        parameters += [
            OpenApiParameter("_count", {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}, description=_COUNT_DOC),
            OpenApiParameter("_summary", str, enum=list(SUMMARIES), description="count: Bundle.total alone."),
            OpenApiParameter("_cursor", str, description="From the Bundle's next link."),
            OpenApiParameter(
                "_search", str, description="From a posted search's next link: its parameters, kept on the server "
                "for this client (15 minutes); only _cursor may go with it.",
            ),
            _FORMAT_PARAM,
            _PRETTY_PARAM,
        ]  # fmt: skip
        # The form body takes the same parameters (label: DRF would title `_count` " count").
        optional = {"required": False}
        form_fields = {
            param: serializers.ListField(child=serializers.CharField(), label=param, help_text=docs[param], **optional)
            if param in REPEATABLE_PARAMS
            else serializers.CharField(label=param, help_text=docs[param], **optional)
            for param in view.search_params
        }
        form_fields["_count"] = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, label="_count",
                                                         help_text=_COUNT_DOC, **optional)  # fmt: skip
        form_fields["_summary"] = serializers.ChoiceField(SUMMARIES, label="_summary", help_text="count: Bundle.total "
                                                          "alone.", **optional)  # fmt: skip
        form_fields["_format"] = serializers.CharField(label="_format", help_text=f"One of {', '.join(JSON_FORMATS)}.",
                                                       **optional)  # fmt: skip
        form_fields["_pretty"] = serializers.ChoiceField(PRETTY_VALUES, label="_pretty", help_text=_PRETTY_DOC,
                                                         **optional)  # fmt: skip
        bundle = OpenApiResponse(
            FhirBundleSerializer, description=f"A searchset Bundle of {name} resources, keyset-paged: follow `next`."
        )
        errors = _outcomes(400, 401, 403, 429, 503)
        return extend_schema_view(
            get=extend_schema(operation_id=f"fhir_{name}_search", parameters=parameters,
                              responses={200: bundle, **errors}),
            post=extend_schema(
                operation_id=f"fhir_{name}_search_post",
                description="The same search with its parameters in a form body, kept out of URLs and logs: the "
                "Bundle's self link is the bare type URL and its next link names the search by an opaque `_search`.",
                request=inline_serializer(f"Fhir{name}SearchForm", form_fields),
                responses={200: bundle, **errors},
            ),
        )(view)  # fmt: skip

    return decorate


# The FHIR versions (major.minor) the endpoints write: an Accept range naming another `fhirVersion` is a 406.
FHIR_VERSIONS = (resources.FHIR_VERSION.rpartition(".")[0],)


class FhirJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"
    charset = "utf-8"
    fhir_versions = FHIR_VERSIONS  # apps.core.negotiation: another fhirVersion matches no renderer


class FhirPlainJSONRenderer(JSONRenderer):
    """`application/json`, the same R4 resources: a range of it naming another fhirVersion matches neither."""

    fhir_versions = FHIR_VERSIONS


def fhir_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, FhirParamError):
        # A name is echoed up to 64 characters (a form's or a body's: a 1 MB one was echoed whole).
        return Response(resources.operation_outcome(400, exc.message, exc.parameter[:64]), status=400)
    response = api_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data if isinstance(response.data, dict) else {"detail": str(response.data)}
    diagnostics = str(data.get("detail", "Request failed."))
    if data.get("errors"):
        diagnostics += " " + "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in _flat(data["errors"]))
    response.data = resources.operation_outcome(response.status_code, diagnostics)
    return response


def _flat(errors: object) -> list[tuple[str, list]]:
    if isinstance(errors, dict):
        return [(field, msgs if isinstance(msgs, list) else [msgs]) for field, msgs in errors.items()]
    return [("request", errors if isinstance(errors, list) else [errors])]


class FhirJSONParser(JSONParser):
    """A FHIR JSON body (`application/fhir+json`): an operation's Parameters resource (`Patient/5/$everything`)."""

    media_type = "application/fhir+json"

    def parse(self, stream, media_type=None, parser_context=None):
        """A name given twice in one object is a 400 naming its FHIRPath (`Parameters.parameter[1].valueCode`):
        the API's nested field errors came out as Python reprs in the OperationOutcome's diagnostics."""
        try:
            return super().parse(stream, media_type, parser_context)
        except BodyError as exc:
            path, error = "Parameters", exc.detail
            while error and not (isinstance(error, list) and isinstance(error[0], str)):
                if isinstance(error, dict):  # one name a level, as the parser places the duplicate
                    name, error = next(iter(error.items()))
                    path += f".{name[:64]}"
                elif isinstance(error, list):  # [{}, {}, {"valueCode": [...]}]: the last item is the one
                    path, error = f"{path}[{len(error) - 1}]", error[-1]
                else:
                    break
            message = f"{path}: given more than once in this JSON object; send each field once."
            raise FhirParamError(path, message) from None


class FhirMixin:
    renderer_classes = [FhirJSONRenderer, FhirPlainJSONRenderer]
    parser_classes = [FormParser]
    metadata_class = None  # OPTIONS: 405 as an OperationOutcome, not DRF's description of the view
    # What the view's URL may carry besides _format: name -> the values it takes. None where the view
    # checks its parameters itself (searches). Anything else is refused, never ignored.
    accepted_params: dict[str, tuple[str, ...]] | None = {}

    def get_exception_handler(self) -> Callable:
        return fhir_exception_handler

    @property
    def allowed_methods(self) -> list[str]:
        """The methods the `Allow` header names. Not OPTIONS without a metadata class: it answers 405 itself."""
        methods = super().allowed_methods
        return methods if self.metadata_class is not None else [method for method in methods if method != "OPTIONS"]

    def get_renderer_context(self) -> dict:
        """`_pretty=true`: the JSON indented by two spaces, on every answer (an OperationOutcome too); compact
        otherwise. Only the rendering differs: the data, cached or not, and the ETag and Last-Modified, taken from
        the resource's update time, are the same for both layouts."""
        context = super().get_renderer_context()
        if _pretty(self, self.request):
            context["indent"] = 2
        return context

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        """FHIR's `_format` overrides the Accept header: a browser asks for text/html, and `?_format=json` is how
        its user reads the JSON. A `_format` that is not JSON (or given twice) is refused in `initial`."""
        formats = request.query_params.getlist("_format")
        accepts = self.get_content_negotiator()._get_parsed_accept_list(request)
        other_version = NotAcceptable(
            f"This server answers FHIR {resources.FHIR_VERSION} (fhirVersion={FHIR_VERSIONS[0]})."
        )
        if len(formats) == 1 and formats[0] in JSON_FORMATS:
            renderer = FhirPlainJSONRenderer() if formats[0] == "application/json" else FhirJSONRenderer()
            if not force and only_other_fhir_versions(accepts, renderer):  # `_format` picks the type, not the version
                raise other_version
            return renderer, renderer.media_type
        try:
            return super().perform_content_negotiation(request, force)
        except NotAcceptable:
            if only_other_fhir_versions(accepts, FhirJSONRenderer()):  # say why, not only "Could not satisfy"
                raise other_version from None
            raise
        except UnknownFormat:  # DRF's `format` naming no renderer (`metadata?format=xml`), or given twice:
            self.unknown_format = True  # refused in `initial`
            return super().perform_content_negotiation(request, force=True)

    def format_refusal(self) -> Exception:
        """DRF's `format` naming a renderer there is none of (PhiAPIView refuses it, with an audit record)."""
        if len(self.request.query_params.getlist("format")) > 1:
            return FhirParamError("format", "given more than once; this server answers JSON (_format=json)")
        return FhirParamError("format", "not a format this server answers: it answers JSON (_format=json)")

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if getattr(self, "unknown_format", False):
            raise self.format_refusal()
        if len(request.query_params.getlist("_format")) > 1:
            raise FhirParamError("_format", "given more than once")
        if request.query_params.get("_format", "json") not in JSON_FORMATS:  # every FHIR path: read, metadata
            raise FhirParamError("_format", "only JSON is supported")
        accepted = _without_layout(request.query_params) if self.accepted_params is not None else QueryDict()
        for name, values in sorted(accepted.lists()):
            if name == "_format":
                continue
            if name not in self.accepted_params:
                supported = ", ".join(["_format", *self.accepted_params])
                raise FhirParamError(name, f"unknown parameter; supported: {supported}")
            if len(values) > 1 or values[0] not in self.accepted_params[name]:
                raise FhirParamError(name, f"supported: {', '.join(self.accepted_params[name])}")

    def base_url(self, request: Request) -> str:
        return request.build_absolute_uri("/fhir/")


class Gone(APIException):
    """FHIR's answer to a read of a resource the server knows was deleted: 410, not 404."""

    status_code = 410
    default_detail = "The resource was deleted."
    default_code = "gone"


class CapabilityStatementView(FhirMixin, APIView):
    """`GET /fhir/metadata`: what this server supports. Public, as FHIR clients expect."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    accepted_params = {"mode": ("full",)}  # the whole statement is all this server has

    @extend_schema(
        operation_id="fhir_capabilities",
        parameters=[
            _FORMAT_PARAM,
            _PRETTY_PARAM,
            OpenApiParameter("mode", str, enum=["full"], description="Only the full statement."),
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="A FHIR R4 CapabilityStatement."),
            **_outcomes(400, e400="A _format other than JSON."),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "date": timezone.now().date().isoformat(),
                "kind": "instance",
                "software": {"name": "Medical AI performance control plane"},
                "implementation": {"description": "Clinical data plane", "url": self.base_url(request)},
                "fhirVersion": resources.FHIR_VERSION,
                "format": ["application/fhir+json", "json"],
                "rest": [
                    {
                        "mode": "server",
                        "security": {
                            "description": "Bearer token with scopes patient:read and clinical:read",
                            "service": [{"text": "Bearer"}],
                        },
                        "resource": [
                            _capability(
                                resource_type,
                                view.search_params,
                                versioned=True,  # meta, ETag and conditional reads on every type
                                operations=_operations(resource_type),
                            )
                            for resource_type, view in SEARCH_VIEWS.items()
                        ],
                    }
                ],
            }
        )


def _operations(resource_type: str) -> dict:
    """A type's operations, on the type (`$lastn`) and on one of its resources (`$everything`)."""
    return OPERATIONS.get(resource_type, {}) | INSTANCE_OPERATIONS.get(resource_type, {})


def _capability(resource_type: str, params: dict[str, str], versioned: bool, operations: dict) -> dict:
    interactions = [{"code": "search-type"}, {"code": "read"}]  # every type is read by id (fullUrl resolves)
    capability = {"type": resource_type, "interaction": interactions}
    if versioned:  # meta.versionId, ETag and Last-Modified; If-None-Match and If-Modified-Since answer 304
        capability.update(versioning="versioned", readHistory=False, conditionalRead="full-support")
    capability["searchParam"] = [{"name": name, "type": kind} for name, kind in params.items()]
    if operations:
        capability["operation"] = [{"name": name, "definition": view.definition} for name, view in operations.items()]
    return capability


class PatientReadView(FhirMixin, PhiAPIView):
    required_scopes = [scopes.PATIENT_READ]
    resource_type = "Patient"

    def refused_resource_id(self, request: Request) -> str:
        patient_id = str(self.kwargs.get("patient_id") or "")  # as its read's record: `007` names no resource
        return patient_id if re.fullmatch(ID_PATTERN, patient_id) else ""

    def refusal_worth_keeping(self, request: Request) -> bool:
        return True  # `Patient/<id>` names a patient however spelt; `007` or `abc` is recorded naming no one

    @extend_schema(
        operation_id="fhir_Patient_read",
        description="A FHIR R4 Patient by its id. Scope `patient:read`; every read is audited, an unknown or "
        "deleted patient's too.",
        parameters=[
            _FORMAT_PARAM,
            _PRETTY_PARAM,
            *_CONDITIONAL_PARAMS,
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="A FHIR R4 Patient, with meta.versionId and "
                                 'meta.lastUpdated; ETag W/"<versionId>" and Last-Modified say the same.'),
            304: _NOT_MODIFIED,
            **_outcomes(400, 401, 403, 404, 410, 429, 503, e400="A _format other than JSON.",
                        e404="No patient has this id.", e410="The patient was deleted."),
        },
    )  # fmt: skip
    def get(self, request: Request, patient_id: str) -> Response:
        if not re.fullmatch(ID_PATTERN, patient_id):  # Patient/007 is not Patient/7
            # Asked all the same, as an unknown id is: recorded, naming no resource (as its refusal's record does).
            self.audit(request, action="read", resource_id="", outcome="not_found")
            raise NotFound(f"Patient/{patient_id[:64]} does not exist.")
        card, deleted = selectors.patient_card_or_deleted(patient_id=int(patient_id))  # through the patient_data cache
        if card is None:
            self.audit(request, action="read", resource_id=patient_id, outcome="not_found")
            if deleted:
                raise Gone(f"Patient/{patient_id} was deleted.")
            raise NotFound(f"Patient/{patient_id} does not exist.")
        self.audit(request, action="read", resource_id=card["id"], patient_id=card["id"],
                   served_from_cache=served_from_cache())  # fmt: skip
        return _versioned(request, resources.patient_resource(card), resources.last_updated(card))


def _versioned(request: Request, resource: dict, updated: datetime | None) -> Response:
    """A read's answer with its validators, ETag W/"<versionId>" and Last-Modified, from the row's update time
    (the resource's meta), or 304 where the client's copy is current: it was told so, which is a read like any
    other (the caller audited it). Without an update time (a card cached before it had one), no validators."""
    if updated is None:
        return Response(resource)
    headers = {"ETag": f'W/"{resources.version_id(updated)}"', "Last-Modified": http_date(updated.timestamp())}
    if _not_modified(request, headers["ETag"], updated):
        return Response(status=304, headers=headers)
    return Response(resource, headers=headers)


class ClinicalReadView(FhirMixin, PhiAPIView):
    """`Observation/<id>`, `Encounter/<id>`, `MedicationRequest/<id>`: what a search's fullUrl and an
    Observation's encounter reference name (they were 404s). Scope `clinical:read`, as the searches; every read
    audited naming the row's patient, an unknown id's too (naming none); a deleted patient's rows are 410, as
    the patient's read is, and a search answers none of them."""

    required_scopes = [scopes.CLINICAL_READ]
    model: type[Model]

    def refused_resource_id(self, request: Request) -> str:
        resource_id = str(self.kwargs.get("resource_id") or "")
        return resource_id if re.fullmatch(ID_PATTERN, resource_id) else ""

    def refusal_worth_keeping(self, request: Request) -> bool:
        return True  # an id however spelt asks about someone's record, as `Patient/<id>` does

    def get(self, request: Request, resource_id: str) -> Response:
        name = f"{self.resource_type}/{resource_id[:64]}"
        if not re.fullmatch(ID_PATTERN, resource_id):  # Observation/007 is not Observation/7
            self.audit(request, action="read", resource_id="", outcome="not_found")
            raise NotFound(f"{name} does not exist.")
        row, deleted_patient_id = selectors.clinical_row(self.model, int(resource_id))
        if row is None:
            self.audit(request, action="read", resource_id=resource_id, patient_id=deleted_patient_id,
                       outcome="not_found")  # fmt: skip
            if deleted_patient_id is not None:
                raise Gone(f"{name} was deleted with its patient.")
            raise NotFound(f"{name} does not exist.")
        self.audit(request, action="read", resource_id=resource_id, patient_id=row.patient_id)
        [resource] = SEARCH_VIEWS[self.resource_type]().resources([row])  # as its search serves it
        return _versioned(request, resource, row.updated_at)  # meta, ETag and Last-Modified, as a Patient's


def _read_view(resource_type: str, model: type[Model]) -> type[ClinicalReadView]:
    view = type(f"{resource_type}ReadView", (ClinicalReadView,), {"resource_type": resource_type, "model": model})
    # On its `get` (extend_schema_view), as PatientReadView's: an operation id set on a view class is an error.
    return extend_schema_view(get=extend_schema(
        operation_id=f"fhir_{resource_type}_read",
        description=f"A FHIR R4 {resource_type} by its id (a search's fullUrl). Scope `clinical:read`; every read "
        "is audited, an unknown one's too.",
        parameters=[_FORMAT_PARAM, _PRETTY_PARAM, *_CONDITIONAL_PARAMS],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description=f"A FHIR R4 {resource_type}, with meta.versionId "
                                 'and meta.lastUpdated; ETag W/"<versionId>" and Last-Modified say the same.'),
            304: _NOT_MODIFIED,
            **_outcomes(400, 401, 403, 404, 410, 429, 503, e400="A _format other than JSON.",
                        e404=f"No {resource_type} has this id.", e410="Its patient was deleted."),
        },
    ))(view)  # fmt: skip


def with_slash(view: type[APIView]) -> type[APIView]:
    """The view of `<type>/<id>/`: the same read and record as `<type>/<id>`, which alone the schema lists."""
    return extend_schema(exclude=True)(type(f"{view.__name__}WithSlash", (view,), {}))


def _not_modified(request: Request, etag: str, updated: datetime) -> bool:
    """A conditional read (RFC 9110): If-None-Match, by weak comparison, or else If-Modified-Since, which has
    whole seconds. A date later than the server's clock is ignored, as RFC 9110 (13.1.3) has it: it is no time
    the client saw the resource at (a skewed or made-up clock), and answering 304 to it kept the client on a
    copy it never checked against any version, whatever changed before that date came round."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = parse_etags(if_none_match)
        return "*" in tags or etag.removeprefix("W/") in {tag.removeprefix("W/") for tag in tags}
    since = parse_http_date_safe(request.headers.get("If-Modified-Since") or "")
    if since is None or since > timezone.now().timestamp():
        return False
    return int(updated.timestamp()) <= since


class FhirSearchView(FhirMixin, PhiAPIView):
    """GET [type]?params and POST [type]/_search (form body): a searchset Bundle, keyset-paged."""

    search_params: dict[str, str] = {}
    accepted_params = None  # `search` checks them, with the body's
    ordering: list[str] = []
    default_count = 50
    to_resource: Callable = staticmethod(lambda row: {})
    model: type[Model]
    slot_fields: dict[str, str] = {}  # a parsed search's slot (or what its name starts with) -> model field
    refusal_action = "search"  # a refused POST _search too

    def get(self, request: Request) -> Response:
        return self.search(request, request.query_params)

    def post(self, request: Request) -> Response:
        params = request.query_params.copy()  # the URL's and the body's parameters together, as FHIR says
        for key in request.data:
            for value in request.data.getlist(key):
                params.appendlist(key, value)
        return self.search(request, params, posted=True)

    def filter(self, params) -> tuple[QuerySet, int | None, dict]:
        raise NotImplementedError

    def refused_patients(self, request: Request) -> list[int]:
        """The patients a refused search names (`patient` or `subject`, each one that parses, or `_id` of a
        Patient search, an OR list of them too): here they are parameters, of the URL or a POST _search's body,
        not the path. `subject=Patient/5` names patient 5 as `patient=5` does; `subject=Group/1` names none."""
        params = request.query_params.copy()
        for key, values in _readable_form(request).lists():
            params.setlist(key, params.getlist(key) + values)
        try:
            if "_search" in params:
                params = _stored_search(self.resource_type, params, client_identity(request))
        except (FhirParamError, ConnectionInterrupted, RedisError):  # a posted search's, with Redis away: named none
            return []
        named: set[int] = set()
        for name in ("_id",) if self.resource_type == "Patient" else ("patient", "subject"):
            if len(params.getlist(name)) != 1:
                continue
            try:
                named.update(parse_reference(name, part, "Patient") for part in split_or(name, params[name]))
            except FhirParamError:
                continue
        return sorted(named)

    def refusal_worth_keeping(self, request: Request) -> bool:
        """Every refused search is kept, naming no patient or several: a client probing another client's posted
        `_search` key, or a parameter on a patient it names, would otherwise leave no trace."""
        return True

    # A body that cannot be read (a 415 on `_search?patient=5` with a JSON body) is a refused search too: recorded,
    # naming the patients of the URL (`refused_patients` reads no unreadable body), as `date=bad` there was.
    unreadable_body = ()

    def search(self, request: Request, params, posted: bool = False) -> Response:
        # A lenient search honours `_pretty` and the common parameters, ignoring only what it does not know.
        params, ignored = _leniently(request, params, set(self.search_params) | COMMON_PARAMS | LAYOUT_PARAMS)
        params = _without_layout(params)
        _refuse_malformed(params)
        if "_search" in params:  # the next page of a posted search: its parameters stayed on the server
            params = _stored_search(self.resource_type, params, client_identity(request))
            posted = True
        _checked_params(
            params,
            set(self.search_params) | COMMON_PARAMS,
            f"unknown search parameter; supported: {', '.join(self.search_params)}",
            capped=self.search_params,
        )
        summary = params.get("_summary", "false")
        if summary not in SUMMARIES:
            raise FhirParamError("_summary", f"supported: {', '.join(SUMMARIES)}")
        if summary == "count" or re.fullmatch(r"0+", params.get("_count", "")):
            return self.total(request, params, posted, ignored)
        count = parse_count(params.get("_count"), self.default_count)
        page, ordering, patient_id, digest_query = self.find(params, limit=count + 1)
        has_more = len(page) > count
        page = page[:count]
        # Each patient of a Patient page was disclosed (one: an identifier search read exactly this patient).
        patient_ids = [row.pk for row in page] if patient_id is None and self.resource_type == "Patient" else None
        self.audit(request, action="search", patient_id=patient_id, patient_ids=patient_ids, result_count=len(page),
                   query=digest_query or None)  # fmt: skip
        base = self.base_url(request)
        # A posted search keeps its parameters out of URLs: self is the bare type URL, and next pages
        # refer to the parameters by an opaque key kept on the server for a while.
        self_url = self.self_url(request, params, posted, ignored)
        next_url = None
        if has_more and page:
            # Bound to this search: used on another, it is refused rather than paging that one from here.
            cursor = encode_cursor(
                [getattr(page[-1], field.lstrip("-")) for field in ordering], search_binding(self.resource_type, params)
            )
            next_url = self.next_url(request, params, posted, cursor)
        outcome = resources.ignored_parameters_outcome(ignored) if ignored else None
        entries = self.resources(page)
        return Response(resources.searchset(entries, base, self_url, next_url, outcome=outcome))

    def resources(self, page: list) -> list[dict]:
        """A page's rows as FHIR resources."""
        return [self.to_resource(row) for row in page]

    def self_url(self, request: Request, params, posted: bool, ignored: list[str], url: str | None = None) -> str:
        """The search's own URL: the bare type URL for a posted search (its parameters stay out of URLs) and for
        one by identifier (the server puts no MRN in a URL, as its next link does not), the parameters it used
        where a lenient search ignored some (FHIR has the self link say what was searched), else the URL as
        the client sent it. `url` stands for the type URL where an operation answers (`Observation/$lastn`)."""
        type_url = url or f"{self.base_url(request)}{self.resource_type}"
        if posted or "identifier" in params:
            return type_url
        if ignored:
            return f"{type_url}?{urlencode(list(params.lists()), doseq=True)}" if params else type_url
        return request.build_absolute_uri()

    def next_url(self, request: Request, params, posted: bool, cursor: str, url: str | None = None,
                 stored_as: str | None = None) -> str:  # fmt: skip
        """The next page's URL: `url` (the type URL by default) with the parameters less the cursor, and `cursor`.
        An MRN is never put in a URL by the server: a posted search's parameters, and a GET search's by identifier
        (one MRN in several systems), are kept on the server for a while (as `stored_as`, the resource type by
        default) and referred to by an opaque `_search` key."""
        kept = {k: params.getlist(k) for k in params if k not in ("_cursor", "_search")}
        if posted or "identifier" in kept:
            kept = {"_search": [_store_search(stored_as or self.resource_type, kept, client_identity(request))]}
        url = url or f"{self.base_url(request)}{self.resource_type}"
        return f"{url}?{urlencode({**kept, '_cursor': cursor}, doseq=True)}"

    def total(self, request: Request, params, posted: bool, ignored: list[str] = ()) -> Response:
        """`_summary=count` or `_count=0`: how many resources match, in Bundle.total, with no entries and no
        next link, as FHIR defines both. A total is a disclosure too ("is Jane Doe, born 1970-01-01, a patient
        here?"): its record keeps the total as `result_count` and names the patients it was about, as the
        same search's pages would (`counted`)."""
        parsed = self.parsed(params)
        if parsed is None:
            rows, patient_id, digest_query = self.filter(params)
        else:
            values, shape, patient_id, digest_query = parsed
            rows = type(self).rows_for(shape, **values)
        self.ordering_for(params)  # an unsupported _sort is refused here too, and so is a malformed _count
        if not re.fullmatch(r"0+", params.get("_count", "0")):
            parse_count(params["_count"], self.default_count)
        if "_cursor" in params:  # a total has no pages, so no next link ever carries a cursor to one
            raise FhirParamError("_cursor", "not a cursor this server issued: a count-only search has no pages")
        if patient_id is not None and not self.patient_is_active(patient_id):
            rows = rows.none()
        total, patient_ids = self.counted(rows) if patient_id is None else (rows.count(), None)
        self.audit(request, action="search", patient_id=patient_id, patient_ids=patient_ids, result_count=total,
                   query=digest_query or None)  # fmt: skip
        outcome = resources.ignored_parameters_outcome(list(ignored)) if ignored else None
        self_url = self.self_url(request, params, posted, list(ignored))
        bundle = resources.searchset([], self.base_url(request), self_url, None, outcome=outcome)
        return Response({**bundle, "total": total})

    def counted(self, rows: QuerySet) -> tuple[int, list[int] | None]:
        """A count-only search's total and the patients it disclosed, where no one patient scopes it: none
        here (a search by patient names that one); a Patient search names its matches."""
        return rows.count(), None

    def find(self, params, *, limit: int) -> tuple[list, list[str], int | None, dict]:
        """The first `limit` matching rows after the cursor, the ordering, the patient and the query to digest.

        A search whose shape `parsed` describes runs through SQL compiled once per shape (which filters,
        how many values each, sort, cursor; the page size is a bound value), so the ORM does not write the
        same statement on every request; past the table's bound, the ORM as it is.
        """
        parsed = self.parsed(params)
        if parsed is None:
            rows, patient_id, digest_query = self.filter(params)
            ordering = self.ordering_for(params)
            rows = _page_order(rows, ordering, self.cursor_after(params, ordering))
            return list(rows[:limit]), ordering, patient_id, digest_query
        values, shape, patient_id, digest_query = parsed
        ordering = self.ordering_for(params)
        after = self.cursor_after(params, ordering)
        if patient_id is not None and not self.patient_is_active(patient_id):
            return [], ordering, patient_id, digest_query
        values.update((f"after_{i}", value) for i, value in enumerate(after or []))
        key = (type(self), shape, tuple(ordering), after is not None)

        def compile_shape() -> CompiledQuery:
            # The class's method, not this view's: the table outlives the request.
            build = functools.partial(type(self).compiled_rows, key)
            slots = {slot: self.slot_field(slot, ordering) for slot in values}
            return CompiledQuery(self.model, build, slots, limit=BOUND)

        query = compiled_searches.get(key, compile_shape)
        if query is None:
            return list(self.compiled_rows(key, **values)[:limit]), ordering, patient_id, digest_query
        return query.rows(limit=limit, **values), ordering, patient_id, digest_query

    def parsed(self, params) -> tuple[dict[str, object], tuple, int | None, dict] | None:
        """The search's validated values by slot, its shape (what its SQL depends on besides them), the
        patient and the query to digest; None for a search the ORM runs as it is (`filter`)."""
        return None

    @classmethod
    def rows_for(cls, shape: tuple, **values) -> QuerySet:
        """The filters of a parsed search, on real values or on the markers of its compilation."""
        raise NotImplementedError

    @classmethod
    def compiled_rows(cls, key: tuple, **values) -> QuerySet:
        _, shape, ordering, after = key
        cursor = [values[f"after_{i}"] for i in range(len(ordering))] if after else None
        return _page_order(cls.rows_for(shape, **values), list(ordering), cursor)

    def slot_field(self, slot: str, ordering: list[str]) -> str:
        """The model field a slot's values are compared with: a cursor's, or the one its name starts with."""
        name, _, index = slot.partition("_")
        if name == "after":
            return ordering[int(index)].lstrip("-")
        return self.slot_fields.get(slot) or self.slot_fields[name]

    def cursor_after(self, params, ordering: list[str]) -> list | None:
        """The ordering values a `_cursor` carries, typed; a tampered cursor, or one of another search, is a 400,
        never a 500 or a page of the wrong rows."""
        if not params.get("_cursor"):
            return None
        model = self.model
        values = decode_cursor(params["_cursor"], len(ordering), search_binding(self.resource_type, params))
        try:
            values = [
                model._meta.get_field(field.lstrip("-")).to_python(value)
                for field, value in zip(ordering, values, strict=True)
            ]
        except (ValidationError, ValueError, TypeError) as exc:
            raise FhirParamError("_cursor", "not a cursor this server issued") from exc
        # The server's cursors carry aware instants; a naive one would be read in the server's zone. Its ids
        # are a bigint's, from 1: past them PostgreSQL refuses the comparison (a 500), or the page is a guess.
        if (
            None in values
            or any(isinstance(value, datetime) and timezone.is_naive(value) for value in values)
            or any(isinstance(value, int) and not 1 <= value <= MAX_ROW_ID for value in values)
        ):
            raise FhirParamError("_cursor", "not a cursor this server issued")
        return values

    def ordering_for(self, params) -> list[str]:
        return self.ordering

    @staticmethod
    def patient_is_active(patient_id: int) -> bool:
        """A search by patient finds nothing for a soft-deleted (or unknown) one, as the REST lists answer 404
        for it: the records outlive the patient's deletion, but no read serves them. Checked through the
        cached card, which a deletion invalidates; after every parameter is parsed, so a 400 reads nothing."""
        return selectors.patient_card(patient_id=patient_id) is not None

    @staticmethod
    def required_patient(params) -> int:
        """The one patient a search is about: `patient`, or R4's `subject` (`Patient/<id>` or `<id>`), the same
        patient either way, so its cache keys and records are too. Another type (`subject=Group/1`) is refused, not
        answered with an empty Bundle: it names no patient, and "none" would read as "the group's members have
        none". Both given must name the same one: keeping either would answer a question the client did not ask."""
        named: dict[str, int] = {}
        for name in ("patient", "subject"):
            if name in params:
                if len(split_or(name, params[name])) > 1:
                    raise FhirParamError(name, "one patient per search: search each patient on its own")
                named[name] = parse_reference(name, params[name], "Patient")
        if not named:
            raise FhirParamError("patient", "this server requires `patient` (or `subject`) on this search")
        if len(set(named.values())) > 1:
            raise FhirParamError("subject", "names another patient than `patient`: give one of them, or the same")
        return next(iter(named.values()))


@documented_search(
    identifier="The MRN: [system|]value (without a system, any; `|value`: the server's own MRN system).",
    name="A prefix of the family or given name (1-100 characters); comma-separated: any of them (`\\,`: a comma).",
    family="A prefix of the family name (1-100 characters); comma-separated: any of them.",
    given="A prefix of the given name (1-100 characters); comma-separated: any of them.",
    birthdate="[prefix]YYYY[-MM[-DD]] (no time), prefix one of eq, ne, gt, ge, lt, le, sa, eb, ap: the period the "
    "value names (1970 is the year); comma-separated: any of them; repeat it for a range.",
    _id="The patient's id (or Patient/<id>); comma-separated: any of them.",
    _lastUpdated=_LAST_UPDATED_DOC,
)
class PatientSearchView(FhirSearchView):
    required_scopes = [scopes.PATIENT_READ]
    resource_type = "Patient"
    search_params = {"identifier": "token", "name": "string", "family": "string", "given": "string",
                     "birthdate": "date", "_id": "token", "_lastUpdated": "date"}  # fmt: skip
    ordering = ["id"]  # the cursor then carries no name
    to_resource = staticmethod(lambda patient: resources.patient_resource(patient_json(patient)))

    model = Patient
    slot_fields = {"mrn": "mrn", "system": "identifier_system", "id": "id", "birthdate": "birth_date",
                   LAST_UPDATED_SLOT: "updated_at"}  # fmt: skip

    _NAMES = ("name", "family", "given")
    # Slot (or what the slots of an OR list start with) -> lookup.
    _SLOT_FILTERS = {"id": "pk", "mrn": "mrn", "system": "identifier_system", "birthdate": "birth_date"}

    def parsed(self, params) -> tuple[dict[str, object], tuple, None, dict] | None:
        if any(name in params for name in self._NAMES):
            return None  # prefix matches: LIKE patterns, which the ORM builds around each value
        if not self._exact_birthdates(params):
            return None  # ranges (prefixes, partial dates, repeats): conditions the ORM builds per value
        values, digest = self._slots(params)
        updated = _last_updated_slots(params, values)
        return values, (tuple(sorted(values)), updated), None, digest

    @classmethod
    def rows_for(cls, shape: tuple, **values) -> QuerySet[Patient]:
        return _last_updated(cls._matching(selectors.patient_search(), values), shape[1], values)

    def counted(self, rows: QuerySet[Patient]) -> tuple[int, list[int] | None]:
        """The total and the matching patients' ids, the first COUNT_NAMES_AT_MOST by id."""
        return selectors.patients_counted(rows, at_most=COUNT_NAMES_AT_MOST)

    def filter(self, params) -> tuple[QuerySet, int | None, dict]:
        names = {}
        for name in self._NAMES:
            if name in params:
                names[name] = split_or(name, params[name])  # name=smith,jones: either
                if not all(len(term) <= 100 for term in names[name]):
                    raise FhirParamError(name, "expected 1-100 characters")
                for term in names[name]:
                    try:
                        validate_search_term(name, term)
                    except ValidationError as exc:
                        raise FhirParamError(name, exc.message_dict[name][0]) from exc
        values, digest = self._slots(params)
        updated = _last_updated_slots(params, values)
        rows = _last_updated(self._matching(selectors.patient_search(**names), values), updated, values)
        if not self._exact_birthdates(params):  # each birthdate= an OR of its values, repeats AND (a range)
            for raw in params.getlist("birthdate"):
                either = Q()
                for part in split_or("birthdate", raw):
                    either |= birthdate_condition(part)
                rows = rows.filter(either)
        return rows, None, digest

    @staticmethod
    def _exact_birthdates(params) -> bool:
        """Whether `birthdate` is absent or one list of whole days without a prefix but eq (compiled as IN)."""
        raws = params.getlist("birthdate")
        return not raws or (len(raws) == 1 and all(is_exact_date(part) for part in split_or("birthdate", raws[0])))

    def _slots(self, params) -> tuple[dict[str, object], dict]:
        """The search's values other than names, by slot, and what its audit record digests."""
        values: dict[str, object] = {}
        if self._exact_birthdates(params) and "birthdate" in params:  # an OR list: birthdate=1970-05-04,1980-01-02
            values.update(
                (f"birthdate_{i}", parse_birthdate(part))
                for i, part in enumerate(split_or("birthdate", params["birthdate"]))
            )
        if "_id" in params:
            values.update(
                (f"id_{i}", parse_reference("_id", part, "Patient"))
                for i, part in enumerate(split_or("_id", params["_id"]))
            )
        digest = {}
        if "identifier" in params:
            token = self._identifier(params["identifier"])
            values["mrn"] = token.code
            if token.system is not None:
                # The stored spelling (scheme and host lower case, no trailing slash), as every lookup by MRN.
                spellings = selectors.identifier_system_spellings(value=token.code, system=token.system)
                values.update((f"system_{i}", spelling) for i, spelling in enumerate(spellings))
            digest = {"identifier": params["identifier"]}
        searched = {k: params.getlist(k) if len(params.getlist(k)) > 1 else params[k] for k in params}
        return values, digest or {k: value for k, value in searched.items() if k in self.search_params}

    @staticmethod
    def _identifier(raw: str) -> Token:
        """`[system|]MRN`, refusing what no stored MRN can be (registration validates every one), so the
        search is not answered "no such patient" for a question it did not ask."""
        if "," in raw:  # FHIR's OR list; a single MRN has no comma
            raise FhirParamError("identifier", "one identifier per search: [system|]MRN")
        if raw.endswith("|"):
            raise FhirParamError("identifier", "expected [system|]MRN: give an MRN (a whole system is not searchable)")
        token = parse_token("identifier", raw)
        try:
            validate_mrn(token.code)
        except ValidationError as exc:
            raise FhirParamError("identifier", exc.message_dict["mrn"][0]) from exc
        try:  # `MRN|...` (the type code for the system, a common slip) is no system a patient can be in
            if token.system:
                validate_identifier_system(token.system)
        except ValidationError as exc:
            raise FhirParamError("identifier", exc.message_dict["system"][0]) from exc
        return token

    @classmethod
    def _matching(cls, rows: QuerySet[Patient], values: dict[str, object]) -> QuerySet[Patient]:
        for name, lookup in cls._SLOT_FILTERS.items():
            if name in values:
                rows = rows.filter(**{lookup: values[name]})
            elif alternatives := [value for slot, value in values.items() if slot.startswith(f"{name}_")]:
                rows = rows.filter(**{f"{lookup}__in": alternatives})
        return rows


def observation_resources(page: list[Observation]) -> list[dict]:
    """Observations as the search and $lastn serve them: an empty panel with hasMember (one members query for the
    page, none without a panel)."""
    members = selectors.panel_members([row for row in page if selectors.is_empty_panel(row)])
    return [resources.observation_resource(row, members=members.get(row.pk)) for row in page]


@documented_search(
    patient="Required, or `subject` (but with _search): Patient/<id> or <id>.",
    subject=_SUBJECT_DOC,
    category=f"[{OBSERVATION_CATEGORY}|]code, comma-separated, any of: {', '.join(Observation.Category.values)}.",
    code=f"LOINC codes, [{LOINC}|]code, comma-separated: any of them.",
    date=_DATE_DOC,
    _lastUpdated=_LAST_UPDATED_DOC,
    status=f"Comma-separated, any of: {', '.join(Observation.Status.values)}. Without it, every status but "
    f"{' and '.join(Observation.NOT_READINGS)} (no reading: retracted, or never completed).",
    _sort="date (oldest first) or -date (newest first, the default).",
)
class ObservationSearchView(FhirSearchView):
    required_scopes = [scopes.CLINICAL_READ]
    resource_type = "Observation"
    search_params = {"patient": "reference", "subject": "reference", "category": "token", "code": "token",
                     "date": "date", "_lastUpdated": "date", "status": "token", "_sort": "special"}  # fmt: skip
    ordering = ["-effective_at", "-id"]
    to_resource = staticmethod(resources.observation_resource)

    def ordering_for(self, params) -> list[str]:
        sort = params.get("_sort", "-date")
        if sort not in ("date", "-date"):
            raise FhirParamError("_sort", "supported: date, -date")
        return ["effective_at", "id"] if sort == "date" else ["-effective_at", "-id"]

    def resources(self, page: list[Observation]) -> list[dict]:
        """An empty panel (selectors.is_empty_panel: as the loader writes 85353-1, no value, no components) gets
        hasMember, the readings taken with it: served bare it broke the R4 vital-signs profile (value, component,
        hasMember or dataAbsentReason). One query a page, whatever loader wrote the rows."""
        return observation_resources(page)

    model = Observation
    slot_fields = {"patient": "patient", "category": "category", "code": "code", "date": "effective_at",
                   "status": "status", LAST_UPDATED_SLOT: "updated_at"}  # fmt: skip

    def parsed(self, params) -> tuple[dict[str, object], tuple, int, dict]:
        values: dict[str, object] = {"patient": self.required_patient(params)}
        categories = _observation_categories(params)
        values.update((f"category_{i}", category) for i, category in enumerate(categories))
        codes = _observation_codes(params)
        values.update((f"code_{i}", code) for i, code in enumerate(codes))
        prefixes = _date_slots(params, values)
        updated = _last_updated_slots(params, values)
        statuses = _choice_slots("status", params, Observation.Status.values, values)
        if not statuses:
            # Without `status`, the readings: one entered in error or cancelled is none, and the first entry of a
            # newest-first search (`_count=1`: the latest value) was a retracted 300/min instead of the 80/min
            # before it. Asked for by status (status=entered-in-error), they are found.
            readings = [status for status in Observation.Status.values if status not in Observation.NOT_READINGS]
            values.update((f"status_{i}", status) for i, status in enumerate(readings))
            statuses = len(readings)
        shape = (len(categories), len(codes), prefixes, statuses, updated)
        return values, shape, values["patient"], {}

    @classmethod
    def rows_for(cls, shape: tuple, **values) -> QuerySet[Observation]:
        categories, codes, prefixes, statuses, updated = shape
        rows = selectors.observation_list(
            patient_id=values["patient"], category=values["category_0"] if categories == 1 else None,
            codes=[values[f"code_{i}"] for i in range(codes)],
        )  # fmt: skip
        if categories > 1:
            rows = _among(rows, "category", categories, values)
        rows = _last_updated(_dated(rows, "effective_at", prefixes, values), updated, values)
        return _among(rows, "status", statuses, values)


def _observation_categories(params) -> list[str]:
    """`category`: an OR list of [system|]code of Observation.Category."""
    categories = []
    for token in parse_tokens("category", params["category"]) if "category" in params else ():
        if token.system not in (None, OBSERVATION_CATEGORY) or token.code not in Observation.Category.values:
            raise FhirParamError("category", f"supported: {', '.join(Observation.Category.values)}")
        categories.append(token.code)
    return categories


def _observation_codes(params) -> list[str]:
    """`code`: an OR list of [LOINC|]code, each one this server knows."""
    codes = []
    for token in parse_tokens("code", params["code"]) if "code" in params else ():
        if token.system not in (None, LOINC):
            raise FhirParamError("code", f"observations are coded in LOINC: [{LOINC}|]code")
        if token.code not in OBSERVATION_CODES:
            raise FhirParamError("code", f"unknown LOINC code {token.code!r}")
        codes.append(token.code)
    return codes


# --- Observation/$lastn ---------------------------------------------------------------------------
LASTN_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Observation-lastn"
MAX_LASTN = 100  # readings per code: 13 vital signs at most make a Bundle of 1,300 entries
_LASTN_DOCS = {
    "patient": "Required, or `subject`: Patient/<id> or <id>.",
    "subject": _SUBJECT_DOC,
    "category": f"[{OBSERVATION_CATEGORY}|]code, comma-separated, any of: {', '.join(Observation.Category.values)}."
    " `category` or `code` is required.",
    "code": f"LOINC codes, [{LOINC}|]code, comma-separated: any of them. `category` or `code` is required.",
    "date": _DATE_DOC + " Narrows the window the newest readings are taken from.",
    "max": f"How many of the newest readings of each code, 1-{MAX_LASTN} (default 1).",
}
_LASTN_TEXT = (
    "FHIR R4 Observation-lastn: the Observation search's matches grouped by code, the newest `max` (default 1) of "
    "each, for one patient, in a searchset Bundle (codes in order, each newest first). As in the search, readings "
    "entered in error or cancelled are none, and a panel without a value is served with hasMember; a deleted "
    "patient has none. Scope `clinical:read`; every answer audited, a cached one too."
)


def _lastn_schema(view: type[FhirSearchView]) -> type[FhirSearchView]:
    """The operation's GET and POST in the OpenAPI schema, from `_LASTN_DOCS` (which must name its parameters)."""
    if set(_LASTN_DOCS) != set(view.search_params):  # checked at import, also under python -O
        raise ImproperlyConfigured(f"{view.__name__}: document exactly its search_params")
    parameters = [
        OpenApiParameter(name, str, description=doc, many=True, explode=True)
        if name in REPEATABLE_PARAMS
        else OpenApiParameter(
            name, {"type": "integer", "minimum": 1, "maximum": MAX_LASTN} if name == "max" else str, description=doc
        )
        for name, doc in _LASTN_DOCS.items()
    ]
    optional = {"required": False}
    form_fields = {
        name: serializers.ListField(child=serializers.CharField(), label=name, help_text=doc, **optional)
        if name in REPEATABLE_PARAMS
        else serializers.IntegerField(min_value=1, max_value=MAX_LASTN, label=name, help_text=doc, **optional)
        if name == "max"
        else serializers.CharField(label=name, help_text=doc, **optional)
        for name, doc in _LASTN_DOCS.items()
    }
    form_fields["_format"] = serializers.CharField(label="_format", help_text=f"One of {', '.join(JSON_FORMATS)}.",
                                                   **optional)  # fmt: skip
    form_fields["_pretty"] = serializers.ChoiceField(PRETTY_VALUES, label="_pretty", help_text=_PRETTY_DOC,
                                                     **optional)  # fmt: skip
    bundle = OpenApiResponse(FhirBundleSerializer, description="A searchset Bundle of Observation resources.")
    errors = _outcomes(400, 401, 403, 429, 503)
    return extend_schema_view(
        get=extend_schema(operation_id="fhir_Observation_lastn", description=_LASTN_TEXT,
                          parameters=[*parameters, _FORMAT_PARAM, _PRETTY_PARAM], responses={200: bundle, **errors}),
        post=extend_schema(
            operation_id="fhir_Observation_lastn_post",
            description="The same operation with its parameters in a form body, kept out of URLs and logs: the "
            "Bundle's self link is the bare operation URL.",
            request=inline_serializer("FhirObservationLastnForm", form_fields),
            responses={200: bundle, **errors},
        ),
    )(view)  # fmt: skip


@_lastn_schema
class ObservationLastnView(FhirSearchView):
    """`GET Observation/$lastn?patient=..&category=vital-signs[&code=..][&max=N][&date=..]` (`subject=Patient/..`
    for `patient`, as R4 names it too) and the same POSTed as a form: "the latest vitals of this patient". Not
    paged (a Bundle holds at most `max` readings a code); cached in `vital_signs` under the patient's scope (the
    same entry however the patient is named), so a reading written after it is in the next answer."""

    required_scopes = [scopes.CLINICAL_READ]
    resource_type = "Observation"
    search_params = {"patient": "reference", "subject": "reference", "category": "token", "code": "token",
                     "date": "date", "max": "number"}  # fmt: skip
    model = Observation
    definition = LASTN_DEFINITION

    def search(self, request: Request, params, posted: bool = False) -> Response:
        params, ignored = _leniently(request, params, set(self.search_params) | {"_format"} | LAYOUT_PARAMS)
        params = _without_layout(params)
        _refuse_malformed(params)
        _checked_params(
            params,
            set(self.search_params) | {"_format"},
            f"unknown parameter of $lastn; supported: {', '.join(self.search_params)}",
            modifiable=set(self.search_params),
            capped=self.search_params,
        )
        patient_id = self.required_patient(params)
        categories, codes = _observation_categories(params), _observation_codes(params)
        if not categories and not codes:
            raise FhirParamError("category", "$lastn needs `category` or `code` (e.g. category=vital-signs)")
        when = date_filter("effective_at", "date", params.getlist("date")) if "date" in params else None
        per_code = _lastn_max(params.get("max"))
        entries = []
        if self.patient_is_active(patient_id):  # a deleted patient's readings are served by no read
            key = ["lastn-2", patient_id, sorted(set(categories)), sorted(set(codes)),
                   sorted(params.getlist("date")), per_code]  # fmt: skip

            def load() -> list[dict]:
                rows = selectors.newest_observations_per_code(
                    patient_id=patient_id, categories=categories, codes=codes, when=when, per_code=per_code
                )
                return observation_resources(rows)  # an empty panel with hasMember, as the search serves it

            entries = get_or_load("vital_signs", key, load, scope=patient_scope(patient_id))
        # As the Observation search's record: the patient disclosed, how many readings, never an identifier.
        self.audit(request, action="search", patient_id=patient_id, result_count=len(entries),
                   served_from_cache=served_from_cache())  # fmt: skip
        base = self.base_url(request)
        self_url = self.self_url(request, params, posted, ignored, url=f"{base}Observation/$lastn")
        outcome = resources.ignored_parameters_outcome(ignored) if ignored else None
        return Response(resources.searchset(entries, base, self_url, None, outcome=outcome))


def _refuse_too_many_values(params, search_params: dict[str, str]) -> None:
    """Cap the comma-separated values over all parameters (each one a condition in the SQL), naming the parameter
    whose values went over, so a client sees which one to cut."""
    alternatives = 0
    for name in search_params:
        alternatives += sum(len(split_or(name, value)) for value in params.getlist(name))
        if alternatives > MAX_SEARCH_ALTERNATIVES:
            raise FhirParamError(
                name, f"more than {MAX_SEARCH_ALTERNATIVES} values in all (comma-separated, over all parameters)"
            )


def _lastn_max(raw: str | None) -> int:
    """`max`: FHIR's positiveInt, capped at MAX_LASTN; 1 where absent."""
    if raw is None:
        return 1
    if not re.fullmatch(r"[0-9]{1,7}", raw):
        raise FhirParamError("max", f"expected a whole number, 1-{MAX_LASTN}")
    if not 1 <= int(raw) <= MAX_LASTN:
        raise FhirParamError("max", f"must be between 1 and {MAX_LASTN}")
    return int(raw)


@documented_search(
    patient="Required, or `subject` (but with _search): Patient/<id> or <id>.",
    subject=_SUBJECT_DOC,
    date=_DATE_DOC + " Compared with the encounter's period; one without an end is ongoing (date=ge<today> "
    "finds a stay admitted earlier and not yet discharged; eq: periods wholly inside the value's).",
    status=f"Comma-separated, any of: {', '.join(Encounter.Status.values)}.",
    _lastUpdated=_LAST_UPDATED_DOC,
)
class EncounterSearchView(FhirSearchView):
    required_scopes = [scopes.CLINICAL_READ]
    resource_type = "Encounter"
    search_params = {"patient": "reference", "subject": "reference", "date": "date", "status": "token",
                     "_lastUpdated": "date"}  # fmt: skip
    ordering = ["-period_start", "-id"]
    to_resource = staticmethod(resources.encounter_resource)

    model = Encounter
    slot_fields = {"patient": "patient", "date": "period_start", "status": "status",
                   LAST_UPDATED_SLOT: "updated_at"}  # fmt: skip

    def parsed(self, params) -> tuple[dict[str, object], tuple, int, dict]:
        values: dict[str, object] = {"patient": self.required_patient(params)}
        prefixes = _date_slots(params, values)
        statuses = _choice_slots("status", params, Encounter.Status.values, values)
        updated = _last_updated_slots(params, values)
        return values, (prefixes, statuses, updated), values["patient"], {}

    @classmethod
    def rows_for(cls, shape: tuple, **values) -> QuerySet[Encounter]:
        prefixes, statuses, updated = shape
        rows = _dated(selectors.encounter_list(patient_id=values["patient"]), "period_start", prefixes, values,
                      end_field="period_end")  # fmt: skip
        return _among(_last_updated(rows, updated, values), "status", statuses, values)


@documented_search(
    patient="Required, or `subject` (but with _search): Patient/<id> or <id>.",
    subject=_SUBJECT_DOC,
    status=f"Comma-separated, any of: {', '.join(MedicationRequest.Status.values)}.",
    intent=f"Comma-separated, any of: {', '.join(MedicationRequest.Intent.values)}.",
    code=f"RxNorm codes, [{RXNORM}|]code, comma-separated: any of them.",
    _lastUpdated=_LAST_UPDATED_DOC,
)
class MedicationRequestSearchView(FhirSearchView):
    required_scopes = [scopes.CLINICAL_READ]
    resource_type = "MedicationRequest"
    search_params = {"patient": "reference", "subject": "reference", "status": "token", "intent": "token",
                     "code": "token", "_lastUpdated": "date"}  # fmt: skip
    ordering = ["-authored_at", "-id"]
    to_resource = staticmethod(resources.medication_request_resource)

    model = MedicationRequest
    slot_fields = {"patient": "patient", "status": "status", "intent": "intent", "code": "rxnorm_code",
                   LAST_UPDATED_SLOT: "updated_at"}  # fmt: skip

    def parsed(self, params) -> tuple[dict[str, object], tuple, int, dict]:
        values: dict[str, object] = {"patient": self.required_patient(params)}
        statuses = _choice_slots("status", params, MedicationRequest.Status.values, values)
        intents = _choice_slots("intent", params, MedicationRequest.Intent.values, values)
        codes = []
        if "code" in params:
            for token in parse_tokens("code", params["code"]):
                if token.system not in (None, RXNORM):
                    raise FhirParamError("code", "medications are coded in RxNorm")
                codes.append(token.code)
        values.update((f"code_{i}", code) for i, code in enumerate(codes))
        updated = _last_updated_slots(params, values)
        return values, (statuses, intents, len(codes), updated), values["patient"], {}

    @classmethod
    def rows_for(cls, shape: tuple, **values) -> QuerySet[MedicationRequest]:
        statuses, intents, codes, updated = shape
        rows = _last_updated(selectors.medication_request_list(patient_id=values["patient"]), updated, values)
        rows = _among(_among(rows, "status", statuses, values), "intent", intents, values)
        return _among(rows, "rxnorm_code", codes, values, slot="code")


def _date_slots(params, values: dict[str, object], parameter: str = "date",
                slot: str = "date") -> tuple[tuple[str, ...], ...]:  # fmt: skip
    """Each `date=` parameter's bounds into `values` as slots; their prefixes, which shape the SQL. A repeated
    `date` is AND (a range), a comma within one is OR (`date=2024-01-05,2024-02-05`: either day). `parameter`
    another date parameter (`_lastUpdated`), its slots named after `slot`."""
    prefixes = []
    for i, raw in enumerate(params.getlist(parameter)):
        alternatives = []
        for j, part in enumerate(split_or(parameter, raw)):
            prefix, start, end = parse_date(parameter, part)
            bounds = {"start": start, "end": end}
            values.update((f"{slot}_{i}_{j}_{bound}", bounds[bound]) for bound in DATE_PREFIX_BOUNDS[prefix])
            alternatives.append(prefix)
        prefixes.append(tuple(alternatives))
    return tuple(prefixes)


def _dated(
    rows: QuerySet,
    field: str,
    prefixes: tuple[tuple[str, ...], ...],
    values: dict[str, object],
    *,
    end_field: str = "",
    slot: str = "date",
) -> QuerySet:
    """AND of the `date=` parameters `_date_slots` parsed (into slots named after `slot`), each the OR of its
    values, on the instant `field` or the period from `field` to `end_field`."""
    for i, alternatives in enumerate(prefixes):
        either = Q()
        for j, prefix in enumerate(alternatives):
            start, end = values.get(f"{slot}_{i}_{j}_start"), values.get(f"{slot}_{i}_{j}_end")
            either |= date_condition(field, prefix, start, end, end_field=end_field)
        rows = rows.filter(either)
    return rows


def _last_updated_slots(params, values: dict[str, object]) -> tuple[tuple[str, ...], ...]:
    """`_lastUpdated`, as `date` (the same parser, prefixes and OR/AND), into slots compared with `updated_at`."""
    return _date_slots(params, values, "_lastUpdated", LAST_UPDATED_SLOT)


def _last_updated(rows: QuerySet, prefixes: tuple[tuple[str, ...], ...], values: dict[str, object]) -> QuerySet:
    """The rows `_lastUpdated` (`_last_updated_slots`) asks for: their `updated_at`, FHIR's meta.lastUpdated."""
    return _dated(rows, "updated_at", prefixes, values, slot=LAST_UPDATED_SLOT)


def _choice_slots(parameter: str, params, allowed: list[str], values: dict[str, object]) -> int:
    """A comma-separated token parameter's values into `values` as slots; how many there are."""
    chosen = _choices(parameter, params[parameter], allowed) if parameter in params else []
    values.update((f"{parameter}_{i}", value) for i, value in enumerate(chosen))
    return len(chosen)


def _among(rows: QuerySet, field: str, count: int, values: dict[str, object], *, slot: str = "") -> QuerySet:
    """`field` IN the `count` values of the slots named after it (or `slot`); no filter for none."""
    if not count:
        return rows
    return rows.filter(**{f"{field}__in": [values[f"{slot or field}_{i}"] for i in range(count)]})


def _page_order(rows: QuerySet, ordering: list[str], after: list | None) -> QuerySet:
    """`rows` in the search's order, past the cursor's values when there is one."""
    rows = rows.order_by(*ordering)
    return rows if after is None else rows.filter(keyset_after(ordering, after))


def _choices(parameter: str, raw: str, allowed: list[str]) -> list[str]:
    values = [token.code for token in parse_tokens(parameter, raw)]
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise FhirParamError(parameter, f"unknown code {unknown[0]!r}; supported: {', '.join(allowed)}")
    return values


SEARCH_VIEWS: dict[str, type[FhirSearchView]] = {
    "Patient": PatientSearchView,
    "Observation": ObservationSearchView,
    "Encounter": EncounterSearchView,
    "MedicationRequest": MedicationRequestSearchView,
}
# Operations on a type (`Observation/$lastn`), by type and name: routed before the type's read, which would
# take `$lastn` for an id, and declared in the CapabilityStatement.
OPERATIONS: dict[str, dict[str, type[FhirSearchView]]] = {"Observation": {"lastn": ObservationLastnView}}
READ_VIEWS: dict[str, type[ClinicalReadView]] = {
    resource_type: _read_view(resource_type, model)
    for resource_type, model in (
        ("Observation", Observation), ("Encounter", Encounter), ("MedicationRequest", MedicationRequest)
    )
}  # fmt: skip


# --- Patient/[id]/$everything -----------------------------------------------------------------------
EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
# The patient's compartment as this server holds it, in the order the Bundle pages through it.
EVERYTHING_TYPES = ("Patient", "Observation", "Encounter", "MedicationRequest")
_PLAIN_DATE = re.compile(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?", re.ASCII)
# FHIR's instant: to the second at least, with a zone.
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})",
                      re.ASCII)  # fmt: skip
_EVERYTHING_DOCS = {
    "start": "YYYY[-MM[-DD]] (the hospital's day): Observations taken, Encounters going on and MedicationRequests "
    "authored from this date on. The Patient is always in.",
    "end": "YYYY[-MM[-DD]]: the same, up to the end of this date (its whole month or year if shorter).",
    "_since": "An instant, YYYY-MM-DDThh:mm:ss[.s][Z|+hh:mm]: only the Observations, Encounters and "
    "MedicationRequests whose meta.lastUpdated is at or after it (changed since then). The Patient is always in, "
    "with its meta.lastUpdated, as the operation returns at least the patient itself.",
    "_type": f"Comma-separated (or repeated), any of: {', '.join(EVERYTHING_TYPES)} (default: all of them). The "
    "Patient is always in.",
    "_count": f"Entries per page, 1-{MAX_COUNT} (default 50); follow the Bundle's next link for the rest.",
    "_cursor": "From the Bundle's next link.",
    "_search": "From a posted request's next link: its parameters, kept on the server for this client (15 "
    "minutes); only _cursor may go with it.",
}
_EVERYTHING_TEXT = (
    "FHIR R4 Patient-everything: one searchset Bundle with the Patient and every Observation, Encounter and "
    "MedicationRequest of its compartment, each exactly as its read or search serves it (the Observation search's "
    "readings: none entered in error or cancelled). Paged across types (the Patient, then Observations newest "
    "first, Encounters, MedicationRequests), `total` the whole count as of the first page: the pages are a "
    "snapshot of the chart then, a resource written since is in none of them. Scopes `patient:read` and "
    "`clinical:read`; every answer audited, a cached one too; an unknown patient is a 404, a deleted one a 410 "
    "(as its read)."
)


def _everything_schema(view: type[FhirSearchView]) -> type[FhirSearchView]:
    """The operation's GET and POST in the OpenAPI schema, from `_EVERYTHING_DOCS`."""
    count = {"type": "integer", "minimum": 1, "maximum": MAX_COUNT}
    parameters = [
        OpenApiParameter(name, count if name == "_count" else str, description=doc)
        for name, doc in _EVERYTHING_DOCS.items()
    ]
    optional = {"required": False}
    form_fields = {
        name: serializers.IntegerField(min_value=1, max_value=MAX_COUNT, label=name, help_text=doc, **optional)
        if name == "_count"
        else serializers.CharField(label=name, help_text=doc, **optional)
        for name, doc in _EVERYTHING_DOCS.items()
        if name not in ("_cursor", "_search")
    }
    form_fields["_format"] = serializers.CharField(label="_format", help_text=f"One of {', '.join(JSON_FORMATS)}.",
                                                   **optional)  # fmt: skip
    form_fields["_pretty"] = serializers.ChoiceField(PRETTY_VALUES, label="_pretty", help_text=_PRETTY_DOC,
                                                     **optional)  # fmt: skip
    bundle = OpenApiResponse(FhirBundleSerializer, description="A searchset Bundle: the Patient and its compartment.")
    errors = _outcomes(400, 401, 403, 404, 410, 429, 503, e400="A bad parameter, or a malformed Parameters body.",
                       e404="No patient has this id.", e410="The patient was deleted.")  # fmt: skip
    return extend_schema_view(
        get=extend_schema(operation_id="fhir_Patient_everything", description=_EVERYTHING_TEXT,
                          parameters=[*parameters, _FORMAT_PARAM, _PRETTY_PARAM], responses={200: bundle, **errors}),
        post=extend_schema(
            operation_id="fhir_Patient_everything_post",
            description="The same operation with its parameters in the body, kept out of URLs and logs: a form, or "
            "a FHIR Parameters resource (application/fhir+json; start and end valueDate, _type valueCode, _count "
            "valueInteger, or any of them valueString). The Bundle's self link is the bare operation URL and its next "
            "link names the request by an opaque `_search`.",
            request={
                "application/x-www-form-urlencoded": inline_serializer("FhirPatientEverythingForm", form_fields),
                FhirJSONParser.media_type: OpenApiTypes.OBJECT,
            },
            responses={200: bundle, **errors},
        ),
    )(view)  # fmt: skip


@_everything_schema
class PatientEverythingView(FhirSearchView):
    """`GET|HEAD|POST Patient/<id>/$everything`: the chart a clinical app opens, in one request instead of a read
    and three searches.

    Each resource comes from the code path its own endpoint uses: the Patient from the read's cached card, the
    others from each type's search view (`parsed`/`rows_for`, its ordering and `resources`), so the Bundle holds
    what those requests return, byte for byte, and a change to one of them changes this too.

    search.mode is `match` for every entry, the Patient's and the rest: the operation's question is "this
    patient's compartment", and each compartment resource answers it (none is here only because a match refers to
    it, which is what `include` says; they refer to the Patient, not it to them). So `total` counts every entry
    the pages hold. The Patient is in whatever `_type` names: the operation returns "at a minimum, the patient
    resource itself". So is it whatever `_since` says (R4: "resources updated after this period will be included"):
    the others are those whose meta.lastUpdated is at or after `_since` (`_lastUpdated=ge<_since>` on each search),
    and the Patient's own meta.lastUpdated tells the client whether it changed. A row written in a transaction that
    commits after `_since` but was stamped before it (updated_at is the time of the write, not of its commit) is
    missed by a client that syncs from the instant of its last answer: such a client should ask from a little before.

    Scopes: both `patient:read` and `clinical:read`, checked before anything is read (HasScope: every scope the
    view names), as each endpoint here is: no view filters what it answers by the caller's scopes. A client lacking
    either is refused (403) as the read or the searches it lacks would refuse it; leaving a type out silently would
    answer "no observations" for "not allowed to see them".

    Pages: keyset, across types, over a snapshot taken by the first page: the cursor names the type to go on with,
    the ordering values of the last row served of it, the highest id of each type the first page counted, and
    that page's `total`. A later page reads only rows up to those ids, and counts nothing (one query per type
    whatever page it is), so a row written after the first page is in no page and no `total`, and a client paging
    until it has `total` entries has them all, each once. What the snapshot cannot hold: a counted row that
    changes meanwhile is served as it is when its page is read, and one that leaves the compartment (its patient
    deleted, an Observation entered in error) before its page is not served, so that client gets fewer; and a
    write still uncommitted while the first page read may hold an id below the snapshot's, and be served
    uncounted. With `_since` a later page reads only rows stamped by the first (updated_at at most its instant, in
    the cursor): an older row changed between pages would match then, uncounted; so a counted row changed again
    before its page is not served either (its new stamp is past the cut), and the client gets fewer than `total`:
    its next sync, from the instant of this one, finds that change. With `_since` an Observation
    entered in error since is served (status entered-in-error): a syncing client learns of the retraction.
    The cursor is HMAC'd and bound to the patient and parameters, as every cursor here. Each page is
    cached in `patient_data` under the patient's scope (any write to the patient's data invalidates it), with the
    card; one audit record a request, a cached answer's too.
    """

    required_scopes = [scopes.PATIENT_READ, scopes.CLINICAL_READ]
    resource_type = "Patient"
    search_params = {"start": "date", "end": "date", "_since": "date", "_type": "token"}
    model = Patient
    definition = EVERYTHING_DEFINITION
    known_params = {*search_params, "_count", "_cursor", "_search", "_format"}
    parser_classes = [FormParser, FhirJSONParser]  # a form, or a Parameters resource

    def get(self, request: Request, patient_id: str) -> Response:
        return self.search(request, request.query_params)

    def post(self, request: Request, patient_id: str) -> Response:
        """A form, as a search's, or a Parameters resource. Plain `application/json` is a 415, as on `_search`:
        FHIR's JSON type is application/fhir+json. One naming another `fhirVersion` (3.0) is a 415 too, as that
        version in Accept is a 406: an STU3 body read as R4 answered a question the client did not ask."""
        if request.content_type.partition(";")[0].strip().lower() != FhirJSONParser.media_type:
            return super().post(request)
        if not answers_fhir_version(FhirJSONRenderer(), _MediaType(request.content_type)):
            raise UnsupportedMediaType(
                request.content_type[:64],
                f"This server reads FHIR {resources.FHIR_VERSION} (fhirVersion="
                f"{FHIR_VERSIONS[0]}); the body names another version.",
            )
        self.body_parameters = _parameters_resource(request.data, self.known_params | LAYOUT_PARAMS)
        params = request.query_params.copy()  # the URL's and the body's, as a form's
        for key, values in self.body_parameters.lists():
            for value in values:
                params.appendlist(key, value)
        return self.search(request, params, posted=True)

    def refused_patients(self, request: Request) -> list[int]:
        """A refused request names the patient of its path (a parameter names none)."""
        raw_id = str(self.kwargs.get("patient_id") or "")
        return [int(raw_id)] if re.fullmatch(ID_PATTERN, raw_id) else []

    def search(self, request: Request, params, posted: bool = False) -> Response:
        raw_id = str(self.kwargs["patient_id"])
        params, ignored = _leniently(request, params, self.known_params | LAYOUT_PARAMS)
        params = _without_layout(params)
        if len(params.getlist("_type")) > 1:  # 0..*, each a comma list: one list, as the search binds it
            params = params.copy()
            params.setlist("_type", [",".join(params.getlist("_type"))])
        _refuse_malformed(params)
        if "_search" in params:  # the next page of a posted request: its parameters stayed on the server
            params = _stored_search("Patient-everything", params, client_identity(request))
            posted = True
        supported = ", ".join(name for name in _EVERYTHING_DOCS if name not in ("_cursor", "_search"))
        _checked_params(params, self.known_params, f"unknown parameter of $everything; supported: {supported}")
        types = _everything_types(params.get("_type"))
        start, end = _everything_window(params)
        since = _everything_since(params.get("_since"))
        count = parse_count(params.get("_count"), self.default_count)
        operation = f"Patient/{raw_id[:64]}/$everything"
        # Bound to this patient whatever the parameters (search_binding is empty for a request without any).
        binding = search_binding(operation, params) or operation
        cursor = _everything_cursor(params.get("_cursor"), binding) if "_cursor" in params else None
        if not re.fullmatch(ID_PATTERN, raw_id):  # Patient/007 is not Patient/7; parameters were checked first
            self.audit(request, action="search", resource_id="", outcome="not_found")
            raise NotFound(f"Patient/{raw_id[:64]} does not exist.")
        patient_id = int(raw_id)
        # The read's card, through the patient_data cache; a deleted patient is a 410, as its read answers.
        card, deleted = selectors.patient_card_or_deleted(patient_id=patient_id)
        if card is None:
            self.audit(request, action="search", resource_id=raw_id, outcome="not_found")
            if deleted:
                raise Gone(f"Patient/{raw_id} was deleted.")
            raise NotFound(f"Patient/{raw_id} does not exist.")
        # No identifier in it: the resource id, the parameters, the cursor's instant, row ids and total (HMAC'd).
        after = None if cursor is None else [cursor[0], cursor[1].isoformat() if cursor[1] else "", *cursor[2:7],
                                             cursor[7].isoformat() if cursor[7] else ""]  # fmt: skip
        key = ["everything-4", patient_id, list(types), start, end, since, count, after]
        page = get_or_load(
            "patient_data",
            key,
            lambda: self.page(card, types, start, end, count, cursor, since),
            scope=patient_scope(patient_id),
        )
        self.audit(request, action="search", resource_id=raw_id, patient_id=patient_id,
                   result_count=len(page["entries"]), served_from_cache=served_from_cache())  # fmt: skip
        base = self.base_url(request)
        operation_url = f"{base}Patient/{patient_id}/$everything"
        self_url = self.self_url(request, params, posted, ignored, url=operation_url)
        next_url = None
        if page["next"] is not None:
            cursor = encode_cursor(page["next"], binding)
            next_url = self.next_url(request, params, posted, cursor, url=operation_url, stored_as="Patient-everything")
        outcome = resources.ignored_parameters_outcome(ignored) if ignored else None
        bundle = resources.searchset(page["entries"], base, self_url, next_url, outcome=outcome)
        return Response({**bundle, "total": page["total"]})

    @staticmethod
    def page(card: dict, types: tuple[str, ...], start: str | None, end: str | None, count: int,
             cursor: list | None, since: str | None = None) -> dict:  # fmt: skip
        """One page of the compartment: `entries`, `next` (the cursor's values after it, or None) and `total`.
        The first page takes the snapshot: each type's count and highest id in one query, then its rows up to that
        id; a later page reads the snapshot and total from its cursor and only rows, one query a type. Plus one
        for the page's empty panels' members."""
        if cursor is None:
            position, after, snapshot, total = 0, None, dict.fromkeys(EVERYTHING_TYPES[1:], 0), 0
            taken = None
        else:
            position, after = cursor[0], cursor[1:3]
            snapshot, total = dict(zip(EVERYTHING_TYPES[1:], cursor[3:6], strict=True)), cursor[6]
            taken = cursor[7]
        entries: list[dict] = []
        following = None
        for index, resource_type in enumerate(EVERYTHING_TYPES):
            if resource_type == "Patient":  # always in, whatever `_type` names
                total += 1 if cursor is None else 0
                if index >= position:
                    entries.append(resources.patient_resource(card))  # as the read serves it; count >= 1
                continue
            if resource_type not in types:
                continue
            view = SEARCH_VIEWS[resource_type]()
            rows = _compartment_rows(view, int(card["id"]), start, end, since)
            if cursor is None:
                stamps = {"stamp": Max("updated_at")} if since is not None else {}
                counted = rows.aggregate(count=Count("pk"), top=Max("pk"), **stamps)
                total += counted["count"]
                snapshot[resource_type] = counted["top"] or 0
                if counted.get("stamp") is not None:  # the latest stamp counted, whichever clock wrote it
                    taken = max(taken, counted["stamp"]) if taken is not None else counted["stamp"]
            elif since is not None and taken is not None:
                # `_since` matches by updated_at: an older row changed since the first page would match now,
                # uncounted (total 3, 4 served), so later pages see the rows as they were stamped then.
                rows = rows.filter(updated_at__lte=taken)
            if index < position or following is not None:
                continue
            room = count - len(entries)
            ordering = view.ordering_for(QueryDict())
            keyset = after if index == position and after and after[0] != "" else None
            rows = rows.filter(pk__lte=snapshot[resource_type])
            found = list(_page_order(rows, ordering, keyset)[: room + 1])
            if len(found) > room:
                found = found[:room]
                last = found[-1] if found else None
                following = [index, "", 0] if last is None else [
                    index, getattr(last, ordering[0].lstrip("-")).isoformat(), last.pk
                ]  # fmt: skip
            entries += view.resources(found)
        if following is not None:
            # `taken`: the highest updated_at the first page counted (with the counts, no clock reading): a row
            # stamped by a database or an app host whose clock runs ahead of this one's is still served.
            following += [*snapshot.values(), total, taken.isoformat() if taken else ""]
        return {"entries": entries, "next": following, "total": total}


def _compartment_rows(view: FhirSearchView, patient_id: int, start: str | None, end: str | None,
                      since: str | None = None) -> QuerySet:  # fmt: skip
    """A type's rows of the patient in the window, through its search view's own filters: `date=ge<start>` and
    `date=le<end>` where the search takes `date` (Observations' instant, Encounters' period), the same conditions
    on `authored_at` for MedicationRequests, whose search has no date; `_since` as `_lastUpdated=ge<since>`."""
    params = QueryDict(mutable=True)
    params["patient"] = str(patient_id)
    if since is not None:
        params["_lastUpdated"] = f"ge{since}"
        if view.resource_type == "Observation":  # one retracted since too: how a syncing client learns of it
            params["status"] = ",".join(Observation.Status.values)
    dates = [f"{prefix}{value}" for prefix, value in (("ge", start), ("le", end)) if value]
    window = Q()
    if "date" in view.search_params:
        params.setlist("date", dates)
    else:
        for raw in dates:
            prefix, low, high = parse_date("date", raw)
            window &= date_condition("authored_at", prefix, low, high)
    values, shape, _, _ = view.parsed(params)
    return type(view).rows_for(shape, **values).filter(window)


def _everything_types(raw: str | None) -> tuple[str, ...]:
    """`_type`: a comma list of the compartment's types, in the Bundle's order; all of them where absent. The
    Patient is in either way (`page` serves it whatever this holds)."""
    if raw is None:
        return EVERYTHING_TYPES
    asked = split_or("_type", raw)
    unknown = [name for name in asked if name not in EVERYTHING_TYPES]
    if unknown:
        raise FhirParamError("_type", f"{unknown[0][:64]!r} is not held here; supported: {', '.join(EVERYTHING_TYPES)}")
    return tuple(name for name in EVERYTHING_TYPES if name in asked)


def _everything_window(params) -> tuple[str | None, str | None]:
    """`start` and `end`: FHIR dates (no prefix, no time), real ones, the start not after the end."""
    bounds = {}
    for name in ("start", "end"):
        raw = params.get(name)
        if raw is not None:
            if not _PLAIN_DATE.fullmatch(raw):
                raise FhirParamError(name, "expected a date, YYYY[-MM[-DD]] (no prefix, no time)")
            bounds[name] = parse_date(name, raw)  # a real date (2024-02-30 is refused)
    if "start" in bounds and "end" in bounds and bounds["start"][1] >= bounds["end"][2]:
        raise FhirParamError("end", "before start: the window would hold nothing")
    return params.get("start"), params.get("end")


def _everything_since(raw: str | None) -> str | None:
    """`_since`: an instant (FHIR's: seconds and a zone), a real one; as given, for `_lastUpdated=ge` and the key."""
    if raw is None:
        return None
    if not _INSTANT.fullmatch(raw):
        raise FhirParamError("_since", "expected an instant, YYYY-MM-DDThh:mm:ss[.s](Z|+hh:mm)")
    parse_date("_since", raw)  # a real one (2024-02-30 is refused)
    return raw


def _everything_cursor(raw: str, binding: str) -> list:
    """A $everything cursor: [type's index, the last row's instant (ISO, aware) or "" (the type from its first
    row), its id or 0, the snapshot's highest Observation, Encounter and MedicationRequest ids, the total, the
    first page's highest counted updated_at with `_since` (ISO, aware) or ""]; anything else, or another request's, is
    a 400. The previous release's cursor has no last value (7): it pages on with no cut-off."""
    values = decode_cursor(raw, (8, 7), binding)
    if len(values) == 7:  # issued by the previous release during a rolling upgrade
        values.append("")
    position, instant, row_id, *snapshot, total, taken = values
    refused = FhirParamError("_cursor", "not a cursor this server issued")
    if not isinstance(position, int) or not 0 < position < len(EVERYTHING_TYPES):  # the Patient is on page 1
        raise refused
    if not all(isinstance(top, int) and 0 <= top <= MAX_ROW_ID for top in snapshot):
        raise refused
    if not isinstance(total, int) or not 1 <= total <= MAX_ROW_ID:
        raise refused
    taken = _cursor_instant(taken, refused) if taken != "" else None
    if (instant, row_id) == ("", 0):
        return [position, "", 0, *snapshot, total, taken]
    if not isinstance(row_id, int) or not 1 <= row_id <= MAX_ROW_ID:
        raise refused
    return [position, _cursor_instant(instant, refused), row_id, *snapshot, total, taken]


def _cursor_instant(instant: object, refused: FhirParamError) -> datetime:
    """An aware ISO instant from a cursor; anything else is `refused`."""
    if not isinstance(instant, str):
        raise refused
    try:
        moment = datetime.fromisoformat(instant)
    except ValueError as exc:
        raise refused from exc
    if timezone.is_naive(moment):
        raise refused
    return moment


# A Parameters body's value[x] each parameter takes (another's is refused); valueString for any, as a form has it.
_PARAMETER_VALUES = {
    "start": ("valueDate", "valueString"),
    "end": ("valueDate", "valueString"),
    "_since": ("valueInstant", "valueString"),
    "_type": ("valueCode", "valueString"),
    "_count": ("valueInteger", "valuePositiveInt", "valueString"),
    "_pretty": ("valueBoolean", "valueString"),
}


def _parameters_resource(body: object, known: set[str]) -> QueryDict:
    """An operation's POST body as FHIR has it, a Parameters resource, as the QueryDict a form gives: each
    parameter a name and one primitive value[x]. A name not in `known` goes on as a form's would (refused, or
    ignored under handling=lenient), whatever its value[x], part or resource: only a known one's type is read.
    At most DATA_UPLOAD_MAX_NUMBER_FIELDS parameters, a form's cap: 60,000 held a core for seconds and a lenient
    answer held a warning for each. Anything else malformed is a 400 naming where."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirParamError("resourceType", "the body must be a FHIR Parameters resource (application/fhir+json)")
    extra = sorted(set(body) - {"resourceType", "id", "meta", "parameter"})
    if extra:
        raise FhirParamError(f"Parameters.{extra[0][:64]}", "not supported on a Parameters body here")
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise FhirParamError("Parameters.parameter", "expected a list of parameters")
    most = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    if most is not None and len(parameters) > most:
        raise FhirParamError("Parameters.parameter", f"more than {most} parameters; a form takes as many fields")
    params = QueryDict(mutable=True)
    for index, parameter in enumerate(parameters):
        where = f"Parameters.parameter[{index}]"
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str) or not parameter["name"]:
            raise FhirParamError(where, "expected an object with a name and one value[x]")
        name = parameter["name"]
        values = [key for key in parameter if key != "name"]
        if name not in known:  # one value[x], part or resource (R4's inv-1); its content is not read
            if len(values) != 1 or not (values[0].startswith("value") or values[0] in ("part", "resource")):
                raise FhirParamError(where, f"{name[:64]}: expected exactly one value[x], part or resource")
            value = parameter[values[0]]
            params.appendlist(name, value if isinstance(value, str) else values[0][:64])
            continue
        if len(values) != 1 or not values[0].startswith("value"):
            raise FhirParamError(where, f"{name[:64]}: expected exactly one value[x] (no part, resource or extension)")
        kind, value = values[0], parameter[values[0]]
        allowed = _PARAMETER_VALUES.get(name)
        if allowed is not None and kind not in allowed:
            raise FhirParamError(where, f"{name}: {kind[:64]} is not its type; give it as {' or '.join(allowed)}")
        integral = kind in ("valueInteger", "valuePositiveInt", "valueUnsignedInt")
        if kind == "valueBoolean" and allowed and isinstance(value, bool):  # _pretty
            value = "true" if value else "false"
        elif isinstance(value, bool) or not isinstance(value, int if integral else str):
            raise FhirParamError(where, f"{name[:64]}: {kind[:64]} must be {'an integer' if integral else 'a string'}")
        params.appendlist(name, str(value))
    return params


# Operations on one resource (`Patient/5/$everything`), by type and name: routed before the instance's read, and
# declared in the CapabilityStatement with the type's.
INSTANCE_OPERATIONS: dict[str, dict[str, type[FhirSearchView]]] = {"Patient": {"everything": PatientEverythingView}}


def _unsupported(method: str) -> Callable:
    """One handler per method, each with its own operationId: drf-spectacular would otherwise name the
    catch-all's operations from its path (fhir_create, fhir_destroy, ...), as if they did something."""

    @extend_schema(
        operation_id=f"fhir_unsupported_{method}",
        parameters=[_FORMAT_PARAM],
        request=None,
        responses=_outcomes(400, 404, e400="A _format other than JSON.", e404="Always: the path is not supported."),
    )
    def answer(self, request: Request, rest: str) -> Response:
        raise NotFound(f"This server does not support {rest[:64]!r}. See /fhir/metadata.")

    return answer


class UnsupportedView(FhirMixin, APIView):
    """Any other FHIR path: an OperationOutcome, never Django's HTML 404."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    accepted_params = None  # whatever it asks, the path is not supported

    get, post, put, patch, delete = (_unsupported(method) for method in ("get", "post", "put", "patch", "delete"))

    def finalize_response(self, request: Request, response: Response, *args, **kwargs) -> Response:
        """No method is allowed on a path this server does not support: DRF's `Allow` named the seven whose
        handlers answer 404 here, as if `Nope/1` took them. The 404s carry none; OPTIONS' 405, which must carry
        one (RFC 9110), an empty one."""
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code == 405:
            response["Allow"] = ""
        else:
            del response["Allow"]
        return response


@extend_schema(exclude=True)  # the same answers as the catch-all, which the schema already describes
class BaseWithoutSlashView(UnsupportedView):
    """`/fhir` itself: an OperationOutcome like any other FHIR path, not Django's HTML redirect to `/fhir/`."""
