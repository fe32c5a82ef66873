"""A rotation the way Django documents it (the new key current, the old key its fallback) rolled out pod by pod: a pod
not yet restarted appends to the shared primary chain after a restarted one sealed its head with the new key, and
cannot verify that seal, so leaves it as found. On 3322f52/f12d867 the head stayed FORGED for good, even once every
pod had the new key, and hid later cuts behind the same finding; it heals at the next append of a pod that knows both
keys, a cut is still never sealed again, and the walk that tells them apart is bounded (real PostgreSQL)."""

import pytest

from apps.audit import services
from apps.audit.models import AuditChainHead
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import PRIMARY_CHAIN, audit_record_batch, head_sealed_by
from tests.audit.helpers import cut_tail, run_verify, ward_app_entry

pytestmark = pytest.mark.django_db

NEW = "rotated-audit-key-7f3c2a9e41d84b6c9e0f1a2b3c4d5e6f"


@pytest.fixture
def pods(settings):
    """Switches this process between a restarted pod (NEW; old) and one not restarted yet (old only)."""
    old = settings.AUDIT_CHAIN_KEY

    def switch(to: str) -> None:
        settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = (NEW, [old]) if to == "new" else (old, [])

    return switch


def _write(*ns: int) -> None:
    for n in ns:
        audit_record_batch([ward_app_entry(resource_id=str(n))])


def _head_forged() -> bool:
    return audit_chain_verify().forged_heads == [PRIMARY_CHAIN]


def test_the_primary_head_is_sealed_again_at_the_next_append_of_a_pod_that_knows_both_keys(pods):
    _write(0)
    pods("new")
    _write(1)  # a restarted pod seals the head with NEW
    pods("old")
    _write(2, 3)  # one not restarted yet cannot verify that seal: leaves it as found
    pods("new")
    assert _head_forged()  # meanwhile, as before
    _write(4)
    report = audit_chain_verify()
    assert report.ok, report
    assert head_sealed_by(AuditChainHead.objects.get(name=PRIMARY_CHAIN)) is not None
    status, out = run_verify()
    assert status == 0 and "FORGED" not in out, out


def test_a_cut_during_a_one_step_rotation_is_still_never_sealed_again(pods):
    _write(0, 1, 2)
    pods("new")
    _write(3, 4)
    pods("old")
    _write(5)
    primary = AuditChainHead.objects.get(name=PRIMARY_CHAIN)
    cut_tail(primary.pk, keep=primary.seq - 3)  # below the state the NEW seal holds
    pods("new")
    _write(6, 7)
    assert _head_forged()


def _walked(monkeypatch) -> list[int]:
    """The seqs of the records the reseal walk reads (each is checked against its key, once)."""
    walked: list[int] = []
    checked = services.record_sealed_by

    def spy(values, keys, hint=None):
        walked.append(values["seq"])
        return checked(values, keys, hint)

    monkeypatch.setattr(services, "record_sealed_by", spy)
    return walked


def test_the_walk_back_from_a_cut_head_reads_at_most_the_lookback(pods, monkeypatch):
    """A genuine cut's seal holds no state below the head: unbounded, the walk read the whole chain (under the head's
    lock); here a chain of 40 records and a lookback of 5 stand in for millions and 10,000."""
    monkeypatch.setattr(services, "HEAD_RESEAL_LOOKBACK", 5, raising=False)
    _write(*range(40))
    primary = AuditChainHead.objects.get(name=PRIMARY_CHAIN)
    cut_tail(primary.pk, keep=primary.seq - 2)
    pods("new")  # a pod that knows both keys: it walks
    walked = _walked(monkeypatch)
    _write(40)
    assert len(walked) <= 5, f"the walk read {len(walked)} records, past the lookback of 5"
    assert walked == list(range(primary.seq - 2, primary.seq - 7, -1))
    assert _head_forged()


@pytest.mark.parametrize(("old_pod_writes", "heals"), [(5, True), (6, False)])
def test_a_head_left_unsealed_further_back_than_the_lookback_stays_forged(pods, monkeypatch, old_pod_writes, heals):
    monkeypatch.setattr(services, "HEAD_RESEAL_LOOKBACK", 5, raising=False)
    _write(0)
    pods("new")
    _write(1)
    pods("old")
    _write(*range(2, 2 + old_pod_writes))
    pods("new")
    _write(99)
    assert _head_forged() is not heals
