"""Building audit entries from an API request: who, from where, why, under which request id."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from apps.accounts.models import ApiClient
from apps.audit.services import AuditEntry, disclosed_patients, query_digest

PURPOSE_OF_USE_HEADER = "X-Purpose-Of-Use"
# HL7 v3 PurposeOfUse codes a clinical application may declare.
PURPOSES_OF_USE = {"TREAT", "ETREAT", "CAREMGT", "HPAYMT", "HOPERAT", "PATRQT", "PUBHLTH", "HRESCH", "COVERAGE"}
DEFAULT_PURPOSE = "TREAT"


def purpose_of_use(request: Request) -> str:
    value = request.headers.get(PURPOSE_OF_USE_HEADER, DEFAULT_PURPOSE).strip().upper()
    if value not in PURPOSES_OF_USE:
        raise ValidationError(
            {PURPOSE_OF_USE_HEADER: f"Unknown purpose of use; expected one of {', '.join(sorted(PURPOSES_OF_USE))}."}
        )
    return value


def _purpose(request: Request, lenient: bool) -> str:
    try:
        return purpose_of_use(request)
    except ValidationError:
        if not lenient:
            raise
        return "INVALID"


def ended_token_client(request: Request) -> ApiClient | None:
    """The client whose revoked or expired token a request presented (found by the token's hash), None for any
    other request: set by BearerTokenAuthentication as it refuses the token."""
    client = getattr(request, "ended_token_client", None)
    return client if isinstance(client, ApiClient) else None


def audit_entry(
    request: Request,
    *,
    action: str,
    resource_type: str,
    resource_id: object = "",
    patient_id: int | None = None,
    patient_ids: list[int] | None = None,
    outcome: str = "success",
    result_count: int | None = None,
    query: dict[str, object] | None = None,
    served_from_cache: bool = False,
    lenient_purpose: bool = False,
) -> AuditEntry:
    """`patient_ids`: every patient a response spanning patients disclosed (a search by name), so the
    accounting of each one's disclosures finds it; one disclosure has one shape whichever view writes it: a
    single patient is `patient_id`, several are the list. `lenient_purpose` records a refused attempt even
    when its purpose header is invalid."""
    if patient_ids is not None and patient_id is None:
        distinct = disclosed_patients(patient_ids) or []
        patient_id, patient_ids = (distinct[0], None) if len(distinct) == 1 else (None, distinct or None)
    ended = ended_token_client(request)
    if isinstance(request.auth, ApiClient):
        actor_type, actor_id, actor_name = "client", request.auth.pk, request.auth.name
    elif ended is not None:  # refused with a 401: its client's token, revoked or expired
        actor_type, actor_id, actor_name = "client", ended.pk, ended.name
    elif not request.user.is_authenticated:  # refused with a 401: no credentials, or ones that did not check out
        actor_type, actor_id, actor_name = "anonymous", None, ""
    else:
        actor_type, actor_id, actor_name = "user", request.user.pk, request.user.get_username()
    return AuditEntry(
        actor_type=actor_type,
        actor_id=actor_id,
        actor_name=actor_name,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id or ""),
        patient_id=patient_id,
        patient_ids=patient_ids,
        outcome=outcome,
        source_ip=request.META.get("REMOTE_ADDR"),
        purpose_of_use=_purpose(request, lenient_purpose),
        request_id=getattr(request._request, "request_id", ""),
        query_digest=query_digest(query) if query else "",
        result_count=result_count,
        served_from_cache=served_from_cache,
    )
