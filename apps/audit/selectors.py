"""Reading and verifying the audit trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import QuerySet

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import CHAINED_FIELDS, GENESIS_HASH, chain_hash


def audit_event_list(
    *,
    patient_id: int | None = None,
    actor_type: str | None = None,
    actor_id: int | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if patient_id is not None:
        events = events.filter(patient_id=patient_id)
    if actor_type:
        events = events.filter(actor_type=actor_type)
    if actor_id is not None:
        events = events.filter(actor_id=actor_id)
    if action:
        events = events.filter(action=action)
    if resource_type:
        events = events.filter(resource_type=resource_type)
    if since:
        events = events.filter(recorded_at__gte=since)
    if until:
        events = events.filter(recorded_at__lte=until)
    return events


@dataclass
class ChainReport:
    checked: int = 0
    edited: list[int] = field(default_factory=list)  # seq of records whose content no longer matches
    missing: list[tuple[int, int]] = field(default_factory=list)  # seq ranges that were deleted
    relinked: list[int] = field(default_factory=list)  # seq whose prev_hash points at another record

    @property
    def ok(self) -> bool:
        return not (self.edited or self.missing or self.relinked)


def audit_chain_verify(*, chunk_size: int = 5000) -> ChainReport:
    """Walk the chain in order: recompute each HMAC, check each link, find gaps and a cut tail."""
    report = ChainReport()
    expected_seq, previous_hash = 1, GENESIS_HASH
    rows = AuditEvent.objects.order_by("seq").values(*CHAINED_FIELDS, "hash").iterator(chunk_size=chunk_size)
    for row in rows:
        report.checked += 1
        if row["seq"] > expected_seq:
            report.missing.append((expected_seq, row["seq"] - 1))
        elif row["prev_hash"] != previous_hash:
            report.relinked.append(row["seq"])
        if chain_hash(row) != row["hash"]:
            report.edited.append(row["seq"])
        expected_seq, previous_hash = row["seq"] + 1, row["hash"]
    head = AuditChainHead.objects.filter(pk=1).first()
    if head and head.seq >= expected_seq:
        report.missing.append((expected_seq, head.seq))
    return report
