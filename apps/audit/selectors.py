"""Reading and verifying the audit trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import QuerySet

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import CHAINED_FIELDS, GENESIS_HASH, PRIMARY_CHAIN, chain_hash, head_seal


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
    chains: int = 0
    edited: list[tuple[str, int]] = field(default_factory=list)  # (chain, seq): content no longer matches
    missing: list[tuple[str, int, int]] = field(default_factory=list)  # (chain, first, last) deleted
    relinked: list[tuple[str, int]] = field(default_factory=list)  # (chain, seq) pointing at another record
    deleted_chains: list[str] = field(default_factory=list)  # registered, or with records, but no head
    unregistered_chains: list[str] = field(default_factory=list)  # a head primary never registered
    forged_heads: list[str] = field(default_factory=list)  # a head whose seal does not match it

    @property
    def ok(self) -> bool:
        return not (
            self.edited
            or self.missing
            or self.relinked
            or self.deleted_chains
            or self.unregistered_chains
            or self.forged_heads
        )


def _verify_chain(report: ChainReport, name: str, chain_id: int, head_seq: int | None, chunk_size: int) -> None:
    expected_seq, previous_hash = 1, GENESIS_HASH
    rows = (
        AuditEvent.objects.filter(chain_id=chain_id)
        .order_by("seq")
        .values(*CHAINED_FIELDS, "hash")
        .iterator(chunk_size=chunk_size)
    )
    for row in rows:
        report.checked += 1
        if row["seq"] > expected_seq:
            report.missing.append((name, expected_seq, row["seq"] - 1))
        elif row["prev_hash"] != previous_hash:
            report.relinked.append((name, row["seq"]))
        if chain_hash(row) != row["hash"]:
            report.edited.append((name, row["seq"]))
        expected_seq, previous_hash = row["seq"] + 1, row["hash"]
    if head_seq is not None and head_seq >= expected_seq:
        report.missing.append((name, expected_seq, head_seq))


def audit_chain_verify(*, chunk_size: int = 5000) -> ChainReport:
    """Walk every chain in order: recompute each HMAC, check each link, find gaps, cut tails and
    chains deleted whole (every chain but primary is registered by a record in primary)."""
    report = ChainReport()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # One snapshot for every query below: a chain opened meanwhile is not a false alarm.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        _verify_all(report, chunk_size)
    return report


def _verify_all(report: ChainReport, chunk_size: int) -> None:
    heads = {head.pk: head for head in AuditChainHead.objects.all()}
    for head in sorted(heads.values(), key=lambda h: h.pk):
        report.chains += 1
        if head.seal != head_seal(head.name, head.seq, head.last_hash):
            report.forged_heads.append(head.name)
        _verify_chain(report, head.name, head.pk, head.seq, chunk_size)
    primary = next((h for h in heads.values() if h.name == PRIMARY_CHAIN), None)
    registered = set()
    if primary is not None:
        registered = {
            int(value)
            for value in AuditEvent.objects.filter(
                chain_id=primary.pk, resource_type="AuditChain", action="create"
            ).values_list("resource_id", flat=True)
        }
    for chain_id in sorted(registered - set(heads)):
        report.deleted_chains.append(f"#{chain_id}")
    orphans = set(AuditEvent.objects.exclude(chain_id__in=list(heads)).values_list("chain_id", flat=True).distinct())
    for chain_id in sorted(orphans - registered):
        report.deleted_chains.append(f"#{chain_id}")
        _verify_chain(report, f"#{chain_id}", chain_id, None, chunk_size)
    for head in heads.values():
        if head.name != PRIMARY_CHAIN and head.pk not in registered:
            report.unregistered_chains.append(head.name)
