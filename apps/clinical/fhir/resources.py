"""Rows -> FHIR R4 JSON. Plain dicts built by hand: this is the hot path of every FHIR read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apps.clinical.codes import (
    ACT_CODE,
    BP_PANEL,
    LOINC,
    OBSERVATION_CATEGORY,
    OBSERVATION_CODES,
    RXNORM,
    UCUM,
)
from apps.clinical.models import Encounter, MedicationRequest, Observation
from apps.clinical.selectors import is_empty_panel

FHIR_VERSION = "4.0.1"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
ISSUE_TYPE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
              406: "not-supported", 409: "conflict", 410: "deleted", 413: "too-long", 415: "not-supported",
              429: "throttled"}  # fmt: skip


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def last_updated(card: dict) -> datetime | None:
    """When the patient's row last changed (None for a card that does not say)."""
    stamp = card.get("updated_at")
    return datetime.fromisoformat(stamp) if stamp else None


def version_id(updated: datetime) -> str:
    """The resource's version: its update time in microseconds since 1970. Every write of a clinical row sets
    `updated_at` (auto_now, a bulk update, the database's default for the loader's COPY), so the version changes
    exactly when the resource does, with no counter column to keep in step; FHIR versionIds are opaque strings."""
    return str((updated - _EPOCH) // timedelta(microseconds=1))


def meta(updated: datetime) -> dict:
    """meta.versionId and meta.lastUpdated of a row last written at `updated` (its `updated_at`): an instant in
    UTC, `Z`, as the patient card writes it, so every type's lastUpdated reads alike."""
    return {"versionId": version_id(updated), "lastUpdated": updated.astimezone(UTC).isoformat().replace("+00:00", "Z")}


def patient_meta(card: dict) -> dict | None:
    updated = last_updated(card)
    if updated is None:
        return None
    return {"versionId": version_id(updated), "lastUpdated": card["updated_at"]}


def patient_resource(card: dict) -> dict:
    """A patient card (`patient_json`, the form the `patient_data` cache keeps) as a FHIR Patient.

    Only active patients are ever served (reads and searches skip soft-deleted ones).
    """
    meta = patient_meta(card)
    return {
        "resourceType": "Patient",
        "id": str(card["id"]),
        **({"meta": meta} if meta is not None else {}),
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": IDENTIFIER_TYPE, "code": "MR"}]},
                "system": card["identifier_system"],
                "value": card["mrn"],
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": card["family_name"], "given": [card["given_name"]]}],
        "gender": card["sex"],
        "birthDate": card["birth_date"],
    }


def _loinc(code: str) -> dict:
    known = OBSERVATION_CODES.get(code)
    coding = {"system": LOINC, "code": code}
    if known:
        coding["display"] = known.display
    return {"coding": [coding], "text": known.display if known else code}


def _quantity(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def observation_resource(observation: Observation, *, members: list[int] | None = None) -> dict:
    """`members`: an empty panel's readings (selectors.panel_members), its hasMember; without any, a
    dataAbsentReason, so that the R4 vital-signs profile's value-or-reason rule holds either way."""
    resource = {
        "resourceType": "Observation",
        "id": str(observation.pk),
        "meta": meta(observation.updated_at),
        "status": observation.status,
        "category": [
            {
                "coding": [
                    {
                        "system": OBSERVATION_CATEGORY,
                        "code": observation.category,
                        "display": "Vital Signs" if observation.category == "vital-signs" else "Laboratory",
                    }
                ]
            }
        ],
        "code": _loinc(observation.code),
        "subject": {"reference": f"Patient/{observation.patient_id}"},
        "effectiveDateTime": _instant(observation.effective_at),
    }
    if observation.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{observation.encounter_id}"}
    if observation.value is not None:
        resource["valueQuantity"] = _quantity(observation.value, observation.unit)
    if observation.code == BP_PANEL and observation.components:
        resource["component"] = [
            {"code": _loinc(code), "valueQuantity": _quantity(value, "mm[Hg]")}
            for code, value in sorted(observation.components.items())
        ]
    if is_empty_panel(observation):
        if members:
            resource["hasMember"] = [{"reference": f"Observation/{member}"} for member in members]
        else:
            resource["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT_REASON, "code": "unknown"}]}
    return resource


def encounter_resource(encounter: Encounter) -> dict:
    period = {"start": _instant(encounter.period_start)}
    if encounter.period_end:
        period["end"] = _instant(encounter.period_end)
    return {
        "resourceType": "Encounter",
        "id": str(encounter.pk),
        "meta": meta(encounter.updated_at),
        "status": encounter.status,
        "class": {
            "system": ACT_CODE,
            "code": encounter.encounter_class,
            "display": encounter.get_encounter_class_display().lower(),
        },
        "subject": {"reference": f"Patient/{encounter.patient_id}"},
        "period": period,
    }


def medication_request_resource(request: MedicationRequest) -> dict:
    resource = {
        "resourceType": "MedicationRequest",
        "id": str(request.pk),
        "meta": meta(request.updated_at),
        "status": request.status,
        "intent": request.intent,
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": request.rxnorm_code, "display": request.display}],
            "text": request.display,
        },
        "subject": {"reference": f"Patient/{request.patient_id}"},
        "authoredOn": _instant(request.authored_at),
    }
    if request.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{request.encounter_id}"}
    if request.dosage_text:
        resource["dosageInstruction"] = [{"text": request.dosage_text}]
    return resource


def searchset(
    entries: list[dict], base_url: str, self_url: str, next_url: str | None, *, outcome: dict | None = None
) -> dict:
    """A searchset Bundle; `outcome`, an OperationOutcome about the search itself (parameters it ignored), comes
    last as an entry of search mode `outcome`, as FHIR has servers report them."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    matches = [
        {"fullUrl": f"{base_url}{entry['resourceType']}/{entry['id']}", "resource": entry, "search": {"mode": "match"}}
        for entry in entries
    ]
    if outcome is not None:
        matches.append({"resource": outcome, "search": {"mode": "outcome"}})
    bundle = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if matches:  # FHIR JSON has no empty arrays: a search that matched nothing has no `entry` at all
        bundle["entry"] = matches
    return bundle


def ignored_parameters_outcome(names: list[str]) -> dict:
    """What a lenient search (`Prefer: handling=lenient`) left out: one warning per parameter it does not know,
    each name cut to 64 characters (a 1 MB one was echoed whole)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "warning", "code": "not-supported", "diagnostics": "unknown search parameter, ignored "
             "(Prefer: handling=lenient)", "expression": [name[:64]]}
            for name in names
        ],
    }  # fmt: skip


def operation_outcome(status_code: int, diagnostics: str, expression: str | None = None) -> dict:
    issue = {
        "severity": "error",
        "code": ISSUE_TYPE.get(status_code, "exception" if status_code >= 500 else "processing"),
        "diagnostics": diagnostics,
    }
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
