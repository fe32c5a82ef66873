"""The base of every API view that touches PHI: scope checks, purpose of use, audit of denials."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator

from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import (
    APIException,
    AuthenticationFailed,
    NotAcceptable,
    NotAuthenticated,
    ParseError,
    Throttled,
    UnsupportedMediaType,
    ValidationError,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import HasScope
from apps.audit.http import audit_entry, ended_token_client, purpose_of_use
from apps.audit.services import audit_record, disclosed_patients
from apps.audit.writer import writer
from apps.caching.stack import cache_reads_reset, get_or_load, served_from_cache
from apps.core.negotiation import UnknownFormat

logger = logging.getLogger(__name__)


THROTTLED_RECORD_SECONDS = 10
# Seconds a client should wait before retrying a request whose audit record could not be written.
AUDIT_RETRY_AFTER = 2


class AuditUnavailable(APIException):
    status_code = 503
    default_detail = "The audit trail cannot be written right now, so patient data is not served. Retry shortly."
    default_code = "audit_unavailable"
    wait = AUDIT_RETRY_AFTER  # DRF sends it as Retry-After


class PhiAPIView(APIView):
    """Subclasses name `resource_type` and `required_scopes` and audit their own successful work."""

    permission_classes = [HasScope]
    resource_type = ""
    # What a refused GET or POST was trying to do, when its method does not say it (a POST that reads, a search).
    refusal_action = ""
    # Set once this request wrote a record (its read, a not-found, a refusal): a refusal is recorded once.
    audited_already = False

    @property
    def throttle_scope(self) -> str:
        """The RateLimitPolicy that limits this view: demographics apart from the clinical record."""
        return "patient_data" if self.resource_type == "Patient" else "clinical_data"

    def dispatch(self, request, *args, **kwargs):
        if request.method in ("GET", "HEAD"):  # a read's record goes through the group-commit writer
            with writer.expecting():
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    # DRF's `?format=` names a renderer, and one the view has not (`xml`) was a 404 "Not found." that reads as "no
    # such patient". It is negotiated as if absent and refused in `initial`, once the caller is known.
    unknown_format = False
    # The refusal negotiation raised, kept so the 400 says which one it was: a format given twice
    # (`?format=json&format=json`) is not "not a format", and the formats it names are this view's.
    refused_format: UnknownFormat | None = None

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        try:
            return super().perform_content_negotiation(request, force)
        except UnknownFormat as exc:
            self.unknown_format, self.refused_format = True, exc
            return super().perform_content_negotiation(request, force=True)

    def format_refusal(self) -> Exception:
        return self.refused_format or UnknownFormat()

    def initial(self, request: Request, *args, **kwargs) -> None:
        try:
            super().initial(request, *args, **kwargs)
        except NotAcceptable:
            if getattr(request, "accepted_renderer", None) is not None:
                raise  # not the negotiation's: it had chosen a renderer
            # DRF negotiates before it asks who is asking: an Accept nothing here answers (`application/xml`,
            # another fhirVersion) was a 406 to anyone, no credentials needed, and the refusal of a caller asking
            # for a patient left no record. The caller is identified, its scope and rate limit checked, as for
            # any other refusal (a 401, a 403, a 429 answer first); the 406 then leaves its record as an unknown
            # `?format=` does (whoever the body names: a POST lookup's 406 left none where its 400 left one). Its
            # body is written in the view's first renderer (FHIR: an OperationOutcome).
            self.perform_authentication(request)
            self.check_permissions(request)
            self.check_throttles(request)
            self.audit_refusal(request, outcome="error")
            raise
        if self.unknown_format:
            self.audit_refusal(request, outcome="error")
            raise self.format_refusal()
        try:
            purpose_of_use(request)  # a bad header is a 400 before any data is read
        except ValidationError:
            self.audit_refusal(request, outcome="error")
            raise
        cache_reads_reset()

    # Set once `check_permissions` has spent the caller's rate limit, so `check_throttles` does not spend it twice.
    throttles_checked = False

    def check_permissions(self, request: Request) -> None:
        # DRF checks permissions before throttles: each 403 of a client missing a scope was recorded, at the rate
        # it chose. An authenticated caller spends its limit first, so past it the 429 (one record per window)
        # answers instead. An anonymous one is refused 401 as before, its records windowed in handle_exception.
        if request.user and request.user.is_authenticated:
            self.throttles_checked = True
            super().check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request: Request) -> None:
        if not self.throttles_checked:
            super().check_throttles(request)

    def permission_denied(self, request: Request, message: str | None = None, code: str | None = None) -> None:
        self.audit_refusal(request, outcome="denied")
        super().permission_denied(request, message=message, code=code)

    def throttled(self, request: Request, wait: float | None) -> None:
        # A client past its limit keeps sending: one record per client and view every THROTTLED_RECORD_SECONDS
        # keeps the attempt without letting it write to the chain at its own rate (what the limit bounds).
        if self._first_in_window(request, "throttled"):
            self.audit_refusal(request, outcome="denied")
        super().throttled(request, wait)

    def handle_exception(self, exc: Exception) -> Response:
        # A 401 (no credentials, a wrong or expired token) asked for PHI all the same; the anonymous caller
        # needs no rate limit to send them, so each address and view leaves one record per window, as above.
        # OPTIONS asks for no data (see audit_refusal): its 401 is not a read of the patient.
        # A revoked or expired token names its client (audit_entry records it as the actor): its window is its own,
        # so the refusals of unknown tokens from the same address never hide its use.
        ended = ended_token_client(self.request)
        window = f"ended-token:{ended.pk}" if ended is not None else "unauthenticated"
        if (
            isinstance(exc, NotAuthenticated | AuthenticationFailed)
            and self.request.method != "OPTIONS"
            and self._first_in_window(self.request, window)
        ):
            try:
                self._record_refusal(self.request, outcome="denied")
            except AuditUnavailable as unavailable:  # as for any record: the trail down is a 503
                exc = unavailable
        response = super().handle_exception(exc)
        if self._unrecorded_refusal(exc, response):
            # Any other 4xx of a request naming its patient (or a search): validation raised before or outside
            # `refusal_audited`, a 422 reused Idempotency-Key, a FHIR parameter. Without it a refusal on an
            # existing patient and on a missing one differ by their records alone: one per request, here.
            try:
                self.audit_refusal(self.request, outcome="denied" if response.status_code == 403 else "error")
            except AuditUnavailable as unavailable:
                return super().handle_exception(unavailable)
        return response

    # A body that cannot be read at all (not JSON, not parsable) is refused before anything is asked of anyone.
    unreadable_body = (ParseError, UnsupportedMediaType)

    def _unrecorded_refusal(self, exc: Exception, response: Response | None) -> bool:
        """Whether `response` refuses, with a 4xx no record covers yet, a request worth keeping. 401 and 429
        are left to their own windows (a client past its limit must not write at its own rate)."""
        if response is None or not 400 <= response.status_code < 500 or self.audited_already:
            return False
        if isinstance(exc, (NotAuthenticated, AuthenticationFailed, Throttled, *self.unreadable_body)):
            return False
        request = self.request
        if getattr(request, "_authenticator", None) is None:  # raised before (or by) authentication
            return False
        try:
            return self.refusal_worth_keeping(request)
        except Exception:  # a request whose patients cannot even be read names none
            logger.exception("could not tell whom refused request %s was about", getattr(request, "request_id", ""))
            return False

    def refusal_worth_keeping(self, request: Request) -> bool:
        """Whether a refusal of this view answers a question about someone: it names a patient (its URL)."""
        return bool(self.refused_patients(request))

    def _first_in_window(self, request: Request, kind: str) -> bool:
        from apps.ratelimits.throttling import client_identity

        window = int(time.time() // THROTTLED_RECORD_SECONDS)
        key = f"audit:{kind}:{client_identity(request)}:{type(self).__name__}:{window}"
        try:
            return cache.add(key, 1, timeout=THROTTLED_RECORD_SECONDS)
        except Exception:  # noqa: BLE001 - without the cache, every refusal is recorded
            return True

    def audit_refusal(self, request: Request, *, outcome: str) -> None:
        """An authenticated caller refused (a scope, the rate limit, a bad purpose of use) made an access
        attempt worth keeping, naming the patients it asked for (`refused_patients`)."""
        if not (request.user and request.user.is_authenticated and request.successful_authenticator is not None):
            return  # a 401, recorded by handle_exception
        if request.method == "OPTIONS":
            return  # it asks for no data, and no action of the trail says what it is (a `read` would be false)
        self._record_refusal(request, outcome=outcome)

    def _record_refusal(self, request: Request, *, outcome: str) -> None:
        self.audited_already = True
        action = self.refused_action(request)
        entry = audit_entry(
            request,
            action=action,
            resource_type=self.resource_type,
            resource_id=self.refused_resource_id(request) if action != "search" else "",
            patient_ids=existing_patients(self.refused_patients(request)),
            outcome=outcome,
            lenient_purpose=True,
        )
        # A refusal fails closed as a read does: whatever kept its record out (not only a lost connection, which
        # the API's handler answers 503 anyway: a refused row, the writer's timeout) is a 503, never a 500.
        _record_or_unavailable(entry)

    def refused_action(self, request: Request) -> str:
        """What a refused request was trying to do: its method says it (a 405's DELETE is no `create`), but for a
        GET or POST whose view says otherwise (`refusal_action`: a POST lookup, a search)."""
        if request.method in ("PUT", "PATCH"):
            return "update"
        if request.method == "DELETE":
            return "delete"
        return self.refusal_action or ("create" if request.method == "POST" else "read")

    def refused_resource_id(self, request: Request) -> str:
        """The id of the resource a refused request was about, as the view's own records name it: none for a list,
        a search or a create (the default); a detail view's own id (its patient's only on a Patient view)."""
        return ""

    def refused_patients(self, request: Request) -> list[int]:
        """The patients a refused request asked for: the one its URL names, if any (searches name theirs in
        parameters, and say so by overriding this)."""
        raw_id = str(self.kwargs.get("patient_id") or "")
        # A leading zero names no resource (FHIR's `Patient/01` is a 404): not patient 1.
        return [int(raw_id)] if re.fullmatch(r"[1-9][0-9]{0,17}", raw_id) else []

    def audited_page(
        self,
        request: Request,
        rows,
        to_json,
        *,
        cache: tuple[str, str] | None = None,
        spans_patients: bool = False,
        **audit_fields,
    ):
        """One keyset page of `rows` as JSON, audited as a search with its result count.

        `spans_patients`: the rows are patients (their JSON has the `id`), and the record names each one.

        With `cache=(namespace, scope)` the page is kept in that cache namespace, keyed by the view, the
        URL's path and query (HMAC'd, so no identifier reaches a store); the audit record is written
        either way, and says whether the page came from the cache.
        """

        def load() -> dict:
            paginator = self.pagination_class()
            page = paginator.paginate_queryset(rows, request, view=self)
            return dict(paginator.get_paginated_response(to_json(page)).data)

        with self.refusal_audited(request, action="search", **audit_fields):  # a bad cursor, the patient found
            if cache is None:
                body = load()
            else:
                namespace, scope = cache
                key = [type(self).__name__, request.get_host(), request.path, sorted(request.query_params.lists())]
                body = get_or_load(namespace, key, load, scope=scope)
                audit_fields["served_from_cache"] = served_from_cache()
        if spans_patients:
            audit_fields["patient_ids"] = [row["id"] for row in body["results"]]
        self.audit(request, action="search", result_count=len(body["results"]), **audit_fields)
        return Response(body)

    @contextlib.contextmanager
    def refusal_audited(
        self,
        request: Request,
        *,
        action: str,
        only: Callable[[Exception], bool] | None = None,
        named: Callable[[], list[int]] | None = None,
        **fields,
    ) -> Iterator[None]:
        """Around work that follows a finding worth keeping (the patient exists, the MRN is taken): a 400 raised
        inside (DRF's or Django's ValidationError, where `only` accepts it) still leaves a record with outcome
        `error`, written after any transaction inside has rolled back, so it stays. `named`: the patients the
        refusal answered about (the MRN's holder), asked only then, and named if they exist."""
        try:
            yield
        except (ValidationError, DjangoValidationError) as refused:
            if only is None or only(refused):
                if named is not None:
                    fields["patient_ids"] = existing_patients(named())
                self.audit(request, action=action, outcome="error", **fields)
            raise

    def audit(self, request: Request, **fields) -> None:
        """Record the access; if the trail cannot be written, the data is not served (fail closed)."""
        entry = audit_entry(request, resource_type=fields.pop("resource_type", self.resource_type), **fields)
        self.audited_already = True
        _record_or_unavailable(entry)


def existing_patients(ids: list[int]) -> list[int]:
    """Of the patients a refused request named, those that exist and are not deleted: a record naming an id no
    patient has yet would sit in the history of whoever is registered under it later (a not-found record names
    none either). One query, only when some id was named; if it cannot be asked, the record cannot be written."""
    ids = disclosed_patients(ids) or []
    if not ids:
        return []
    from apps.clinical.models import Patient  # the patients are the clinical app's; audit does not import it

    try:
        return sorted(Patient.objects.filter(pk__in=ids, is_deleted=False).values_list("pk", flat=True))
    except Exception as exc:
        logger.exception("could not tell which patients a refused request named")
        raise AuditUnavailable() from exc


def _record_or_unavailable(entry) -> None:
    try:
        audit_record(entry)
    except Exception as exc:
        logger.exception("audit record could not be written; refusing to serve request %s", entry.request_id)
        raise AuditUnavailable() from exc
