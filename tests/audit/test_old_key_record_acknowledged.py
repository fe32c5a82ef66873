"""`audit acknowledge-break` covers an OLD KEY finding as it does a BREAK: a rollout that overran its grace (a pod
left on the old key) left a finding nothing could clear. The acknowledgement is a sealed record in primary; one
sealed with the old key past the grace (a leaked key acknowledging its own records) counts not (real PostgreSQL)."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import PRIMARY_CHAIN, audit_chain_break_acknowledge, audit_record_batch
from tests.audit.helpers import run_verify, ward_app_entry

pytestmark = pytest.mark.django_db

NEW = "rotated-audit-key-7f3c2a9e41d84b6c9e0f1a2b3c4d5e6f"


def _write(minutes: float) -> AuditEvent:
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return audit_record_batch([ward_app_entry(recorded_at=at, resource_id=str(minutes))])[0]


def _overran_rollout(settings) -> tuple[str, AuditEvent]:
    """A pod left on the old key appends 61 minutes after the chain's first record sealed with the new one."""
    old = settings.AUDIT_CHAIN_KEY
    _write(0)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    _write(1)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = old, [NEW]
    late = _write(62)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    _write(63)
    return old, late


def test_an_old_key_record_once_acknowledged_is_no_longer_reported(settings):
    _, late = _overran_rollout(settings)
    status, out = run_verify()
    assert status == 1 and f"`audit acknowledge-break {late.pk} --by NAME`" in out, out
    said = StringIO()
    call_command("audit", "acknowledge-break", str(late.pk), "--by", "j.doe", stdout=said)
    assert f"OLD KEY record {late.pk} acknowledged" in said.getvalue()
    report = audit_chain_verify()
    assert report.ok, report
    ack = AuditEvent.objects.get(resource_type="AuditOldKeyRecord", resource_id=str(late.pk))
    assert ack.chain_id == AuditChainHead.objects.get(name=PRIMARY_CHAIN).pk and ack.actor_name == "j.doe"
    with pytest.raises(CommandError, match="acknowledged already"):
        call_command("audit", "acknowledge-break", str(late.pk), "--by", "j.doe", stdout=StringIO())


def test_a_record_sealed_with_the_current_key_is_nothing_to_acknowledge(settings):
    _overran_rollout(settings)
    current = _write(64)
    with pytest.raises(ValueError, match="nor a record sealed with an older key"):
        audit_chain_break_acknowledge(record_id=current.pk, by="j.doe")


def test_an_acknowledgement_sealed_with_the_old_key_past_the_grace_counts_not(settings):
    old, late = _overran_rollout(settings)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = old, [NEW]  # the leaked old key
    (forged_ack,) = audit_record_batch(
        [ward_app_entry(actor_name="attacker", resource_type="AuditOldKeyRecord", resource_id=str(late.pk))]
    )
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    report = audit_chain_verify()
    assert [seq for _, seq, _ in report.older_key_records] == [late.seq, forged_ack.seq]


@pytest.mark.parametrize("planted", [False, True])
def test_an_acknowledgement_written_before_the_record_it_names_counts_not(settings, planted):
    """Review F2: before the rotation the holder of the old key appended an acknowledgement naming an id still to
    come (ids come from a sequence; with database access any can be chosen), then past the grace forged a record
    with that id with the old key. Only an acknowledgement sealed with a newer key than its record's counts."""
    old = settings.AUDIT_CHAIN_KEY
    first = _write(0)
    target = first.pk + 3
    audit_record_batch(
        [ward_app_entry(resource_type="AuditOldKeyRecord" if planted else "Patient", resource_id=str(target))]
    )
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    _write(2)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = old, [NEW]  # the leaked key, past the grace
    forged = _write(200)
    assert forged.pk == target and forged.key_id == first.key_id
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    _write(201)
    report = audit_chain_verify()
    assert [seq for _, seq, _ in report.older_key_records] == [forged.seq], report
