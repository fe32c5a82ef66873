"""The brief's database-optimization API (`PatientRecordOptimizer`), over the services the product uses."""

from __future__ import annotations

import environ
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.audit.models import AuditEvent
from apps.audit.services import AuditEntry, audit_record, query_digest
from apps.caching.stack import cache_reads_reset, served_from_cache
from apps.clinical import selectors, services


class AmbiguousPatientIdentifier(LookupError):
    """`optimize_patient_lookup`: more than one active patient has the MRN, their rows under different spellings of
    its system (migrations clinical 0002/0003 left them so, where normalising would collide). Either could be the
    wrong patient, so neither card is returned; the REST lookup answers 409 `ambiguous_identifier` for the same
    MRN. The message names no MRN. Resolve the records (soft-delete or renumber one) and look it up again."""

    def __init__(self, message: str = selectors.AmbiguousIdentifier.default_detail) -> None:
        super().__init__(message)


class PatientRecordOptimizer:
    """`await create_optimized_indexes()` and `await optimize_patient_lookup(mrn, session)`.

    The database is the product's own (DATABASE_URL): a URL naming another is refused rather than ignored,
    since the indexes and the cache belong to the database the API serves from.
    """

    def __init__(self, database_url: str | None = None) -> None:
        if database_url:
            _same_database_or_refuse(database_url)

    async def create_optimized_indexes(self) -> list[dict]:
        """Create, CONCURRENTLY, the indexes the data plane's query patterns are designed around and the
        database lacks (what `optimize database --apply` does); an empty list when none is missing."""
        return await sync_to_async(_missing_indexes_create, thread_sensitive=True)()

    async def optimize_patient_lookup(
        self, mrn: str, session: object = None, *, system: str | None = None
    ) -> dict | None:
        """The patient's card by MRN through the cache (None when no patient has it), audited as a read by the
        control plane itself. `session` is the brief's database session: the product's pool serves the read.
        A malformed MRN, or a `system` that is not an absolute URI, raises ValidationError (nothing is read or
        audited). An MRN more than one active patient has, in colliding spellings of the system, raises
        AmbiguousPatientIdentifier (audited as a search with outcome `error`, naming them; nothing is cached)."""
        return await sync_to_async(_patient_lookup, thread_sensitive=True)(mrn, system)


def _same_database_or_refuse(database_url: str) -> None:
    if _where(environ.Env.db_url_config(database_url)) != _where(settings.DATABASES["default"]):
        raise ValueError(
            "PatientRecordOptimizer works on the product's own database (DATABASE_URL), which this URL does not "
            "name; omit the URL or pass DATABASE_URL's."
        )


def _where(config: dict) -> tuple[str, str, str]:
    return str(config.get("NAME") or ""), config.get("HOST") or "", str(config.get("PORT") or "")


def _missing_indexes_create() -> list[dict]:
    from apps.optimizer.database import index_create, missing_indexes

    return [index_create(index=missing["index"]) for missing in missing_indexes()]


def _patient_lookup(mrn: str, system: str | None) -> dict | None:
    services.validate_mrn(mrn)
    if system:  # not a URI ("MRN", the type code): a slip to refuse, not a system no patient is in
        services.validate_identifier_system(system)
    cache_reads_reset()
    record = {
        "actor_type": AuditEvent.ActorType.SYSTEM,
        "actor_id": None,
        "actor_name": "PatientRecordOptimizer",
        "resource_type": "Patient",
        "query_digest": query_digest({"identifier": mrn, "system": system or ""}),
    }
    try:
        patient_id = selectors.patient_id_by_identifier(value=mrn, system=system)
    except selectors.AmbiguousIdentifier:
        # A DRF exception means nothing to the brief's caller (and escaped unaudited): the answer "more than one
        # patient has this MRN" is recorded as the REST lookup's 409 is, naming the patients it is about.
        holders = [patient.pk for patient in selectors.patients_by_identifier(value=mrn, system=system)]
        audit_record(
            AuditEntry(
                **record,
                action=AuditEvent.Action.SEARCH,
                outcome=AuditEvent.Outcome.ERROR,
                patient_ids=holders,
                result_count=0,
            )
        )
        raise AmbiguousPatientIdentifier() from None
    card = selectors.patient_card(patient_id=patient_id) if patient_id else None
    audit_record(
        AuditEntry(
            **record,
            action=AuditEvent.Action.READ if card else AuditEvent.Action.SEARCH,
            resource_id=str(patient_id) if card else "",
            patient_id=patient_id if card else None,
            outcome=AuditEvent.Outcome.SUCCESS if card else AuditEvent.Outcome.NOT_FOUND,
            result_count=1 if card else 0,
            served_from_cache=served_from_cache() if card else False,
        )
    )
    return card
