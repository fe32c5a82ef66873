"""Audit archiving: how fast a past month of the trail leaves the database as verifiable files.

In one run, on a fresh database of its own (dropped and made again each run, so no archive of an earlier run is
verified with it):
  * N audit records back-dated into one past month (its monthly partition made as the partition task makes it
    ahead; the records sealed through audit_record_batch, as the tests do);
  * the baseline: a raw `COPY (SELECT * FROM <partition>) TO STDOUT` of that partition, read and thrown away;
  * the export (`audit archive` without --drop: file written, read back, checked against the database), the
    drop (`audit archive --drop` on the file already there: the partition read again under its lock, recorded
    and dropped) and `audit verify --archives DIR`, each in records/s and as a ratio of the COPY.

Run:  .venv/bin/python bench/audit_archive.py [--records 200000]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import BENCH_VAR_DIR, django_setup, emit, progress

MONTH = date(2001, 1, 1)  # long past: archive_months takes it, and nothing else writes there
PARTITION = f"audit_auditevent_y{MONTH:%Y}m{MONTH:%m}"
BATCH = 5000


def fresh_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(records: int) -> float:
    """N records spread over the month, the way a hospital's reads look (a few apps, many patients)."""
    from apps.audit.services import AuditEntry, audit_partitions_ensure, audit_record_batch

    audit_partitions_ensure(months_ahead=0, today=MONTH)
    started = time.perf_counter()
    step = timedelta(days=28) / records
    first = datetime(MONTH.year, MONTH.month, 1, tzinfo=UTC)
    for offset in range(0, records, BATCH):
        audit_record_batch([
            AuditEntry(
                actor_type="client", actor_id=1 + n % 7, actor_name=f"ward-app-{n % 7}", action="read",
                resource_type="Patient", resource_id=str(10_000 + n % 50_000), patient_id=10_000 + n % 50_000,
                source_ip=f"10.1.{n % 4}.{n % 200}", request_id=f"{n:032x}", recorded_at=first + step * n,
            )
            for n in range(offset, min(offset + BATCH, records))
        ])  # fmt: skip
        progress(f"seeded {min(offset + BATCH, records):,} of {records:,} records")
    return time.perf_counter() - started


def raw_copy_seconds() -> tuple[float, int]:
    """The floor: PostgreSQL sending the partition's rows as text, nothing done with them."""
    from django.db import connection

    connection.ensure_connection()
    started = time.perf_counter()
    size = 0
    with connection.cursor() as cursor, cursor.copy(f'COPY (SELECT * FROM "{PARTITION}") TO STDOUT') as copy:  # noqa: S608
        for block in copy:
            size += len(block)
    return time.perf_counter() - started, size


def timed_command(*arguments: str) -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command(*arguments, stdout=io.StringIO(), stderr=io.StringIO())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="Records in the archived month.")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/cp_bench_audit_archive",
        help="The bench's own database: DROPPED and made again each run.",
    )
    args = parser.parse_args()
    if args.records < 1:
        parser.error("--records must be above 0")
    if "bench" not in args.database_url.rsplit("/", 1)[1]:  # it is dropped: never a product's database by a slip
        parser.error("--database-url must name a bench database (its name containing 'bench'): it is dropped")
    fresh_database(args.database_url)
    django_setup(args.database_url)
    folder = BENCH_VAR_DIR / "audit_archive"
    shutil.rmtree(folder, ignore_errors=True)

    progress(f"seeding {args.records:,} records into {PARTITION}")
    seed_s = seed(args.records)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM ANALYZE "{PARTITION}"')

    progress("raw COPY of the partition (twice: the first warms the cache)")
    raw_copy_seconds()
    copy_s, copy_bytes = raw_copy_seconds()
    before = f"{MONTH.year + (MONTH.month // 12)}-{MONTH.month % 12 + 1:02d}"
    progress("export (audit archive, no --drop)")
    export_s = timed_command("audit", "archive", "--before", before, "--to", str(folder))
    file_bytes = (folder / f"{PARTITION}.jsonl.gz").stat().st_size
    progress("drop (audit archive --drop, the file already there)")
    drop_s = timed_command("audit", "archive", "--before", before, "--to", str(folder), "--drop")
    progress("audit verify --archives")
    verify_s = timed_command("audit", "verify", "--archives", str(folder))

    def figure(seconds: float) -> dict:
        return {
            "seconds": round(seconds, 3),
            "records_per_s": round(args.records / seconds),
            "ratio_vs_raw_copy": round(seconds / copy_s, 2),
        }

    emit({
        "records": args.records,
        "seed_s": round(seed_s, 1),
        "raw_copy": {**figure(copy_s), "bytes": copy_bytes},
        "export": {**figure(export_s), "file_bytes": file_bytes},
        "drop_after_export": figure(drop_s),
        "verify_archives": figure(verify_s),
    })  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
