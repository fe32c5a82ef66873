"""Rotating the audit chain key (AUDIT_CHAIN_KEY, its fallbacks) and SECRET_KEY, which it and the cache's secrets
are derived from by default: records, heads, anchors and archives sealed before a rotation keep verifying, later
ones are sealed with the new key and name it, an old key (leaked) forges nothing after a chain's rotation point,
and a key removed too early is said plainly, apart from tampering (real PostgreSQL and Redis)."""

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command

from apps.audit.models import AuditArchive, AuditChainHead, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import (
    CHAINED_FIELDS,
    PRIMARY_CHAIN,
    _seal,
    audit_chain_open,
    audit_partitions_ensure,
    audit_record_batch,
    chain_hash,
    chain_key_id,
    head_seal,
    head_sealed_by,
    key_rollout_grace,
)
from apps.caching import stack as stack_module
from apps.clinical.services import patient_create
from tests.audit.helpers import run_verify, ward_app_entry
from tests.helpers import embedded_env, run_python

pytestmark = pytest.mark.django_db

NEW = "rotated-audit-key-7f3c2a9e41d84b6c9e0f1a2b3c4d5e6f"
NEWER = "rotated-again-audit-key-0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def _id(key: str) -> str:
    return chain_key_id(key.encode())


@pytest.fixture
def old(settings) -> str:
    """The key the trail was sealed with so far (the primary chain's head was sealed with it by the migration)."""
    return settings.AUDIT_CHAIN_KEY


def _rotate(settings, current: str, *fallbacks: str) -> None:
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = current, list(fallbacks)


def _at(minutes: float) -> datetime:
    return datetime(2026, 3, 2, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def _write(*minutes: float, chain: str = PRIMARY_CHAIN) -> list[AuditEvent]:
    return audit_record_batch([ward_app_entry(recorded_at=_at(m), resource_id=str(m)) for m in minutes], chain=chain)


def _sealed_as_before_key_ids(*minutes: float) -> list[AuditEvent]:
    """Records as the code before migration 0012 sealed them: no key id, the key not in their HMAC."""
    head = AuditChainHead.objects.select_for_update().get(name=PRIMARY_CHAIN)
    events = _seal([ward_app_entry(recorded_at=_at(m)) for m in minutes], chain_id=head.pk, seq=head.seq,
                   prev_hash=head.last_hash)  # fmt: skip
    previous = head.last_hash
    for event in events:
        event.key_id, event.prev_hash = None, previous
        event.hash = previous = chain_hash({name: getattr(event, name) for name in CHAINED_FIELDS})
    AuditEvent.objects.bulk_create(events)
    AuditChainHead.objects.filter(pk=head.pk).update(
        seq=events[-1].seq, last_hash=previous, seal=head_seal(head.name, events[-1].seq, previous)
    )
    return events


def _forge_at_end(key: str, *, minutes: float, name_key: bool = True) -> AuditEvent:
    """What a holder of a retired key and write access to the database can append: a record sealed with that key
    at the primary chain's end, its head moved and sealed with the same key."""
    head = AuditChainHead.objects.get(name=PRIMARY_CHAIN)
    values = {name: getattr(ward_app_entry(recorded_at=_at(minutes)), name, None) for name in CHAINED_FIELDS}
    values.update(chain_id=head.pk, seq=head.seq + 1, prev_hash=head.last_hash, key_id=_id(key) if name_key else None)
    values["hash"] = chain_hash(values, key.encode())
    forged = AuditEvent.objects.create(**values)
    AuditChainHead.objects.filter(pk=head.pk).update(
        seq=forged.seq, last_hash=forged.hash, seal=head_seal(head.name, forged.seq, forged.hash, key.encode())
    )
    return forged


def test_records_sealed_before_a_rotation_verify_after_it_and_later_ones_name_the_new_key(settings, old):
    _write(0, 1, 2)
    _rotate(settings, NEW, old)
    _write(3, 4)
    assert [event.key_id for event in AuditEvent.objects.order_by("seq")] == [_id(old)] * 3 + [_id(NEW)] * 2
    report = audit_chain_verify()
    assert report.ok, report
    assert report.records_by_key == {_id(old): 3, _id(NEW): 2} and report.heads_by_key == {_id(NEW): 1}
    status, out = run_verify()
    assert status == 0, out
    assert f"KEY      {_id(NEW)} (AUDIT_CHAIN_KEY) seals 2 record(s), 1 chain head(s)\n" in out
    assert f"KEY      {_id(old)} (fallback 1) seals 3 record(s)\n" in out
    # A second rotation: the first key is now the older fallback, and still needed.
    _rotate(settings, NEWER, NEW, old)
    _write(5)
    report = audit_chain_verify()
    assert report.ok and report.records_by_key == {_id(old): 3, _id(NEW): 2, _id(NEWER): 1}


def test_records_sealed_before_records_named_their_key_verify_with_the_key_that_sealed_them(settings, old):
    _sealed_as_before_key_ids(0, 1)
    _rotate(settings, NEW, old)
    _write(2)
    report = audit_chain_verify()
    assert report.ok, report
    assert report.records_by_key == {_id(old): 2, _id(NEW): 1}


def test_the_key_id_is_sealed_a_record_cannot_be_made_to_name_another_key(settings, old):
    (event,) = _write(0)
    values = {name: getattr(event, name) for name in CHAINED_FIELDS}
    assert chain_hash(values) == event.hash
    assert chain_hash({**values, "key_id": None}) != event.hash  # the same key, the id dropped
    _rotate(settings, NEW, old)
    assert chain_hash({**values, "key_id": _id(NEW)}) != event.hash


@pytest.mark.parametrize("name_key", [True, False], ids=["naming-the-old-key", "naming-no-key"])
def test_a_record_forged_with_the_old_key_after_the_rotation_point_is_a_finding(settings, old, name_key):
    _write(0, 1)
    _rotate(settings, NEW, old)
    _write(2, 3 + key_rollout_grace().total_seconds() / 60)  # the chain goes on past the rollout's grace
    # Dated inside the grace, after the last genuine record: its own date does not bring it back in.
    forged = _forge_at_end(old, minutes=10, name_key=name_key)
    report = audit_chain_verify()
    assert not report.ok
    assert report.older_key_records == [(PRIMARY_CHAIN, forged.seq, forged.key_id)]
    assert not (report.edited or report.relinked or report.forged_heads or report.unconfigured_keys)
    status, out = run_verify()
    assert status == 1 and f"OLD KEY  record #{forged.seq} of chain {PRIMARY_CHAIN}: sealed with " in out
    assert "Audit trail tampered with" in out


def test_old_key_records_during_a_two_step_rolling_rotation_are_no_finding(settings, old):
    """A rolling rotation in two steps: every pod first learns the new key as a fallback, then it becomes the
    current key. Pods not yet restarted append to the shared primary chain with the old key meanwhile, and reseal
    its head (sealed with the new key, which they know by then)."""
    _write(0)
    _rotate(settings, old, NEW)  # step 1, everywhere: nothing sealed with the new key yet
    _write(1)
    _rotate(settings, NEW, old)  # step 2, a restarted pod
    _write(2)
    _rotate(settings, old, NEW)  # a pod step 2 has not reached yet
    _write(3, 20)
    _rotate(settings, NEW, old)
    _write(30, 24 * 60)
    report = audit_chain_verify()
    assert report.ok, report
    assert report.records_by_key == {_id(old): 4, _id(NEW): 3}


def test_a_head_sealed_with_a_key_a_process_does_not_know_is_left_to_one_that_knows_both(settings, old):
    """A pod that does not know the new key cannot tell a head it sealed from a forged one, and leaves it as found;
    the next append of a pod that knows both keys seals it again (a one-step rotation heals)."""
    _write(0)
    _rotate(settings, NEW, old)
    _write(1)
    _rotate(settings, old)
    _write(2)
    _rotate(settings, NEW, old)
    assert audit_chain_verify().forged_heads == [PRIMARY_CHAIN]
    _write(3)
    assert audit_chain_verify().ok


def test_a_key_removed_from_the_fallbacks_is_said_plainly_not_as_tampering(settings, old):
    _write(0, 1, 2)
    _rotate(settings, NEW, old)
    _write(3)
    _rotate(settings, NEW)  # the old key dropped while records still need it
    report = audit_chain_verify()
    assert report.unconfigured_keys == {_id(old): 3} and not report.edited and not report.ok
    status, out = run_verify()
    assert status == 1
    assert (
        f"UNKEYED  3 record(s) sealed with key {_id(old)}, not configured: add it to AUDIT_CHAIN_KEY_FALLBACKS" in out
    )
    assert "Audit trail not verified" in out and "tampered" not in out and "EDITED" not in out


def test_a_fallback_nothing_needs_any_more_is_said_to_be_removable(settings, old):
    _rotate(settings, NEW, old)
    _write(0)
    status, out = run_verify()
    assert status == 0, out
    assert f"KEY      {_id(old)} (fallback 1) seals nothing: no record, head or archive record" in out


def test_chain_heads_and_anchors_verify_across_a_rotation(settings, old, tmp_path):
    _write(0)
    idle = audit_chain_open(name="host:1:idle")
    _write(1, chain=idle.name)
    anchors = tmp_path / "anchors.json"
    call_command("audit", "verify", "--anchor", str(anchors), stdout=StringIO())
    _rotate(settings, NEW, old)
    _write(2)
    head = AuditChainHead.objects.get(name=idle.name)
    assert head_sealed_by(head) == _id(old)  # idle since the rotation: sealed with the old key, still verifies
    report = audit_chain_verify(anchors=json.loads(anchors.read_text())["chains"])
    assert report.ok, report
    assert report.heads_by_key == {_id(NEW): 1, _id(old): 1}
    call_command("audit", "verify", "--anchor", str(anchors), stdout=StringIO())
    _write(3, chain=idle.name)  # its next append seals it with the new key
    assert head_sealed_by(AuditChainHead.objects.get(name=idle.name)) == _id(NEW)
    call_command("audit", "verify", "--anchor", str(anchors), stdout=StringIO())


def _archive(folder: Path, before: str) -> str:
    out = StringIO()
    call_command("audit", "archive", "--before", before, "--to", str(folder), "--drop", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_archived_months_verify_across_a_rotation(settings, old, tmp_path):
    audit_partitions_ensure(months_ahead=1, today=date(2025, 1, 1))
    january, february = datetime(2025, 1, 5, tzinfo=UTC), datetime(2025, 2, 5, tzinfo=UTC)
    audit_record_batch([ward_app_entry(recorded_at=january + timedelta(hours=h)) for h in range(2)])
    audit_record_batch([ward_app_entry(recorded_at=february + timedelta(hours=h)) for h in range(2)])
    assert "partition dropped" in _archive(tmp_path, "2025-02")  # January: its archive record sealed with the old key
    _rotate(settings, NEW, old)
    audit_record_batch([ward_app_entry(recorded_at=february + timedelta(hours=h)) for h in range(2, 4)])
    # February, archived after the rotation: a file of records of both keys, its archive record sealed with the new.
    assert "partition dropped" in _archive(tmp_path, "2025-03")
    report = audit_chain_verify(archives=tmp_path)
    assert report.ok, report
    assert report.archives_by_key == {_id(old): 1, _id(NEW): 1} and report.archived == 6
    status, out = run_verify()
    assert status == 0, out
    # The old key removed: January's archive record and the old records in both files need it.
    _rotate(settings, NEW)
    report = audit_chain_verify(archives=tmp_path)
    assert report.forged_archives == ["audit_auditevent_y2025m01"]
    unkeyed = [problem for problem in report.archive_problems if problem.startswith("UNKEYED")]
    assert len(unkeyed) == 4 and all(f"sealed with key {_id(old)}, not configured" in line for line in unkeyed)
    assert AuditArchive.objects.count() == 2


# --- SECRET_KEY rotation: everything derived from it -------------------------------------------------------------


def _derived(secret: str) -> dict:
    """What controlplane/settings.py derives from a SECRET_KEY when the secrets are not set on their own."""
    import base64

    return {
        "AUDIT_CHAIN_KEY": hashlib.sha256(f"audit-chain:{secret}".encode()).hexdigest(),
        "CACHE_KEY_SECRET": hashlib.sha256(f"cache-keys:{secret}".encode()).hexdigest(),
        "CACHE_ENCRYPTION_KEYS": [
            base64.urlsafe_b64encode(hashlib.sha256(f"cache-encryption:{secret}".encode()).digest()).decode()
        ],
    }


DUMP = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in (
    "SECRET_KEY_FALLBACKS", "AUDIT_CHAIN_KEY", "AUDIT_CHAIN_KEY_FALLBACKS", "CACHE_KEY_SECRET", "CACHE_ENCRYPTION_KEYS"
)}))
"""


def test_settings_derive_the_chain_key_and_its_fallbacks_from_secret_key_and_its_fallbacks(tmp_path):
    env = embedded_env(tmp_path, DEBUG="true", SECRET_KEY="new-secret", SECRET_KEY_FALLBACKS="old-secret, older")
    result = run_python(DUMP, env)
    assert result.returncode == 0, result.stderr
    dumped = json.loads(result.stdout.strip().splitlines()[-1])
    derived = _derived("new-secret")
    assert dumped == {
        **derived,
        "SECRET_KEY_FALLBACKS": ["old-secret", "older"],
        "AUDIT_CHAIN_KEY_FALLBACKS": [_derived("old-secret")["AUDIT_CHAIN_KEY"], _derived("older")["AUDIT_CHAIN_KEY"]],
    }
    # Set on its own, the chain key has only its own fallbacks.
    env.update(AUDIT_CHAIN_KEY="explicit-key", AUDIT_CHAIN_KEY_FALLBACKS="retired-1,retired-2")
    dumped = json.loads(run_python(DUMP, env).stdout.strip().splitlines()[-1])
    assert (dumped["AUDIT_CHAIN_KEY"], dumped["AUDIT_CHAIN_KEY_FALLBACKS"]) == (
        "explicit-key",
        ["retired-1", "retired-2"],
    )
    env.update(AUDIT_CHAIN_KEY_FALLBACKS="retired-1,explicit-key")
    result = run_python(DUMP, env)
    assert result.returncode != 0 and "AUDIT_CHAIN_KEY_FALLBACKS" in result.stderr


@pytest.fixture
def clinician(api, issue_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', name='ward-app')}")
    return api


@pytest.fixture
def patients(db) -> list:
    born = date(1970, 5, 4)
    return [
        patient_create(mrn=f"MRN-00088{n}", family_name="Rotaru", given_name=given, birth_date=born, sex="female")
        for n, given in enumerate(["Ana", "Ioana"])
    ]


def _restarted(monkeypatch) -> None:
    """A process started on the new settings: its cache stack is built from them (Redis keeps what it held)."""
    monkeypatch.setattr(stack_module, "_default", None)


def _read(clinician, patient) -> dict:
    response = clinician.get(f"/api/v1/patients/{patient.pk}/")
    assert response.status_code == 200, response.content[:300]
    return response.json()


def test_a_secret_key_rotation_keeps_phi_reads_and_the_trail_verifying(settings, clinician, patients, monkeypatch):
    """SECRET_KEY rotated, its old value in SECRET_KEY_FALLBACKS, the secrets derived from it as settings derive them
    (the test above): a PHI read before and after, each audited under its key, and `audit verify` clean."""
    first = patients[0]
    old_secret, old_chain_key = settings.SECRET_KEY, settings.AUDIT_CHAIN_KEY
    before = [_read(clinician, first) for _ in range(2)]
    page = clinician.get("/fhir/Patient", {"family": "Rotaru", "_count": 1})
    assert page.status_code == 200
    (next_url,) = [link["url"] for link in page.json()["link"] if link["relation"] == "next"]

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "rotated-secret-key-after-a-leak-" + "x" * 30, [old_secret]
    for name, value in _derived(settings.SECRET_KEY).items():
        setattr(settings, name, value)
    settings.AUDIT_CHAIN_KEY_FALLBACKS = [old_chain_key]
    _restarted(monkeypatch)
    after = [_read(clinician, first) for _ in range(2)]
    assert after == before and after[0]["family_name"] == "Rotaru"
    reads = list(AuditEvent.objects.filter(action="read", patient_id=first.pk).order_by("seq"))
    # The old cache keys are not the new ones: the first read after is a miss, then hits again.
    assert [(read.key_id, read.served_from_cache) for read in reads] == [
        (_id(old_chain_key), False), (_id(old_chain_key), True),
        (_id(settings.AUDIT_CHAIN_KEY), False), (_id(settings.AUDIT_CHAIN_KEY), True),
    ]  # fmt: skip
    # A FHIR cursor signed before is a 400 OperationOutcome on _cursor (the search is asked again), never a 500.
    cursor = parse_qs(urlparse(next_url).query)["_cursor"][0]
    refused = clinician.get("/fhir/Patient", {"family": "Rotaru", "_count": 1, "_cursor": cursor})
    assert refused.status_code == 400 and refused.json()["resourceType"] == "OperationOutcome"
    assert "_cursor" in json.dumps(refused.json())
    status, out = run_verify()
    assert status == 0, out
    assert f"KEY      {_id(old_chain_key)} (fallback 1) seals " in out


def test_cache_entries_sealed_with_a_rotated_encryption_key_are_misses(settings, clinician, patients, monkeypatch):
    """CACHE_KEY_SECRET kept (set on its own), the encryption key derived from a rotated SECRET_KEY: the same cache
    keys find entries sealed with the old key, which no longer open. Each is a miss, read from the database."""
    first = patients[0]
    before = _read(clinician, first)
    settings.CACHE_ENCRYPTION_KEYS = _derived("rotated-secret-key-after-a-leak")["CACHE_ENCRYPTION_KEYS"]
    _restarted(monkeypatch)
    assert _read(clinician, first) == before
    assert _read(clinician, first) == before
    reads = AuditEvent.objects.filter(action="read", patient_id=first.pk).order_by("seq")
    assert [read.served_from_cache for read in reads] == [False, False, True]
