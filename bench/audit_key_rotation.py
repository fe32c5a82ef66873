"""Audit chain key rotation: what naming the sealing key and checking the key order costs `audit verify`.

In one run, on a fresh database of its own (dropped and made again each run):
  * N records sealed as before records named their key (no key id, one key);
  * the baseline: `audit verify` with each record checked as before key rotation existed (one HMAC with the current
    key, compared: selectors._KeyOrder.check replaced by that check for the run);
  * `audit verify` as it is now on the same N records (the key found for each, counted, its order checked);
  * rotated: N more records sealed with a new key (the old one a fallback), both again over the 2N (the baseline's
    HMAC fails on half of them, at the same cost).
Each in records/s; "rate_ratio_vs_baseline" is now's rate over the baseline's on the same records (1.0: no cost).
Baseline and now run in turns, --rounds times, the fastest of each kept (a shared machine).

Run:  .venv/bin/python bench/audit_key_rotation.py [--records 100000]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import django_setup, emit, progress

BATCH = 5000
NEW_KEY = "bench-rotated-audit-chain-key-" + "r" * 34


def fresh_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _entries(first: int, count: int, start: datetime) -> list:
    from apps.audit.services import AuditEntry

    return [
        AuditEntry(
            actor_type="client", actor_id=1 + n % 7, actor_name=f"ward-app-{n % 7}", action="read",
            resource_type="Patient", resource_id=str(10_000 + n % 50_000), patient_id=10_000 + n % 50_000,
            source_ip=f"10.1.{n % 4}.{n % 200}", request_id=f"{n:032x}", recorded_at=start + timedelta(seconds=n),
        )
        for n in range(first, first + count)
    ]  # fmt: skip


def seed_unnamed(records: int, start: datetime) -> None:
    """Records as the code before key ids sealed them: the key's id neither kept nor in the HMAC."""
    from django.db import transaction

    from apps.audit.models import AuditChainHead, AuditEvent
    from apps.audit.services import CHAINED_FIELDS, PRIMARY_CHAIN, _seal, chain_hash, head_seal

    for offset in range(0, records, BATCH):
        with transaction.atomic():
            head = AuditChainHead.objects.select_for_update().get(name=PRIMARY_CHAIN)
            events = _seal(_entries(offset, min(BATCH, records - offset), start), chain_id=head.pk, seq=head.seq,
                           prev_hash=head.last_hash)  # fmt: skip
            previous = head.last_hash
            for event in events:
                event.key_id, event.prev_hash = None, previous
                event.hash = previous = chain_hash({name: getattr(event, name) for name in CHAINED_FIELDS})
            AuditEvent.objects.bulk_create(events)
            AuditChainHead.objects.filter(pk=head.pk).update(
                seq=events[-1].seq, last_hash=previous, seal=head_seal(head.name, events[-1].seq, previous)
            )
        progress(f"seeded {min(offset + BATCH, records):,} of {records:,} records without key ids")


def seed_named(records: int, start: datetime) -> None:
    from apps.audit.services import audit_record_batch

    for offset in range(0, records, BATCH):
        audit_record_batch(_entries(offset, min(BATCH, records - offset), start))
    progress(f"seeded {records:,} records sealed with the new key")


def verify_seconds(*, as_before: bool) -> float:
    """One `audit verify`. `as_before`: each record checked as before rotation existed (one HMAC with the current
    key, compared), the baseline; after the rotation the HMAC fails on the other key's records at the same cost,
    and they are counted, not listed (printing them would be timed too)."""
    from django.conf import settings
    from django.core.management import call_command

    from apps.audit import selectors
    from apps.audit.services import chain_hash

    key = settings.AUDIT_CHAIN_KEY.encode()
    current = selectors._KeyOrder.check
    mismatched = []

    def check_before_rotation(self, row: dict) -> None:
        if chain_hash(row, key) != row["hash"]:
            mismatched.append(row["seq"])

    if as_before:
        selectors._KeyOrder.check = check_before_rotation
    started = time.perf_counter()
    try:
        call_command("audit", "verify", stdout=io.StringIO(), stderr=io.StringIO())
    finally:
        selectors._KeyOrder.check = current
    return time.perf_counter() - started


def alternated(rounds: int) -> tuple[float, float]:
    """The fastest baseline and the fastest verify as it is now, run in turns: a shared machine's load falls on
    both alike."""
    baseline, now = float("inf"), float("inf")
    for _ in range(rounds):
        baseline = min(baseline, verify_seconds(as_before=True))
        now = min(now, verify_seconds(as_before=False))
    return baseline, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="Records before the rotation (as many after).")
    parser.add_argument("--rounds", type=int, default=3, help="Turns of baseline and now; the fastest of each kept.")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/cp_bench_audit_key_rotation",
        help="The bench's own database: DROPPED and made again each run.",
    )
    args = parser.parse_args()
    if args.records < 1 or args.rounds < 1:
        parser.error("--records and --rounds must be above 0")
    if "bench" not in args.database_url.rsplit("/", 1)[1]:  # it is dropped: never a product's database by a slip
        parser.error("--database-url must name a bench database (its name containing 'bench'): it is dropped")
    fresh_database(args.database_url)
    django_setup(args.database_url)
    from django.conf import settings
    from django.db import connection

    start = datetime.now(UTC) - timedelta(days=2)
    seed_unnamed(args.records, start)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    progress("audit verify, as before rotation (baseline) and as it is now, in turns")
    baseline_s, now_s = alternated(args.rounds)

    old_key = settings.AUDIT_CHAIN_KEY
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW_KEY, [old_key]
    seed_named(args.records, start + timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    progress("after the rotation (half the records per key): baseline and now, in turns")
    rotated_baseline_s, rotated_s = alternated(args.rounds)

    def figure(seconds: float, records: int, baseline: float) -> dict:
        return {
            "seconds": round(seconds, 3),
            "records_per_s": round(records / seconds),
            "rate_ratio_vs_baseline": round(baseline / seconds, 3),
        }

    emit({
        "records_before_rotation": args.records,
        "one_key": {
            "baseline": figure(baseline_s, args.records, baseline_s),
            "now": figure(now_s, args.records, baseline_s),
        },
        "after_rotation_two_keys": {
            "baseline": figure(rotated_baseline_s, 2 * args.records, rotated_baseline_s),
            "now": figure(rotated_s, 2 * args.records, rotated_baseline_s),
        },
    })  # fmt: skip


if __name__ == "__main__":
    main()
