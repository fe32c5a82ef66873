"""Archiving the audit trail: whole past months moved out to files that stay verifiable (`audit archive`).

A monthly partition is exported to a gzip JSON-lines file (every column a record's HMAC covers, its hash and id),
read back and checked against the database, and only then (`--drop`) recorded as an AuditArchive (the runs of
each chain it held, sealed with the chain key) and detached and dropped in the same transaction. `audit verify`
resumes each chain at the archived boundaries; `audit verify --archives DIR` checks the files themselves.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.audit.models import AuditArchive, AuditChainHead, AuditEvent
from apps.audit.services import (
    CHAIN_BREAK,
    CHAIN_BREAK_ACKNOWLEDGED,
    CHAINED_FIELDS,
    PARTITION_LOCK_TIMEOUT,
    PRIMARY_CHAIN,
    AuditEntry,
    ChainKeys,
    _chain_key,
    _next_month,
    audit_record_batch,
    chain_keys,
    record_sealed_by,
)

ARCHIVE_FORMAT = 1
# What a line of an archive file holds, in this order: the record's id, the chained fields, its hash.
ARCHIVE_FIELDS = ("id", *CHAINED_FIELDS, "hash")
_FIELD_SET = frozenset(ARCHIVE_FIELDS)
# The lines of files archived before records named the key that sealed them (AuditEvent.key_id).
_UNNAMED_FIELD_SET = _FIELD_SET - {"key_id"}
_MONTHLY = re.compile(r"^audit_auditevent_y(\d{4})m(\d{2})$")
_READ_CHUNK = 10_000
# zlib's level 1 (Python's gzip defaults to 9): on a month of reads 4.5x faster to write than 9 (0.6 s against
# 2.7 s per 100,000 records, one core) for a file 21% larger (8.9 MB against 7.3 MB); 6 took 1.1 s for 7.6 MB. A
# file is written once and read back a few times, while a hospital's month is over a billion records.
_GZIP_LEVEL = 1
# Told the records handled so far in a partition.
Progress = Callable[[int], None]
# Given a partition and its records (the planner's estimate), the Progress for it.
ProgressFor = Callable[[str, int], Progress]


class ArchiveRefused(Exception):
    """A partition that is not archived (the reason says why); later ones are left alone."""


class ArchiveFailed(Exception):
    """A month failed part-way (a file that could not be written, a database error): `outcomes` says what was done
    before it, `partition` which month was left as it was (its partial file removed), the cause is chained."""

    def __init__(self, partition: str, cause: BaseException, outcomes: list) -> None:
        super().__init__(f"{partition}: {type(cause).__name__}: {cause}")
        self.partition, self.cause, self.outcomes = partition, cause, outcomes


class ArchiveNotAllowed(Exception):
    """Nothing is archived: the database has no monthly partitions, or the months asked for are not all past."""


@dataclass
class Summary:
    """What a partition (or its file) holds, as compared: the count, each chain's runs of consecutive seqs with
    their outer links, the chains its primary records registered; and what does not verify inside it."""

    primary_id: int | None = None
    rows: int = 0
    chains: dict[str, list[list]] = field(default_factory=dict)  # chain id: [[first, prev_hash, last, hash], ...]
    registered: set[int] = field(default_factory=set)
    breaks: list[int] = field(default_factory=list)  # ids of chain-break records (primary) it holds
    edited: list[tuple[int, int]] = field(default_factory=list)  # (chain id, seq)
    relinked: list[tuple[int, int]] = field(default_factory=list)
    # (chain id, seq, key id): a record naming a key no longer configured (AUDIT_CHAIN_KEY_FALLBACKS), not verified.
    unconfigured: list[tuple[int, int, str]] = field(default_factory=list)
    # False: the seals are not recomputed (the partition read again under its lock, already checked in its file).
    check_seals: bool = True
    keys: ChainKeys = field(default_factory=chain_keys, repr=False)
    _last: tuple[int, int, str] | None = None
    # The ids in order: not in any HMAC, so compared on their own (a file or partition whose ids changed differs).
    _ids: object = field(default_factory=hashlib.sha256, repr=False)

    def add(self, row: dict) -> None:
        self.rows += 1
        self._ids.update(b"%d," % row["id"])
        chain, seq = row["chain_id"], row["seq"]
        runs = self.chains.setdefault(str(chain), [])
        if runs and self._last is not None and self._last[:2] == (chain, seq - 1):
            if row["prev_hash"] != self._last[2]:
                self.relinked.append((chain, seq))
            runs[-1][2:] = [seq, row["hash"]]
        else:
            runs.append([seq, row["prev_hash"], seq, row["hash"]])
        if self.check_seals:
            key_id, sealed = record_sealed_by(row, self.keys)
            if not sealed and key_id is not None and key_id not in self.keys.keys:
                self.unconfigured.append((chain, seq, key_id))
            elif not sealed:
                self.edited.append((chain, seq))
        if chain == self.primary_id:
            if row["resource_type"] == "AuditChain" and row["action"] == "create":
                value = str(row["resource_id"])
                if value.isascii() and value.isdigit():
                    self.registered.add(int(value))
            if all(row[key] == value for key, value in CHAIN_BREAK.items()):
                self.breaks.append(row["id"])
        self._last = (chain, seq, row["hash"])

    def key(self) -> tuple:
        return self.rows, self.chains, sorted(self.registered), self._ids.hexdigest()

    @property
    def intact(self) -> bool:
        return not (self.edited or self.relinked or self.unconfigured)


@dataclass
class Exported:
    """A partition's file, written (or an identical one found) and checked against the database."""

    partition: str
    start: datetime
    end: datetime
    path: Path
    sha256: str
    summary: Summary
    reused: bool


def archive_seal(
    *, partition: str, range_start: datetime, range_end: datetime, file_name: str, sha256: str, row_count: int,
    chains: dict, registered_chains: list[int], key: bytes | None = None,
) -> str:  # fmt: skip
    """HMAC over what an archive record says: one made up to cover deleted records needs the key (`key`: the current
    one)."""
    body = json.dumps(
        [partition, _instant(range_start), _instant(range_end), file_name, sha256, row_count, chains,
         sorted(registered_chains)],
        sort_keys=True, separators=(",", ":"),
    )  # fmt: skip
    return hmac.new(key or _chain_key(), b"archive\x1f" + body.encode(), hashlib.sha256).hexdigest()


def archive_sealed_by(archive: AuditArchive) -> str | None:
    """The id of the configured key whose seal an archive record holds (one made before a rotation holds the old
    key's, for good: the record is append-only), None when none does."""
    for key_id, key in chain_keys().keys.items():
        seal = archive_seal(
            partition=archive.partition, range_start=archive.range_start, range_end=archive.range_end,
            file_name=archive.file_name, sha256=archive.sha256, row_count=archive.row_count, chains=archive.chains,
            registered_chains=archive.registered_chains, key=key,
        )  # fmt: skip
        if hmac.compare_digest(archive.seal or "", seal):
            return key_id
    return None


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _primary_id() -> int | None:
    return AuditChainHead.objects.filter(name=PRIMARY_CHAIN).values_list("pk", flat=True).first()


def archive_months(*, before: date) -> list[tuple[str, datetime, datetime]]:
    """The attached monthly partitions wholly before `before` (a month's first day), oldest first. ArchiveNotAllowed
    for a `before` past the current month (UTC): a month still being written is never archived."""
    this_month = timezone.now().astimezone(UTC).date().replace(day=1)
    if before > this_month:
        raise ArchiveNotAllowed(
            f"--before {before:%Y-%m} would take the current month ({this_month:%Y-%m}) or later: only months "
            f"wholly past can be archived (at most --before {this_month:%Y-%m})"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relid::regclass::text FROM pg_partition_tree(%s::regclass) WHERE isleaf",
            [AuditEvent._meta.db_table],
        )
        names = sorted(row[0].strip('"') for row in cursor.fetchall())
    months = []
    for name in names:
        match = _MONTHLY.match(name)
        if match is None:  # the default partition: never archived
            continue
        start = date(int(match[1]), int(match[2]), 1)
        end = _next_month(start)
        if end <= before:
            months.append((name, _utc(start), _utc(end)))
    return months


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def archive_default_left(*, before: date) -> int:
    """How many records before `before` sit in the default partition (written while their month had no partition of
    its own): archiving never takes them, since the default partition also takes every month to come."""
    table = f"{AuditEvent._meta.db_table}_default"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [table])
        if cursor.fetchone()[0] is None:
            return 0
        cursor.execute(f'SELECT count(*) FROM "{table}" WHERE recorded_at < %s', [_utc(before)])  # noqa: S608
        return cursor.fetchone()[0]


# What the comparisons need of a record (Summary.add), next to the line of its file that PostgreSQL builds (C
# instead of a model row, a datetime and json.dumps per record in Python): the chained fields as the HMAC covers
# them (recorded_at in UTC with microseconds, as _instant writes it; source_ip as host() prints it), compact JSON.
# Whatever the file says is read back and every record's HMAC recomputed from it, so a line that did not say what
# the row holds is refused, never archived.
_SUMMARY_COLUMNS = ("id", "chain_id", "seq", "prev_hash", "hash", "actor_name", "action", "resource_type",
                    "resource_id", "outcome")  # fmt: skip
_LINE = (
    "SELECT r.id, r.chain_id, r.seq, r.prev_hash, r.hash, r.actor_name, r.action, r.resource_type, r.resource_id, "
    "r.outcome, row_to_json(r)::text FROM (SELECT id, chain_id, seq, "
    "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') AS recorded_at, actor_type, "
    "actor_id, actor_name, action, resource_type, resource_id, patient_id, outcome, host(source_ip) AS source_ip, "
    "purpose_of_use, request_id, query_digest, result_count, served_from_cache, prev_hash, patient_ids, key_id, hash "
    'FROM "{table}" ORDER BY chain_id, seq, id) r'
)
_SUMMARY_ONLY = (
    "SELECT id, chain_id, seq, prev_hash, hash, actor_name, action, resource_type, resource_id, outcome "
    'FROM "{table}" ORDER BY chain_id, seq, id'
)


def _partition_chunks(query: str) -> Iterator[list[tuple]]:
    """A partition's records in (chain, seq, id) order, a chunk at a time. Read from the partition itself through a
    server-side cursor: the parent table is not held (the partition task's CREATE needs it), and only a chunk is in
    memory. Call inside a transaction (a cursor WITH HOLD would copy the month at once)."""
    cursor = connection.chunked_cursor()
    try:
        cursor.execute(query)
        while chunk := cursor.fetchmany(_READ_CHUNK):
            yield chunk
    finally:
        cursor.close()


def _summarize(summary: Summary, rows: list[tuple]) -> None:
    for values in rows:
        summary.add(dict(zip(_SUMMARY_COLUMNS, values, strict=False)))  # an export's row ends with its line


def _estimate(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return max(row[0], 0) if row else 0


class _Hashing:
    """A file read through: the SHA-256 of every byte read, so reading a file back also gives its digest."""

    def __init__(self, raw) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        block = self.raw.read(size)
        self.digest.update(block)
        return block


def archive_file_read(path: Path, primary_id: int | None) -> tuple[Summary, str]:
    """Read an archive file back: every record's HMAC recomputed, every link inside a run checked; and the file's
    SHA-256, from the same read."""
    summary = Summary(primary_id=primary_id)
    with path.open("rb") as raw:
        hashing = _Hashing(raw)
        with gzip.GzipFile(fileobj=hashing, mode="rb") as data:
            rest = b""
            while block := data.read(1 << 20):
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                _read_lines(summary, lines, path)
            if rest:  # a last line with no newline
                _read_lines(summary, [rest], path)
        while hashing.read(1 << 20):  # whatever follows the gzip stream is the file's too
            pass
    return summary, hashing.digest.hexdigest()


def _read_lines(summary: Summary, lines: list[bytes], path: Path) -> None:
    # One json.loads for a block of lines (a third of the parsing time of one a line); a line holding anything but
    # one record (two of them, none) makes the counts differ, and is then looked for line by line.
    try:
        rows = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        rows = []
    if len(rows) != len(lines):
        rows = []
        for number, line in enumerate(lines, start=summary.rows + 1):
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path.name}: line {number} is not an archived record") from exc
    for row in rows:
        if not isinstance(row, dict) or (row.keys() != _FIELD_SET and row.keys() != _UNNAMED_FIELD_SET):
            raise ValueError(f"{path.name}: line {summary.rows + 1} is not an archived record")
        summary.add(row)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _problem(summary: Summary) -> str | None:
    if summary.unconfigured:
        chain, seq, key_id = summary.unconfigured[0]
        return (
            f"record #{seq} of chain {chain} is sealed with key {key_id}, not configured: add it to "
            "AUDIT_CHAIN_KEY_FALLBACKS"
        )
    if summary.edited:
        chain, seq = summary.edited[0]
        return f"record #{seq} of chain {chain} no longer matches its seal"
    if summary.relinked:
        chain, seq = summary.relinked[0]
        return f"record #{seq} of chain {chain} does not follow the record before it"
    return None


def archive_deployment() -> str:
    """Which database this is, kept in every manifest: PostgreSQL's system identifier (set once by initdb, kept by
    physical replicas and restores of the cluster) where this role may read it, and the database's name. Two
    deployments archiving to one folder must never take each other's files for their own."""
    with connection.cursor() as cursor:
        try:
            with transaction.atomic():
                cursor.execute("SELECT system_identifier::text FROM pg_control_system()")
                system = cursor.fetchone()[0]
        except DatabaseError:  # not granted to this role: the database's name alone
            system = "unknown"
        cursor.execute("SELECT current_database()")
        return f"{system}/{cursor.fetchone()[0]}"


class ArchiveFileExists(ArchiveRefused):
    """A file of the same name is already there and is not what this export writes: it is never replaced."""


def _manifest_deployment(path: Path) -> str | None:
    """The deployment a manifest names; None when it names none (or is no manifest)."""
    try:
        value = json.loads(path.read_text()).get("deployment")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _place(partial: Path, path: Path, digest: str) -> bool:
    """Give the checked `partial` its final name without ever replacing a file there: a hard link fails if the name
    exists (no window where a second writer's file is overwritten). True when an identical file (same SHA-256) was
    already there and is kept; ArchiveFileExists when a different one is. The partial is removed either way."""
    try:
        os.link(partial, path)
    except FileExistsError:
        try:
            reused = _sha256(path) == digest
        finally:
            partial.unlink()
        if not reused:
            raise ArchiveFileExists(
                f"{path} exists and is not this export (another SHA-256): it is never replaced (another "
                "deployment's archive, or an earlier, different export of this month); move it aside after "
                "checking it, or archive to another folder"
            ) from None
        return True
    partial.unlink()
    _fsync_dir(path.parent)
    return False


def _create_private(path: Path):
    """A new file only this user can read (it holds PHI), opened for writing; a stale one of ours is replaced."""
    path.unlink(missing_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def archive_export(
    *, partition: str, start: datetime, end: datetime, directory: Path, progress: ProgressFor | None = None
) -> Exported:
    """Export one partition to `directory` (data file, then its manifest), read it back and check it against the
    database. Files are never replaced: an existing file is kept only when it is byte-identical to this export
    (safe to rerun: an operator may have copied it already); a different one, or a manifest naming another
    deployment, refuses the month (ArchiveFileExists). ArchiveRefused too when a record in the partition does not
    verify (`audit verify` reports it; an archive would hide it) or the file read back differs."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{partition}.jsonl.gz"
    manifest_path = directory / f"{partition}.manifest.json"
    deployment = archive_deployment()
    if manifest_path.exists() and (other := _manifest_deployment(manifest_path)) != deployment:
        raise ArchiveFileExists(
            f"{manifest_path} names deployment {other or 'none'}, not this one ({deployment}): another "
            "deployment's archive; archive to a folder of this deployment's own"
        )
    primary_id = _primary_id()
    # The partition's runs and links as the database holds them; the seals are recomputed once, from the file
    # read back (a record that does not verify there is refused as before: its line is the row, as the file will
    # keep it).
    database = Summary(primary_id=primary_id, check_seals=False)
    tick = progress(partition, _estimate(partition)) if progress is not None else None
    partial = path.with_name(f".{path.name}.partial")
    try:
        with _create_private(partial) as raw:
            # mtime 0 and no name in the header: the same records always make the same bytes (and SHA-256).
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=_GZIP_LEVEL) as compressed,
                transaction.atomic(),
            ):
                for chunk in _partition_chunks(_LINE.format(table=partition)):
                    compressed.write(("\n".join(values[-1] for values in chunk) + "\n").encode())
                    _summarize(database, chunk)
                    if tick is not None:
                        tick(database.rows)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:  # disk full, a database error: no partial file (PHI) left behind
        partial.unlink(missing_ok=True)
        raise
    if tick is not None:
        tick(database.rows)
    try:
        written, digest = archive_file_read(partial, primary_id)
    except (OSError, ValueError, EOFError, gzip.BadGzipFile) as exc:
        partial.unlink()
        raise ArchiveRefused(f"{partition}: {partial} read back is unreadable ({type(exc).__name__})") from exc
    if (problem := _problem(database) or _problem(written)) is not None:
        partial.unlink()
        raise ArchiveRefused(f"{partition}: {problem} (see `audit verify`); not archived")
    if written.key() != database.key():
        partial.unlink()
        raise ArchiveRefused(f"{partition}: {partial} read back does not hold the partition's records; not archived")
    reused = _place(partial, path, digest)
    manifest = {
        "format": ARCHIVE_FORMAT,
        "deployment": deployment,
        "partition": partition,
        "range_start": _instant(start),
        "range_end": _instant(end),
        "file": path.name,
        "sha256": digest,
        "rows": database.rows,
        "chains": database.chains,
        "registered_chains": sorted(database.registered),
    }
    body = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    manifest_partial = manifest_path.with_name(f".{manifest_path.name}.partial")
    try:
        with _create_private(manifest_partial) as raw:
            raw.write(body)
            raw.flush()
            os.fsync(raw.fileno())
        _place(manifest_partial, manifest_path, hashlib.sha256(body).hexdigest())
    except BaseException:
        manifest_partial.unlink(missing_ok=True)
        raise
    return Exported(partition, start, end, path, digest, database, reused)


# How long the drop's last step waits for the trail (DETACH needs it to itself, after the primary head): under the
# server's deadlock_timeout (1 s by default), so a writer caught in a cycle with the drop (a record back-dated into
# the month, waiting on the partition while holding the trail) is not the one a deadlock check aborts.
DETACH_LOCK_TIMEOUT = "500ms"


def archive_drop(
    *,
    exported: Exported,
    by: str,
    lock_timeout: str = PARTITION_LOCK_TIMEOUT,
    detach_lock_timeout: str = DETACH_LOCK_TIMEOUT,
) -> AuditArchive:
    """Record the archive and DETACH + DROP its partition, in one transaction.

    The partition is read again first, with no lock anyone waits on (one statement: one snapshot): it must still
    hold exactly what the file holds, and its chain breaks must be acknowledged (verify stops seeing them). That read
    takes as long as the month is big (hours for a busy hospital's month), and any lock held through it holds up a
    writer: a lock on the trail every PHI read's audit record, a lock on the month a writer back-dating a record into
    it, which holds its chain's head while it waits, and so every write of that chain. Then the month is locked
    (SHARE, waiting at most `lock_timeout`) and counted: the trail refuses UPDATE and DELETE (a month whose triggers
    are off is refused before its drop), so the same count and highest id mean the same records; a record added
    since refuses the month. Then, briefly, the primary chain's head (the drop's own record goes there) and the
    trail for DETACH, each waiting at most `detach_lock_timeout`: DETACH needs the trail to itself and every audit
    INSERT queues behind it while it waits. A lock not granted (a long reader of the trail, a writer back-dating a
    record into the month) rolls everything back: the month is left as it was, and a later run finishes it."""
    table = AuditEvent._meta.db_table
    partition = exported.partition
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)", [lock_timeout])
        caller_lock_timeout = cursor.fetchone()[0]
        now = Summary(primary_id=exported.summary.primary_id, check_seals=False)
        highest_id = None
        for chunk in _partition_chunks(_SUMMARY_ONLY.format(table=partition)):
            _summarize(now, chunk)
            highest_id = max(highest_id or 0, max(row[0] for row in chunk))
        if now.key() != exported.summary.key():
            raise ArchiveRefused(f"{partition}: records changed since it was exported; run the archive again")
        cursor.execute(f'LOCK TABLE "{partition}" IN SHARE MODE')
        cursor.execute(f'SELECT count(*), max(id) FROM "{partition}"')  # noqa: S608 - a partition's own name
        if cursor.fetchone() != (now.rows, highest_id):
            raise ArchiveRefused(f"{partition}: records changed since it was exported; run the archive again")
        for record_id in now.breaks:
            acknowledged = AuditEvent.objects.filter(
                chain_id=now.primary_id, resource_type=CHAIN_BREAK_ACKNOWLEDGED, resource_id=str(record_id)
            ).exists()
            if not acknowledged:
                raise ArchiveRefused(
                    f"{partition}: holds the chain break of record {record_id}, not yet acknowledged (`audit "
                    "acknowledge-break`); not dropped"
                )
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [detach_lock_timeout])
        list(AuditChainHead.objects.select_for_update().filter(name=PRIMARY_CHAIN).values_list("pk", flat=True))
        fields = {
            "partition": partition,
            "range_start": exported.start,
            "range_end": exported.end,
            "file_name": exported.path.name,
            "sha256": exported.sha256,
            "row_count": now.rows,
            "chains": now.chains,
            "registered_chains": sorted(now.registered),
        }
        archive = AuditArchive.objects.create(
            **fields, archived_by=by[:150], archived_at=timezone.now(), seal=archive_seal(**fields)
        )
        # A record of its own in the primary chain: who moved which records out, sealed like every record.
        audit_record_batch([
            AuditEntry(
                actor_type=AuditEvent.ActorType.SYSTEM, actor_id=None, actor_name=by[:150], action="delete",
                resource_type="AuditArchive", resource_id=str(archive.pk), result_count=now.rows,
            )
        ])  # fmt: skip
        # Last: from here to the commit the trail is ours alone.
        cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{partition}"')
        cursor.execute(f'DROP TABLE "{partition}"')
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [caller_lock_timeout])
    return archive


def archive_month_findings(report, summary: Summary, partition: str) -> list[str]:
    """What `audit verify` (its ChainReport, `report`) finds in a partition's records (`summary`) or next to them:
    records edited, relinked, deleted inside or at the edges of the month's runs, ids changed or never issued,
    the month's chains' heads forged or unregistered, the partition's triggers off (unacknowledged breaks: the
    drop refuses them under its lock). A month with any of them is never dropped: the partition is the evidence."""
    names = dict(AuditChainHead.objects.values_list("pk", "name"))
    spans = {
        names.get(int(chain), f"#{chain}"): [(run[0], run[2]) for run in runs] for chain, runs in summary.chains.items()
    }

    def inside(name: str, seq: int) -> bool:
        return any(first <= seq <= last for first, last in spans.get(name, ()))

    def touches(name: str, first: int, last: int) -> bool:  # a gap inside a run's seqs or right next to one
        return any(first <= end + 1 and last >= start - 1 for start, end in spans.get(name, ()))

    findings = [f"EDITED record #{seq} of chain {name}" for name, seq in report.edited if inside(name, seq)]
    findings += [f"RELINKED record #{seq} of chain {name}" for name, seq in report.relinked if inside(name, seq)]
    findings += [
        f"DELETED records #{first}-#{last} of chain {name}"
        for name, first, last in report.missing
        if touches(name, first, last)
    ]
    findings += [
        f"REORDERED record #{seq} of chain {name} (id {record_id}): ids were changed"
        for name, seq, record_id, previous_seq, _ in report.misordered_ids
        if inside(name, seq) or inside(name, previous_seq)
    ]
    findings += [
        f"REORDERED record #{seq} of chain {name}: its id {record_id} was never issued"
        for name, seq, record_id in report.ids_past_sequence
        if inside(name, seq)
    ]
    for kind, chains in (("FORGED head of", report.forged_heads), ("DELETED", report.deleted_chains),
                         ("FORGED (unregistered)", report.unregistered_chains)):  # fmt: skip
        findings += [f"{kind} chain {name}" for name in chains if name in spans]
    for kind, tables in (("WRITABLE", report.writable_tables), ("UNGUARDED", report.unguarded_tables)):
        findings += [f"{kind} table {table}" for table in tables if table == partition]
    return findings


@dataclass
class ArchiveOutcome:
    partition: str
    rows: int
    file: Path
    sha256: str
    reused: bool
    dropped: bool
    refused: str | None = None


ARCHIVE_LOCK = "audit_auditevent:archive"


def audit_archive(
    *,
    before: date,
    directory: Path,
    drop: bool,
    by: str,
    progress: ProgressFor | None = None,
    lock_timeout: str = PARTITION_LOCK_TIMEOUT,
) -> list[ArchiveOutcome]:
    """Archive every monthly partition wholly before `before`, oldest first (PostgreSQL). Without `drop`, only
    the files (a rehearsal, safe to repeat). Concurrent runs take turns on an advisory lock, which no audit write
    waits on. A partition refused (a record that does not verify, records that changed) is reported and later
    ones are left alone, so no archive skips a month. A month that fails part-way (OSError, DatabaseError: a lock
    not granted in time too) raises ArchiveFailed, which says what was done before it.
    `progress(partition, estimated records)`: the callback for that partition's records."""
    if connection.vendor != "postgresql":
        raise ArchiveNotAllowed("archiving needs PostgreSQL's monthly partitions of the trail; this database has none")
    from apps.audit.selectors import audit_chain_verify  # selectors reads archives through this module

    outcomes = []
    report = None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [ARCHIVE_LOCK])
    try:
        # Listed once the lock is ours: a run that went first may have dropped some of them meanwhile.
        months = archive_months(before=before)
        archived = set(
            AuditArchive.objects.filter(partition__in=[m[0] for m in months]).values_list("partition", flat=True)
        )
        for partition, start, end in months:
            if partition in archived:  # recorded as archived yet attached: verify reports it, never archived twice
                continue
            try:
                exported = archive_export(
                    partition=partition, start=start, end=end, directory=directory,
                    progress=progress,
                )  # fmt: skip
                if drop:
                    if report is None:  # once a run: what verify reports, for every month asked
                        report = audit_chain_verify()
                    if findings := archive_month_findings(report, exported.summary, partition):
                        raise ArchiveRefused(
                            f"{partition}: `audit verify` reports {'; '.join(findings[:5])}"
                            f"{f' (and {len(findings) - 5} more)' if len(findings) > 5 else ''}; exported, not dropped"
                        )
                    archive_drop(exported=exported, by=by, lock_timeout=lock_timeout)
            except ArchiveRefused as exc:
                outcomes.append(ArchiveOutcome(partition, 0, directory, "", False, False, refused=str(exc)))
                break
            except (OSError, DatabaseError) as exc:  # disk full, an unwritable folder, a lock not granted
                raise ArchiveFailed(partition, exc, outcomes) from exc
            outcomes.append(
                ArchiveOutcome(partition, exported.summary.rows, exported.path, exported.sha256, exported.reused, drop)
            )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [ARCHIVE_LOCK])
    return outcomes


def archive_file_problems(archive: AuditArchive, directory: Path) -> list[str]:
    """What is wrong with an archive's file in `directory`, checked against its record in the database: missing,
    another SHA-256, a record whose HMAC or link fails, records other than those archived. Empty: it verifies."""
    path = directory / archive.file_name
    if not path.is_file():
        return [f"MISSING  archive file {path} of partition {archive.partition}"]
    problems = []
    manifest = directory / f"{archive.partition}.manifest.json"
    deployment = archive_deployment()
    if not manifest.is_file():
        problems.append(f"MISSING  manifest {manifest} of partition {archive.partition}")
    elif (other := _manifest_deployment(manifest)) != deployment:
        problems.append(f"FOREIGN  manifest {manifest}: names deployment {other or 'none'}, this is {deployment}")
    altered = f"ALTERED  archive file {path}: its SHA-256 is not the one archived"
    try:
        summary, digest = archive_file_read(path, _primary_id())
    except (OSError, ValueError, EOFError, gzip.BadGzipFile) as exc:
        if _sha256(path) != archive.sha256:
            problems.append(altered)
        return [*problems, f"ALTERED  archive file {path}: unreadable ({type(exc).__name__})"]
    if digest != archive.sha256:
        problems.append(altered)
    for chain, seq in summary.edited:
        problems.append(f"EDITED   record #{seq} of chain {chain} in archive file {path}: no longer matches its seal")
    for chain, seq in summary.relinked:
        problems.append(f"RELINKED record #{seq} of chain {chain} in archive file {path}")
    for chain, seq, key_id in summary.unconfigured:
        problems.append(
            f"UNKEYED  record #{seq} of chain {chain} in archive file {path}: sealed with key {key_id}, not "
            "configured: add it to AUDIT_CHAIN_KEY_FALLBACKS"
        )
    if (summary.rows, summary.chains, sorted(summary.registered)) != (
        archive.row_count, archive.chains, sorted(archive.registered_chains)
    ):  # fmt: skip
        problems.append(f"ALTERED  archive file {path}: its records are not those archived from {archive.partition}")
    return problems
