"""POST /api/v1/inference/<deployment>/embed and /generate: scope `inference`, the ai_inference rate
limit, answers cached per caller in the ai_inference namespace (keyed by an HMAC of the caller and the input,
never the input), audited when the input carries a patient's context. Thin: validate, then apps.inference.serving."""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
from types import SimpleNamespace

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import scopes
from apps.accounts.models import ApiClient
from apps.accounts.permissions import HasScope, staff_can_view
from apps.audit.views import AuditUnavailable, PhiAPIView, existing_patients
from apps.caching.stack import cache_reads_reset, get_or_load, served_from_cache
from apps.clinical.selectors import patient_card
from apps.core.api.params import reject_unknown_params, validated_body
from apps.core.api.schema import ErrorOutputSerializer, error_responses
from apps.inference import selectors, serving
from apps.inference.api.schema import (
    DeploymentOverviewOutputSerializer,
    EmbedOutputSerializer,
    GenerateOutputSerializer,
)
from apps.inference.api.serializers import EmbedInputSerializer, GenerateInputSerializer
from apps.inference.backends import ModelUnavailable
from apps.inference.models import ModelDeployment
from apps.ratelimits.throttling import RefusalLog, client_identity
from apps.services.selectors import of_visible_services, visible_service_ids

logger = logging.getLogger(__name__)

INFERENCE_ERRORS = error_responses(
    400, 401, 403, 404, 413, 429, 503,
    e403="Missing the `inference` scope, or a patient_id without the `patient:read` scope as well.",
    e400="Invalid input: also an input past the deployment's token cap, a deployment of the other task, or a "
    "patient_id that names no active patient.",
    e404="No enabled deployment has this name (for a signed-in user: of the services open to them, or of none).",
    e413="The body is larger than the server takes (`request_too_large`, naming the limit in bytes): an embed "
    "call's 64 inputs of 20,000 characters outside ASCII can pass it. Nothing reached the model.",
    e503="The deployment cannot be served on this host (`deployment_unavailable`, with Retry-After), failed on "
    "the input (`inference_failed`), did not answer in time (`inference_busy`, with Retry-After), has every "
    "stream running or a full generation or embedding queue in this server (`streams_busy`, `generations_busy`, "
    "`embeddings_busy`, with Retry-After), or the audit trail cannot be written.",
)  # fmt: skip
INFERENCE_ERRORS[415] = OpenApiResponse(
    ErrorOutputSerializer,
    description="A body other than JSON (or a form): `unsupported_media_type`. Nothing reached the model.",
)


# A generation (not streamed) whose client left is cancelled and answered 499 (ClientClosedRequest).
GENERATE_GONE = error_responses(
    499,
    e499="The client left before the answer (`client_closed_request`): the generation was cancelled at its next "
    "token. No one reads it; access logs give such calls this status (nginx's). A call about a patient is recorded.",
)


def _cached_answer(key_parts: list, inputs: list[str], compute) -> tuple[object, bool]:
    """The answer from the ai_inference namespace (keyed by an HMAC of the parts and the inputs), else
    computed and kept; and whether it came from the cache (the response and the audit record say so).

    The inputs enter the key as one SHA-256 of them: the cache remembers the MACs of recent keys with their
    parts in process memory (8,192 of them), which with the texts themselves could hold gigabytes of
    clinical text (64 texts of 20,000 characters a call)."""
    digest = hashlib.sha256(json.dumps(inputs).encode()).hexdigest()
    return get_or_load("ai_inference", [*key_parts, digest], compute), served_from_cache()


class DeploymentUnavailable(APIException):
    status_code = 503
    default_detail = "This deployment cannot be served on this host; its reason is in the server log."
    default_code = "deployment_unavailable"


class InferenceBusy(APIException):
    status_code = 503
    default_detail = "The deployment could not answer in time; retry shortly."
    default_code = "inference_busy"


class InferenceFailed(APIException):
    status_code = 503
    default_detail = "The model failed on this input; its reason is in the server log."
    default_code = "inference_failed"


class StreamsBusy(APIException):
    status_code = 503
    default_detail = "Every stream of this deployment is running on this server; retry shortly."
    default_code = "streams_busy"


class GenerationsBusy(APIException):
    status_code = 503
    default_detail = "This deployment's generation queue is full on this server; retry shortly."
    default_code = "generations_busy"


class ClientClosedRequest(APIException):
    """Answered to a client already gone (no one reads it): the status access logs give such calls (nginx's)."""

    status_code = 499
    default_detail = "The client left before the answer."
    default_code = "client_closed_request"


class EmbeddingsBusy(APIException):
    status_code = 503
    default_detail = "This deployment's embedding queue is full on this server; retry shortly."
    default_code = "embeddings_busy"


# The 503 each kind of full slots answers.
SLOTS_BUSY = {serving.StreamsFull: StreamsBusy, serving.GenerationsFull: GenerationsBusy,
              serving.EmbeddingsFull: EmbeddingsBusy}  # fmt: skip


# Loads through the cache a call whose client is still here makes while each ends in another call's client
# gone (see _InferenceView.own_outcome); then it runs the model itself, outside the cache.
SHARED_GONE_TRIES = 3


class _SlotsRefusalLog(RefusalLog):
    """The 503s of full slots (`streams_busy`, `generations_busy`, `embeddings_busy`): a load the server sheds
    as it should, logged as one WARNING per interval with the number refused, in place of Django's ERROR line
    per 503 (a flood of them paged the error alerting for no fault)."""

    @staticmethod
    def _log(count: int, scope: str) -> None:
        logger.warning("%d inference call(s) refused for want of a slot (503) since the last such line; latest %s",
                       count, scope)  # fmt: skip


slots_refusal_log = _SlotsRefusalLog()
atexit.register(slots_refusal_log.flush)  # the timer is a daemon thread: refusals held back at exit

# A deployment of the other task: what it is, and the URL name of its endpoint.
TASK_ENDPOINTS = {ModelDeployment.Task.EMBEDDING: ("an embedding", "inference-embed"),
                  ModelDeployment.Task.GENERATION: ("a generation", "inference-generate")}  # fmt: skip
# Seconds a caller whose call timed out should wait before retrying.
BUSY_RETRY_AFTER = 5
# Seconds a call refused for want of a slot should wait: a short generation (a batch of texts) frees one.
STREAMS_RETRY_AFTER = 2


class _InferenceView(PhiAPIView):
    required_scopes = [scopes.INFERENCE]
    throttle_scope = "ai_inference"
    resource_type = "ModelInference"
    task = ""
    # The patient of a call whose text went to the model and which is not audited yet (see check_patient).
    patient_unaudited: int | None = None
    # The patient_id of a call refused for want of `patient:read` (its refusal's record names it).
    patient_refused: int | None = None

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ModelUnavailable):
            # The reason (a missing path, no CUDA device, no bitsandbytes) is for the operator, not the caller.
            logger.warning("deployment %s cannot be served: %s", self.kwargs.get("name"), exc)
            exc = DeploymentUnavailable()
            exc.wait = round(serving.LOAD_FAILURE_SECONDS)  # the failure is remembered that long
        elif isinstance(exc, serving.InferenceTimeout):
            logger.warning("deployment %s did not answer: %s", self.kwargs.get("name"), exc)
            exc = InferenceBusy()
            exc.wait = BUSY_RETRY_AFTER  # DRF sends it as Retry-After
        elif isinstance(exc, serving.InferenceFailed):
            # Without the input (it may be about a patient): the error and where it was raised.
            logger.warning("deployment %s failed on a call: %s", self.kwargs.get("name"), exc,
                           exc_info=exc.__cause__)  # fmt: skip
            exc = InferenceFailed()
        elif isinstance(exc, serving.CallerGone):
            exc = ClientClosedRequest()  # the generation was cancelled; the attempt about a patient is kept below
        elif isinstance(exc, serving.SlotsFull):
            exc = SLOTS_BUSY[type(exc)]()
            exc.wait = STREAMS_RETRY_AFTER
        busy = exc if isinstance(exc, tuple(SLOTS_BUSY.values())) else None
        if self.patient_unaudited is not None:
            # A call about a patient got no answer (a timeout, a model error, a full queue): the attempt is
            # kept all the same, as a success is.
            patient_id, self.patient_unaudited = self.patient_unaudited, None
            try:
                self.audit(self.request, action="create", resource_id=self.kwargs.get("name", ""),
                           patient_id=patient_id, outcome="error")  # fmt: skip
            except AuditUnavailable as unavailable:
                exc = unavailable
        response = super().handle_exception(exc)
        if exc is busy:  # shed load, not a fault: counted, and kept out of django.request's ERROR line
            slots_refusal_log.refused(f"{busy.default_code} ({self.kwargs.get('name', '')})")
            response._has_been_logged = True
        return response

    def body(self, request: Request, serializer_class) -> dict:
        """The validated body. A call naming a patient_id needs `patient:read` besides `inference`, checked before
        any patient is looked up: an inference-only client told "no active patient has this id" (or not) could
        map which patient ids exist. Refused as a missing scope is (403, audited naming the id asked for)."""
        body = validated_body(request, serializer_class)
        patient_id = body.get("patient_id")
        if patient_id is not None:
            needed = SimpleNamespace(required_scopes=[scopes.INFERENCE, scopes.PATIENT_READ])
            checker = HasScope()
            if not checker.has_permission(request, needed):
                self.patient_refused = patient_id
                # Recorded as the view's other records are (the deployment its resource, the patient its
                # patient_id): the generic refusal put the patient id where the deployment name belongs. An id
                # no active patient has is not named: it would land in the history of a patient registered later.
                self.audit(request, action="create", resource_id=self.kwargs.get("name", ""),
                           patient_ids=existing_patients([patient_id]), outcome="denied",
                           lenient_purpose=True)  # fmt: skip
                raise PermissionDenied(detail=checker.message, code=checker.code)
        return body

    def refused_patients(self, request: Request) -> list[int]:
        return [self.patient_refused] if self.patient_refused is not None else []

    def refused_resource_id(self, request: Request) -> str:
        """The deployment asked for, as the view's other records name it (a scope or rate-limit refusal too)."""
        return self.kwargs.get("name", "")

    def deployment(self, name: str) -> ModelDeployment:
        """The enabled deployment of this name. A signed-in user reaches only those of the services open to
        them (and of none), as the overview and admin show them: a hidden one is a 404 as a missing one is,
        before the other task's 400 could tell it exists. A client's token is not tied to services."""
        serving.served_prune_if_due()  # models of deployments disabled since are let go
        rows = ModelDeployment.objects.filter(enabled=True)
        if not isinstance(self.request.auth, ApiClient):
            rows = of_visible_services(rows, visible_service_ids(self.request.user), unassigned=True)
        deployment = get_object_or_404(rows, name=name)
        if deployment.task != self.task:
            kind, url = TASK_ENDPOINTS[deployment.task]
            raise ValidationError(
                {"deployment": [f"{name} is {kind} deployment; call it at {reverse(url, kwargs={'name': name})}."]}
            )
        return deployment

    def over_cap(self, deployment: ModelDeployment, tokens: int) -> list[str]:
        """The error of a text of `tokens` past the deployment's input token cap (a list, as the serializer's
        are). Takes the count, not the text: generate needs the count again, and tokenizing is not free. Past the
        cap the count may be of the text's start only (serving.token_count), hence "at least". The tokens a chat
        template adds are named: "hi" alone counts 31 tokens for SmolLM2."""
        cap = serving.input_token_cap(deployment)
        if tokens <= cap:
            return []
        added = serving.template_tokens(deployment)
        of_template = f" ({added} of them the chat template's, added to every prompt)" if added else ""
        return [f"At least {tokens} tokens{of_template}; {deployment.name} takes at most {cap}."]

    def check_patient(self, request: Request, patient_id: int | None) -> None:
        """A call about a patient names an active one (400 otherwise), checked after everything else about the
        request (so no other error tells an existing patient from a missing one) and before the model runs.
        The miss is audited: without it an inference client could probe which patient ids exist, unrecorded."""
        if patient_id is not None and patient_card(patient_id=patient_id) is None:
            self.audit(request, action="read", resource_type="Patient", resource_id=patient_id, outcome="not_found")
            raise ValidationError({"patient_id": ["No active patient has this id."]})
        self.patient_unaudited = patient_id

    def answered(self, request: Request, deployment: ModelDeployment, parts: list, inputs: list[str],
                 patient_id: int | None, checked, run) -> tuple[object, str, bool]:  # fmt: skip
        """The answer (from the ai_inference cache, else run), the mode it is of, and whether it was cached.

        `checked()` makes the checks that need the model (token caps, context) and returns it as served;
        `run(served)` answers. The cache is read under a key made without loading the model
        (serving.answer_key_unloaded), so a cached answer is served at once after a restart: it waited for
        the model to load (15 to 20 s in each server process). A cached answer passed those checks, under the
        same weights and input cap. The patient is checked after the model's checks, as ever; a miss that
        does not answer here (a check failing, an unknown patient, a model kept in another mode) is made
        again outside the cache, where each raises as it did or the answer is keyed by the served model.

        Answers are kept per caller (its client, or signed-in user, as the rate limits count it): shared, a
        client could send a guessed text about a patient and learn from `"cached": true` (or the time taken)
        that another client had sent exactly that text, with no record of the disclosure."""
        caller = client_identity(request)
        key = serving.answer_key_unloaded(deployment)
        current = None
        if key is not None:
            seen = {}  # what this call's own load found (a call waiting on another's load finds nothing)

            def compute():
                seen["ran"] = True
                try:
                    current = seen["current"] = checked()
                except (ValidationError, ModelUnavailable) as error:
                    seen["error"] = error  # raised below: neither counted as the cache's error nor shared
                    return None  # not stored
                if current.answer_key != key:
                    return None
                if patient_id is not None and patient_card(patient_id=patient_id) is None:
                    return None  # refused (and audited) below, not to the other calls waiting on this load
                self.check_patient(request, patient_id)
                seen["patient"] = True
                return run(current)

            answer, cached = self.own_outcome(
                request, patient_id, seen,
                lambda: _cached_answer([caller, deployment.name, *key, *parts], inputs, compute), compute,
            )  # fmt: skip
            if answer is not None:
                if "patient" not in seen:
                    self.check_patient(request, patient_id)
                return answer, key[0], cached
            if "error" in seen:
                raise seen["error"]
            current = seen.get("current")
            cache_reads_reset()  # whether the answer below is cached is about that read alone
        if current is None:
            current = checked()
        self.check_patient(request, patient_id)
        mine = {}

        def run_current():
            mine["ran"] = True
            return run(current)

        answer, cached = self.own_outcome(
            request, patient_id, mine,
            lambda: _cached_answer([caller, deployment.name, *current.answer_key, *parts], inputs, run_current),
            run_current,
        )  # fmt: skip
        return answer, current.mode, cached

    def own_outcome(self, request: Request, patient_id: int | None, seen: dict, load, direct) -> tuple[object, bool]:
        """`load()` (an answer through the cache, and whether it was cached), this call's own outcome.

        The cache's single flight hands the calls waiting on a load (the same caller's same input) the loading
        call's error. Such an error is another call's: this one had not checked its patient, so the attempt went
        unrecorded; and a CallerGone is the other call's client gone, which answered a client still waiting
        499. This call's patient is checked and its attempt recorded (by handle_exception) as its own load's
        would be; a client still here loads again (it leads, or waits on a live load), past SHARED_GONE_TRIES
        such errors runs `direct()` itself, outside the cache. `seen["ran"]`: whether the loader ran here."""
        for _ in range(SHARED_GONE_TRIES):
            seen.pop("ran", None)
            try:
                return load()
            except Exception as error:
                if seen.get("ran"):
                    raise  # this call's own load failed: handled as ever
                if isinstance(error, serving.CallerGone) and not _client_gone(request):
                    continue
                if patient_id is not None and self.patient_unaudited is None:
                    self.check_patient(request, patient_id)  # an unknown patient: 400, audited as ever
                raise
        return direct(), False

    def audit_patient(self, request: Request, deployment: ModelDeployment, patient_id: int | None, cached: bool):
        self.patient_unaudited = None  # audited here, once, whatever the trail answers
        if patient_id is not None:
            self.audit(request, action="create", resource_id=deployment.name, patient_id=patient_id,
                       served_from_cache=cached)  # fmt: skip


class EmbedView(_InferenceView):
    task = ModelDeployment.Task.EMBEDDING

    @extend_schema(
        description="The embeddings of 1 to 64 texts, one vector per text in their order, from an embedding "
        "deployment. Scope `inference`; a call naming a `patient_id` needs `patient:read` too and is audited. "
        "Answers are cached per caller for the same texts under the same model (`cached` says so).",
        request=EmbedInputSerializer,
        responses={200: EmbedOutputSerializer, **INFERENCE_ERRORS},
    )
    def post(self, request: Request, name: str) -> Response:
        reject_unknown_params(request, [])
        body = self.body(request, EmbedInputSerializer)
        deployment = self.deployment(name)
        texts = body["inputs"]

        def checked() -> serving.Served:
            too_long = {index: error for index, text in enumerate(texts)
                        if (error := self.over_cap(deployment, serving.token_count(deployment, text)))}  # fmt: skip
            if too_long:
                raise ValidationError({"inputs": too_long})  # shaped as DRF shapes a list field's item errors
            return serving.served(deployment)

        vectors, mode, cached = self.answered(
            request, deployment, ["embed"], texts, body.get("patient_id"), checked,
            lambda current: serving.embed(deployment, texts, via=current)[0],
        )  # fmt: skip
        self.audit_patient(request, deployment, body.get("patient_id"), cached=cached)
        return Response({"deployment": deployment.name, "quantization": mode, "dimensions": len(vectors[0]),
                         "embeddings": vectors, "cached": cached})  # fmt: skip


class GenerateView(_InferenceView):
    task = ModelDeployment.Task.GENERATION

    @extend_schema(
        description="Text a generation deployment writes after a prompt, at most `max_new_tokens` new tokens; "
        "with `stream`, server-sent events as it is written. Scope `inference`; a call naming a `patient_id` "
        "needs `patient:read` too and is audited. A whole answer is cached per caller for the same prompt and "
        "cap under the same model (`cached` says so); a client that leaves cancels its generation.",
        request=GenerateInputSerializer,
        responses={
            (200, "application/json"): GenerateOutputSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description='With `stream`: `data: {"text": ...}` events as text is generated, then an `event: '
                'done` whose data is {"deployment", "quantization", "text"}.',
            ),
            **INFERENCE_ERRORS,
            **GENERATE_GONE,
        },
    )
    def post(self, request: Request, name: str) -> Response:
        reject_unknown_params(request, [])
        body = self.body(request, GenerateInputSerializer)
        deployment = self.deployment(name)
        prompt = body["prompt"]
        limit = body.get("max_new_tokens", deployment.max_new_tokens)
        if limit > deployment.max_new_tokens:
            raise ValidationError(
                {"max_new_tokens": [f"{deployment.name} generates at most {deployment.max_new_tokens}."]}
            )

        def checked() -> serving.Served:
            tokens = serving.token_count(deployment, prompt)
            if error := self.over_cap(deployment, tokens):
                raise ValidationError({"prompt": error})
            current = serving.served(deployment)
            if tokens + limit > current.runner.context:
                # Past its position embeddings a model fails (an IndexError, a 500) or reads garbage.
                raise ValidationError({"max_new_tokens": [
                    f"The prompt's {tokens} tokens and {limit} new ones pass {deployment.name}'s context of "
                    f"{current.runner.context} tokens; ask for at most {max(current.runner.context - tokens, 0)}."
                ]})  # fmt: skip
            return current

        if body["stream"]:
            return self.open_stream(request, deployment, checked(), prompt, limit, body.get("patient_id"))
        gone = serving.client_gone_probe(request.META)  # a client that left stops its generation
        answer, mode, cached = self.answered(
            request, deployment, ["generate", limit], [prompt], body.get("patient_id"), checked,
            lambda current: serving.generate(deployment, prompt, limit, via=current, gone=gone)[0],
        )  # fmt: skip
        self.audit_patient(request, deployment, body.get("patient_id"), cached=cached)
        return Response({"deployment": deployment.name, "quantization": mode, **answer, "cached": cached})

    def open_stream(self, request: Request, deployment: ModelDeployment, current: serving.Served, prompt: str,
                    limit: int, patient_id: int | None) -> StreamingHttpResponse:  # fmt: skip
        """A slot is taken before the patient check (a full server answers alike for any patient_id) and given
        back if the stream does not start (the patient refused, the audit trail down). A stream about a patient
        refused for want of a slot is audited `error`, as a full generation queue's refusal is (the caller
        holds `patient:read`, checked in `body`)."""
        try:
            release = serving.stream_slots.take(deployment, deployment.max_concurrent_streams)
        except serving.SlotsFull:
            self.patient_unaudited = patient_id  # recorded by handle_exception with the 503
            raise
        try:
            self.check_patient(request, patient_id)
            self.audit_patient(request, deployment, patient_id, cached=False)
            chunks = serving.stream(deployment, prompt, limit, release=release, via=current)
        except BaseException:
            release()
            raise
        return _event_stream(deployment.name, current.mode, chunks)


def _client_gone(request: Request) -> bool:
    """Whether this request's own client has left (never told where the server gives no socket)."""
    gone = serving.client_gone_probe(request.META)
    return gone is not None and gone()


def _event_stream(name: str, mode: str, chunks) -> StreamingHttpResponse:
    """The status (200) is sent before the model has finished: a generation that fails part-way ends with an
    `error` event (the reason goes to the log, without the prompt) instead of a cut connection."""

    def events():
        parts = []
        try:
            for text in chunks:
                parts.append(text)
                yield f"data: {json.dumps({'text': text})}\n\n"
        except Exception as error:  # the stream is already open: reported in it
            logger.warning("a streamed generation of deployment %s failed: %s", name, type(error).__name__,
                           exc_info=True)  # fmt: skip
            failed = {"detail": "The generation failed part-way; retry.", "code": "inference_failed"}
            yield f"event: error\ndata: {json.dumps(failed)}\n\n"
            return
        finally:
            _close(chunks)  # a client that left stops the model's thread at its next token
        done = {"deployment": name, "quantization": mode, "text": "".join(parts)}
        yield f"event: done\ndata: {json.dumps(done)}\n\n"

    response = StreamingHttpResponse(_Closing(events(), chunks), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies pass each event on as it comes
    return response


class _Closing:
    """The events, closed with the model's chunks: Django closes a response it never sent (a client gone
    before the first byte), and closing the events' generator before it started runs none of its code, so
    the generation, already running, went on to its cap for no one."""

    def __init__(self, events, chunks) -> None:
        self.events, self.chunks = events, chunks

    def __iter__(self):
        return self.events

    def close(self) -> None:
        self.events.close()
        _close(self.chunks)


def _close(chunks) -> None:
    if hasattr(chunks, "close"):
        chunks.close()


class DeploymentOverviewView(APIView):
    """The dashboard's inference page (staff with the deployment's view permission)."""

    permission_classes = [staff_can_view("inference.view_modeldeployment")]

    @extend_schema(responses={200: DeploymentOverviewOutputSerializer, **error_responses(400, 401, 403)})
    def get(self, request: Request) -> Response:
        reject_unknown_params(request, [])
        return Response({"results": selectors.deployment_overview(visible_services=visible_service_ids(request.user))})
