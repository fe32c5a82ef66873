"""A leaked OLD key and database access, after a rotation: cut the chain's newest records (sealed with the new key)
and seal its head, moved back over them, with the old key. Heads verified with any configured key, so on
3322f52/f12d867 nothing was reported and the next append sealed the cut over with the new key: a deletion after the
rotation point that the old key made invisible (real PostgreSQL)."""

import pytest
from django.db import connection

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import PRIMARY_CHAIN, audit_record_batch, chain_key_id, head_seal, head_sealed_by
from tests.audit.helpers import ward_app_entry

pytestmark = pytest.mark.django_db

NEW = "rotated-audit-key-7f3c2a9e41d84b6c9e0f1a2b3c4d5e6f"


def _batch(ns: range) -> None:
    audit_record_batch([ward_app_entry(resource_id=str(n)) for n in ns])


def test_a_head_cut_back_over_new_key_records_and_sealed_with_the_old_key_is_reported(settings):
    old = settings.AUDIT_CHAIN_KEY
    _batch(range(3))
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    _batch(range(3, 10))  # sealed with NEW
    head = AuditChainHead.objects.get(name=PRIMARY_CHAIN)
    keep = head.seq - 4  # still a record sealed with NEW: the cut is after the rotation point
    kept = AuditEvent.objects.get(chain_id=head.pk, seq=keep)
    assert kept.key_id == chain_key_id(NEW.encode())
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("DELETE FROM audit_auditevent WHERE chain_id = %s AND seq > %s", [head.pk, keep])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    AuditChainHead.objects.filter(pk=head.pk).update(
        seq=keep,
        last_hash=kept.hash,
        seal=head_seal(head.name, keep, kept.hash, old.encode()),  # the OLD key
    )
    report = audit_chain_verify()
    assert report.forged_heads == [PRIMARY_CHAIN], f"4 records cut after the rotation point, unreported: {report}"
    _batch(range(10, 12))  # nor is the cut sealed over by the next append
    assert audit_chain_verify().forged_heads == [PRIMARY_CHAIN]


def test_a_head_idle_since_the_rotation_still_verifies_with_the_old_key(settings):
    """Its last record was sealed with the old key too: the check costs nothing a head at rest relies on."""
    old = settings.AUDIT_CHAIN_KEY
    _batch(range(3))
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    head = AuditChainHead.objects.get(name=PRIMARY_CHAIN)
    assert head_sealed_by(head) == chain_key_id(old.encode())
    assert audit_chain_verify().ok
