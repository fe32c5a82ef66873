"""Reading and verifying the audit trail."""

from __future__ import annotations

import heapq
import logging
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.core.cache import cache
from django.db import connection
from django.db.models import BigIntegerField, ExpressionWrapper, F, Min, Q, QuerySet
from django.utils import timezone

from apps.audit.archive import archive_file_problems, archive_sealed_by
from apps.audit.models import AuditArchive, AuditChainHead, AuditEvent
from apps.audit.services import (
    CHAIN_BREAK,
    CHAIN_BREAK_ACKNOWLEDGED,
    CHAINED_FIELDS,
    GENESIS_HASH,
    OLD_KEY_RECORD_ACKNOWLEDGED,
    PARTITION_FAILURE_CACHE_KEY,
    PRIMARY_CHAIN,
    TRUNCATE_GUARD,
    ChainKeys,
    chain_keys,
    head_sealed_by,
    key_rollout_grace,
    record_sealed_by,
)

logger = logging.getLogger(__name__)


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
    """The trail, filtered. `patient_id` finds every record that disclosed the patient: the reads and
    searches about that patient alone, and the searches whose results spanned patients and named them.

    `page_id` is what the API pages by, newest first: the id. For one patient it is the id computed (id + 0),
    which no index yields in order, so the planner finds the patient's records by their indexes and sorts
    them; ordered by the id itself it could walk the whole trail backwards from its newest record, testing
    each, when it overestimated the patient's share. The API pages a patient through audit_event_pages, which
    reads the patient's own records from their index in order instead of sorting them all."""
    events = AuditEvent.objects.all()
    if patient_id is not None:
        events = events.filter(Q(patient_id=patient_id) | Q(patient_ids__discloses=patient_id))
        events = events.annotate(page_id=ExpressionWrapper(F("id") + 0, output_field=BigIntegerField()))
    else:
        events = events.annotate(page_id=F("id"))
    return _narrowed(events, actor_type, actor_id, action, resource_type, since, until)


def _narrowed(
    events: QuerySet[AuditEvent],
    actor_type: str | None,
    actor_id: int | None,
    action: str | None,
    resource_type: str | None,
    since: datetime | None,
    until: datetime | None,
) -> QuerySet[AuditEvent]:
    if actor_type:
        events = events.filter(actor_type=actor_type)
    elif actor_id is not None:
        # Every type there is, said outright: the actor index leads with the type, and `actor_id` alone read the
        # whole trail backwards for a rare actor's records (2M records: 11,800 pages read against 505).
        events = events.filter(actor_type__in=AuditEvent.ActorType.values)
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


class MergedPages:
    """Querysets that page as one, by `page_id`: each branch is ordered, narrowed by the cursor and limited in
    SQL (so each reads its own index in order and stops), and the branches' rows are merged by page_id. What a
    keyset paginator does to a queryset (order_by on page_id, filter on it, a slice) is done to every branch.
    The branches must not share a record."""

    def __init__(self, *branches: QuerySet[AuditEvent]) -> None:
        self.branches = branches

    def order_by(self, *fields: str) -> MergedPages:
        if fields not in (("page_id",), ("-page_id",)):
            raise ValueError(f"MergedPages orders by page_id alone, not {fields}")
        return MergedPages(*(branch.order_by(*fields) for branch in self.branches))

    def filter(self, *args, **kwargs) -> MergedPages:
        return MergedPages(*(branch.filter(*args, **kwargs) for branch in self.branches))

    def __getitem__(self, index: slice) -> list[AuditEvent]:
        if not isinstance(index, slice) or index.stop is None or index.step is not None:
            raise TypeError("MergedPages takes a bounded slice")
        ordering = self.branches[0].query.order_by
        if tuple(ordering) not in (("page_id",), ("-page_id",)):
            raise TypeError("MergedPages needs order_by('page_id') or order_by('-page_id') first")
        newest_first = ordering[0].startswith("-")
        rows = heapq.merge(
            *(list(branch[: index.stop]) for branch in self.branches),
            key=lambda event: event.page_id,
            reverse=newest_first,
        )
        return list(rows)[index]


def audit_event_pages(*, patient_id: int | None = None, **filters) -> QuerySet[AuditEvent] | MergedPages:
    """audit_event_list as the API pages it. A patient's records are two branches merged by id: those about the
    patient alone, read newest first from (patient_id, id DESC) and stopped at a page (a patient in 5% of 400k
    records: the whole partition scanned and sorted, 44 ms, for 0.4 ms), and the searches that named the patient
    among others (found by the patient_ids GIN index and sorted, as audit_event_list finds them)."""
    if patient_id is None:
        return audit_event_list(**filters)
    narrowing = [filters.get(name) for name in ("actor_type", "actor_id", "action", "resource_type", "since", "until")]
    own = AuditEvent.objects.filter(patient_id=patient_id).annotate(page_id=F("id"))
    named = (
        AuditEvent.objects.filter(patient_ids__discloses=patient_id)
        .exclude(patient_id=patient_id)  # in `own` already
        .annotate(page_id=ExpressionWrapper(F("id") + 0, output_field=BigIntegerField()))
    )
    return MergedPages(_narrowed(own, *narrowing), _narrowed(named, *narrowing))


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
    # PostgreSQL's tables of the trail (the records they held are reported above, if any):
    missing_partitions: list[str] = field(default_factory=list)  # the default partition, gone
    detached_partitions: list[str] = field(default_factory=list)  # a partition's table no longer attached
    unguarded_tables: list[str] = field(default_factory=list)  # no enabled TRUNCATE guard
    writable_tables: list[str] = field(default_factory=list)  # no enabled UPDATE/DELETE (append-only) trigger
    # (chain, seq): a record an anchor (kept off the database by an earlier verify) names, gone or changed since.
    cut_below_anchor: list[tuple[str, int]] = field(default_factory=list)
    # (chain, seq, id, previous seq, previous id): a record whose id is not above the one before it in its chain.
    # Ids are drawn in order as records are appended (a chain's appends take turns on its head), and the trail is
    # listed (-id) and paged (the API's cursor) by id: swapped or moved ids reorder it without touching a seal.
    misordered_ids: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    # (record id, chain id, records cut or None): a break a writer witnessed in its own chain and recorded in primary
    # (records cut from its end with the head put back, even from a genuine earlier copy the seals cannot tell from
    # the real end; or a head moved without the key), not yet acknowledged (`audit acknowledge-break`).
    reported_breaks: list[tuple[int, str, int | None]] = field(default_factory=list)
    # (chain, seq, id): a record whose id the id sequence never issued (above its last value): moved to the top.
    ids_past_sequence: list[tuple[str, int, int]] = field(default_factory=list)
    # Each chain's highest id and its seq, as walked: checked against the id sequence once the walk is done.
    highest_ids: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)  # each chain's (seq, last_hash): the next anchors
    # Not a failure on its own: a month between others that has no partition was dropped (its records, if it
    # had any, are reported as missing from their chains) or never created (the partition task stopped for
    # longer than it creates ahead, and the month's rows went to the default partition).
    month_gaps: list[str] = field(default_factory=list)
    # Not a failure either: the last monthly partition ends before next month does (None: it does not). The task
    # that creates them ahead has stopped; past it records go to the default partition, and a month with records
    # there can never have a partition of its own.
    partitions_run_out: str | None = None
    # Not a failure either: the partition task's last run gave up (audit_partitions_problem), None when it did not.
    partitions_task_failed: str | None = None
    # Archived months (`audit archive --drop`): the records they stand in for, and how many archives.
    archived: int = 0
    archives: int = 0
    # (chain, seq): a record still in the database inside a range an archive says it moved out.
    archive_overlaps: list[tuple[str, int]] = field(default_factory=list)
    forged_archives: list[str] = field(default_factory=list)  # partitions whose archive record's seal fails
    archive_problems: list[str] = field(default_factory=list)  # `--archives DIR`: the files, one line each
    # Key rotation (AUDIT_CHAIN_KEY_FALLBACKS). What each configured key seals, by key id: records (those sealed
    # before records named their key counted under the key that verifies them), chain heads and archive records.
    # A fallback none of them needs (nor, with --archives, an archive file) can be removed.
    records_by_key: dict[str, int] = field(default_factory=dict)
    heads_by_key: dict[str, int] = field(default_factory=dict)
    archives_by_key: dict[str, int] = field(default_factory=dict)
    # Records that name a key no longer configured: not verified, not tampering either (key id: records).
    unconfigured_keys: dict[str, int] = field(default_factory=dict)
    # (chain, seq, key id or None): sealed with an older key (or before records named one) after its chain had a
    # record sealed with a newer key, past AUDIT_KEY_ROLLOUT_GRACE_MINUTES: what a leaked old key would forge.
    # Less those acknowledged (`audit acknowledge-break ID`). Their record ids, by (chain, seq):
    older_key_records: list[tuple[str, int, str | None]] = field(default_factory=list)
    older_key_record_ids: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)
    # How many of `edited` name no key (sealed before records did): no configured key verifies them, which is
    # what a key removed from the fallbacks too early looks like, as much as an edit.
    edited_unnamed: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.edited
            or self.missing
            or self.relinked
            or self.deleted_chains
            or self.unregistered_chains
            or self.forged_heads
            or self.missing_partitions
            or self.detached_partitions
            or self.unguarded_tables
            or self.writable_tables
            or self.cut_below_anchor
            or self.misordered_ids
            or self.ids_past_sequence
            or self.reported_breaks
            or self.archive_overlaps
            or self.forged_archives
            or self.archive_problems
            or self.unconfigured_keys
            or self.older_key_records
        )


def _chain_rows(chain_id: int, chunk_size: int) -> Iterator[dict]:
    """A chain's records in order, `chunk_size` seqs at a time, each chunk one short statement of its own: nothing
    holds the trail open between chunks, and only one chunk is in memory. A chunk is a range of seq (every record
    in it, a duplicated seq too), which the (chain_id, seq) index reads in order whatever the planner's statistics
    say; a keyset with LIMIT sorted the rest of the chain for each chunk (quadratic). A gap is jumped with min()."""
    events = AuditEvent.objects.filter(chain_id=chain_id)
    low = events.aggregate(first=Min("seq"))["first"]
    while low is not None:
        chunk = list(
            events.filter(seq__gte=low, seq__lt=low + chunk_size)
            .order_by("seq", "id")
            .values(*CHAINED_FIELDS, "hash", "id")
        )
        yield from chunk
        low += chunk_size
        if len(chunk) < chunk_size:  # a gap, or the end: where the next record is, if any
            low = events.filter(seq__gte=low).aggregate(first=Min("seq"))["first"]
        del chunk


def _verify_chain(
    report: ChainReport,
    name: str,
    chain_id: int,
    head_seq: int | None,
    chunk_size: int,
    anchor: tuple[int, str] | None = None,
    progress: Progress | None = None,
    archived: list[list] | None = None,
) -> None:
    expected_seq, previous_hash = 1, GENESIS_HASH
    previous: tuple[int, int] | None = None  # (seq, id) of the record before
    anchor_held = anchor is None or anchor[0] == 0
    runs = _ArchivedRuns(report, name, archived or [], anchor)
    rotation = _KeyOrder(report, name, chain_keys())
    for row in _chain_rows(chain_id, chunk_size):
        report.checked += 1
        if runs.holds(row["seq"]):
            report.archive_overlaps.append((name, row["seq"]))
        if row["seq"] > expected_seq:
            expected_seq, previous_hash = runs.skip(expected_seq, previous_hash, row["seq"] - 1)
        if previous is not None and row["id"] <= previous[1]:
            report.misordered_ids.append((name, row["seq"], row["id"], *previous))
        previous = (row["seq"], row["id"])
        if row["id"] > report.highest_ids.get(name, (0, 0))[0]:
            report.highest_ids[name] = (row["id"], row["seq"])
        if row["seq"] > expected_seq:
            report.missing.append((name, expected_seq, row["seq"] - 1))
        elif row["prev_hash"] != previous_hash:
            report.relinked.append((name, row["seq"]))
        rotation.check(row)
        if anchor is not None and row["seq"] == anchor[0]:
            anchor_held = anchor_held or row["hash"] == anchor[1]
        expected_seq, previous_hash = row["seq"] + 1, row["hash"]
        if progress is not None and report.checked % chunk_size == 0:
            progress(report.checked)
    if head_seq is not None and head_seq >= expected_seq:
        expected_seq, previous_hash = runs.skip(expected_seq, previous_hash, head_seq)
    if head_seq is not None and head_seq >= expected_seq:
        report.missing.append((name, expected_seq, head_seq))
    anchor_held = anchor_held or runs.anchor_held
    if not anchor_held:
        report.cut_below_anchor.append((name, anchor[0]))


class _KeyOrder:
    """Checks each record of a chain against the key it names (or, sealed before records named one, each configured
    key), counting what each key seals; and that no record sealed with an older key (or naming none) follows one
    sealed with a newer key once the chain has gone on past the rollout grace after it: a rotation's old key, leaked,
    forges nothing after the chain's rotation point. The chain's latest date so far is what counts, not the record's
    own (a forger dates it). Keys are ranked as configured: AUDIT_CHAIN_KEY, then its fallbacks newest first."""

    def __init__(self, report: ChainReport, name: str, keys: ChainKeys) -> None:
        self.report, self.name, self.keys = report, name, keys
        self.grace = key_rollout_grace()
        self.hint: str | None = None  # the key of the last record that names none: likely the next one's
        self.newest: tuple[int, datetime] | None = None  # the newest key's rank, and when it first sealed a record
        self.named_since: datetime | None = None  # when the chain's first record naming its key was recorded
        self.latest: datetime | None = None  # the latest date of the chain's verified records so far

    def check(self, row: dict) -> None:
        key_id, sealed = record_sealed_by(row, self.keys, self.hint)
        report = self.report
        if not sealed:
            if key_id is not None and key_id not in self.keys.keys:
                report.unconfigured_keys[key_id] = report.unconfigured_keys.get(key_id, 0) + 1
            else:
                report.edited.append((self.name, row["seq"]))
                report.edited_unnamed += row["key_id"] is None
            return
        report.records_by_key[key_id] = report.records_by_key.get(key_id, 0) + 1
        named, rank, at = row["key_id"] is not None, self.keys.rank[key_id], row["recorded_at"]
        if not named:
            self.hint = key_id
        latest = at if self.latest is None else max(self.latest, at)
        older = self.newest is not None and rank > self.newest[0] and latest > self.newest[1] + self.grace
        unnamed = not named and self.named_since is not None and latest > self.named_since + self.grace
        if older or unnamed:
            report.older_key_records.append((self.name, row["seq"], row["key_id"]))
            report.older_key_record_ids[(self.name, row["seq"])] = row["id"]
            return
        self.latest = latest
        if self.newest is None or rank < self.newest[0]:
            self.newest = (rank, at)
        if named and self.named_since is None:
            self.named_since = at


class _ArchivedRuns:
    """A chain's runs of records moved out to archives ([first seq, its prev_hash, last seq, its hash], by first
    seq): a gap the runs cover exactly, each linked to what comes before it, is no deletion."""

    def __init__(self, report: ChainReport, name: str, runs: list[list], anchor: tuple[int, str] | None) -> None:
        self.report, self.name, self.anchor = report, name, anchor
        self.runs = sorted(runs, key=lambda run: run[0])
        self.firsts = [run[0] for run in self.runs]
        self.next = 0
        self.anchor_held = False

    def holds(self, seq: int) -> bool:
        at = bisect_right(self.firsts, seq) - 1
        return at >= 0 and self.runs[at][0] <= seq <= self.runs[at][2]

    def skip(self, expected_seq: int, previous_hash: str, upto: int) -> tuple[int, str]:
        """Where the chain resumes after the archived runs that start from `expected_seq` up to `upto` (the seq of
        the next record there is, or the head's): records missing before a run are reported as deleted."""
        while self.next < len(self.runs) and self.runs[self.next][2] < expected_seq:
            self.next += 1  # behind the walk (a run overlapping records still there: reported by holds)
        while self.next < len(self.runs) and expected_seq <= self.runs[self.next][0] <= upto:
            first, prev_hash, last, last_hash = self.runs[self.next]
            if first > expected_seq:  # deleted before the run: its link to them cannot be checked
                self.report.missing.append((self.name, expected_seq, first - 1))
            elif prev_hash != previous_hash:
                self.report.relinked.append((self.name, first))
            if self.anchor is not None and first <= self.anchor[0] <= last:
                # Inside the run only its file can tell; at its end the archive record says the hash.
                self.anchor_held = self.anchor[0] < last or last_hash == self.anchor[1]
            expected_seq, previous_hash = last + 1, last_hash
            self.next += 1
        return expected_seq, previous_hash


# Told how many records have been checked so far (after each chunk, and once at the end of each chain).
Progress = Callable[[int], None]


def audit_chain_verify(
    *,
    chunk_size: int = 5000,
    anchors: dict[str, tuple[int, str]] | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    archives: Path | None = None,
) -> ChainReport:
    """Walk every chain in order: recompute each HMAC, check each link, find gaps, cut tails and
    chains deleted whole (every chain but primary is registered by a record in primary).

    `anchors`: each chain's (seq, hash) as an earlier verify saw its end, kept off this database. Records cut from
    a chain's end with its head restored from an earlier state leave every seal genuine; the anchored record
    gone or changed is what shows it.

    The chains are read in chunks, each in a statement of its own: one REPEATABLE READ transaction over the whole
    walk held the trail's lock for as long as it ran (minutes over millions of records), and the partition task
    (CREATE TABLE ... PARTITION OF needs the trail to itself) gave up behind it. What is checked is the heads as
    read first and every record there is: a chain opened or grown meanwhile is no false alarm (its head and
    registration commit together, and appended records are chained like the rest).
    `on_total`: told the number of records the heads account for, before the walk; `progress`: the number
    checked so far, every `chunk_size` records.

    Months archived (`audit archive --drop`) are taken from their archive records: each chain resumes at the
    boundaries they keep, if their seals hold. `archives`: the folder of the archive files, each checked too
    (SHA-256, every HMAC and link inside, and that it holds what its record says).
    """
    report = ChainReport()
    _verify_all(report, chunk_size, anchors or {}, progress, on_total, archives)
    _verify_ids_issued(report)
    if connection.vendor == "postgresql":
        _verify_partitions(report, set(AuditArchive.objects.values_list("partition", flat=True)))
    elif connection.vendor == "sqlite":
        _verify_sqlite_triggers(report)
    if progress is not None:
        progress(report.checked)
    return report


def _verify_ids_issued(report: ChainReport) -> None:
    """Ids above the last one the id sequence issued (read after the walk: records appended meanwhile are below it)
    were set by hand: a chain's last record moved to the top of the trail shows nowhere else."""
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')::regclass)", [table])
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        else:
            return
        row = cursor.fetchone()
    if row is None or row[0] is None:  # a sequence never drawn from: nothing to compare with
        return
    for name, (highest, seq) in sorted(report.highest_ids.items()):
        if highest > row[0]:
            report.ids_past_sequence.append((name, seq, highest))


_MONTHLY_PARTITION = re.compile(r"_y(\d{4})m(\d{2})$")
# The row triggers that refuse UPDATE and DELETE (migrations 0001 and 0003; partitions inherit the first).
APPEND_ONLY = "audit_event_append_only"
HEAD_KEPT = "audit_chain_head_kept"
ARCHIVE_KEPT = "audit_archive_kept"


# SQLite's triggers that refuse UPDATE and DELETE (migration 0008), by table. A rebuild of the table (SQLite's
# way to alter a column) drops them with the old one.
SQLITE_APPEND_ONLY = {
    AuditEvent._meta.db_table: ("audit_event_append_only_update", "audit_event_append_only_delete"),
    AuditChainHead._meta.db_table: ("audit_chain_head_kept",),
}


def _verify_sqlite_triggers(report: ChainReport) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
        present = set(cursor.fetchall())
    for table, triggers in SQLITE_APPEND_ONLY.items():
        if any((table, name) not in present for name in triggers):
            report.writable_tables.append(table)


def _verify_partitions(report: ChainReport, archived: set[str] = frozenset()) -> None:
    """What a TRUNCATE, DROP or DETACH leaves behind besides the records missing from their chains: truncating
    needs a guard disabled or dropped, a detached partition stays as a table of its own, a month dropped between
    others leaves a gap in the months. An append-only trigger left off is reported too: edits are caught by their
    seals, but the control that refuses them is gone."""
    table, heads = AuditEvent._meta.db_table, AuditChainHead._meta.db_table
    # A trigger fires in an ordinary session when enabled ('O') or always ('A'); not when disabled ('D') or set
    # to fire only while replicating ('R').
    enabled = (
        "EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = {} AND t.tgenabled IN ('O', 'A'))"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relname = %s OR c.relispartition, "  # noqa: S608 - only the fixed text above
            f"{enabled.format('%s')}, {enabled.format('CASE WHEN c.relname = %s THEN %s ELSE %s END')} "
            "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
            "AND (c.relname = %s OR c.relname = %s OR c.relname LIKE %s OR c.oid IN "
            "(SELECT relid FROM pg_partition_tree(%s::regclass)))",
            [table, TRUNCATE_GUARD, heads, HEAD_KEPT, APPEND_ONLY,
             table, heads, table.replace("_", r"\_") + r"\_%", table],
        )  # fmt: skip
        rows = cursor.fetchall()
    attached = set()
    for name, is_attached, guarded, append_only in sorted(rows):
        if name != heads and not is_attached:
            report.detached_partitions.append(name)
            continue
        attached.add(name)
        if not guarded:
            report.unguarded_tables.append(name)
        if not append_only:
            report.writable_tables.append(name)
    if f"{table}_default" not in attached:
        report.missing_partitions.append(f"{table}_default")
    # The archive records stand in for the months dropped: the same two controls (migration 0009).
    archives = AuditArchive._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {enabled.format('%s')}, {enabled.format('%s')} FROM pg_class c WHERE c.oid = to_regclass(%s)",  # noqa: S608
            [TRUNCATE_GUARD, ARCHIVE_KEPT, archives],
        )
        row = cursor.fetchone()
    if row is not None:
        if not row[0]:
            report.unguarded_tables.append(archives)
        if not row[1]:
            report.writable_tables.append(archives)
    months = sorted((int(match[1]), int(match[2])) for name in attached if (match := _MONTHLY_PARTITION.search(name)))
    if months:
        year, month = months[0]
        while (year, month) < months[-1]:
            if (year, month) not in months and f"{table}_y{year}m{month:02d}" not in archived:
                report.month_gaps.append(f"{table}_y{year}m{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    today = timezone.now().astimezone(UTC).date()
    if not months or months[-1] <= (today.year, today.month):
        last = f"{table}_y{months[-1][0]}m{months[-1][1]:02d}" if months else "none"
        report.partitions_run_out = last
    report.partitions_task_failed = audit_partitions_problem()


def audit_partitions_problem() -> str | None:
    """Why the daily partition task's last run gave up, with when and after how many attempts; None when its
    last run succeeded (or none failed within PARTITION_FAILURE_KEPT_SECONDS). For `audit verify` and health checks."""
    try:
        failure = cache.get(PARTITION_FAILURE_CACHE_KEY)
    except Exception as exc:  # noqa: BLE001 - a cache that cannot be read is not the trail's failure
        logger.warning("audit partitions: the task's last failure could not be read: %s", type(exc).__name__)
        return None
    if not failure:
        return None
    return (
        f"the partition task audit.ensure_partitions gave up at {failure['at']} after {failure['attempts']} "
        f"attempt(s): {failure['reason']}"
    )


def _verify_all(
    report: ChainReport,
    chunk_size: int,
    anchors: dict[str, tuple[int, str]],
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    archives: Path | None = None,
) -> None:
    heads = {head.pk: head for head in AuditChainHead.objects.all()}  # one statement: the walk's reference
    archived, archived_registered = _archived_runs(report, archives)
    if on_total is not None:
        on_total(sum(head.seq for head in heads.values()) - report.archived)
    for head in sorted(heads.values(), key=lambda h: h.pk):
        report.chains += 1
        report.heads[head.name] = (head.seq, head.last_hash)
        if (key_id := head_sealed_by(head)) is None:
            report.forged_heads.append(head.name)
        else:
            report.heads_by_key[key_id] = report.heads_by_key.get(key_id, 0) + 1
        _verify_chain(
            report, head.name, head.pk, head.seq, chunk_size, anchors.get(head.name), progress, archived.get(head.pk)
        )
    for name in sorted(set(anchors) - set(report.heads)):
        report.cut_below_anchor.append((name, anchors[name][0]))  # the whole chain, head and all
    primary = next((h for h in heads.values() if h.name == PRIMARY_CHAIN), None)
    if primary is None:  # the migration made it: gone, even with nothing else left, means the trail was wiped
        report.deleted_chains.append(PRIMARY_CHAIN)
    registered = set()
    if primary is not None:
        # A registration edited to a non-number registers nothing (and is reported as edited), never a crash.
        # Up to primary's head as read above: a chain registered since has a head the read above did not see.
        registered = {
            int(value)
            for value in AuditEvent.objects.filter(
                chain_id=primary.pk, seq__lte=primary.seq, resource_type="AuditChain", action="create"
            ).values_list("resource_id", flat=True)
            if value.isascii() and value.isdigit()
        } | archived_registered
    if primary is not None:
        _verify_reported_breaks(report, primary)
    for chain_id in sorted(registered - set(heads)):
        report.deleted_chains.append(f"#{chain_id}")
    orphans = set(AuditEvent.objects.exclude(chain_id__in=list(heads)).values_list("chain_id", flat=True).distinct())
    # A chain opened since the heads were read has records and a head (made in one transaction): not an orphan.
    orphans -= set(AuditChainHead.objects.filter(pk__in=list(orphans)).values_list("pk", flat=True))
    for chain_id in sorted(orphans - registered):
        report.deleted_chains.append(f"#{chain_id}")
        _verify_chain(
            report, f"#{chain_id}", chain_id, None, chunk_size, progress=progress, archived=archived.get(chain_id)
        )
    for head in heads.values():
        if head.name != PRIMARY_CHAIN and head.pk not in registered:
            report.unregistered_chains.append(head.name)
    if primary is not None and report.older_key_records:
        _drop_acknowledged_old_key_records(report, primary)


def _archived_runs(report: ChainReport, folder: Path | None) -> tuple[dict[int, list[list]], set[int]]:
    """Each chain's archived runs and the chains registered by archived records, from the archive records whose
    seals hold (one forged to cover deleted records is reported, and covers nothing); with `folder`, each file."""
    runs: dict[int, list[list]] = {}
    registered: set[int] = set()
    for archive in AuditArchive.objects.order_by("range_start", "pk"):
        report.archives += 1
        if folder is not None:
            report.archive_problems.extend(archive_file_problems(archive, folder))
        if (key_id := archive_sealed_by(archive)) is None:
            report.forged_archives.append(archive.partition)
            continue
        report.archives_by_key[key_id] = report.archives_by_key.get(key_id, 0) + 1
        report.archived += archive.row_count
        for chain, chain_runs in archive.chains.items():
            runs.setdefault(int(chain), []).extend(chain_runs)
        registered.update(archive.registered_chains)
    return runs, registered


def _verify_reported_breaks(report: ChainReport, primary: AuditChainHead) -> None:
    """The chain breaks the writers recorded in primary (up to its head as read), less those acknowledged there."""
    in_primary = AuditEvent.objects.filter(chain_id=primary.pk, seq__lte=primary.seq)
    acknowledged = set(in_primary.filter(resource_type=CHAIN_BREAK_ACKNOWLEDGED).values_list("resource_id", flat=True))
    for record_id, chain, cut in (
        in_primary.filter(**CHAIN_BREAK).order_by("seq").values_list("id", "resource_id", "result_count")
    ):
        if str(record_id) not in acknowledged:
            report.reported_breaks.append((record_id, chain, cut))


def _drop_acknowledged_old_key_records(report: ChainReport, primary: AuditChainHead) -> None:
    """The OLD KEY records someone looked into (a stuck rollout's pod, not a leaked key) and acknowledged in primary,
    up to its head as read, taken off the report. An acknowledgement counts only when sealed with a newer key than
    the record it names: a leaked old key would otherwise acknowledge its own records, even in advance (an
    acknowledgement written before the rotation, naming an id still to come)."""
    findings = {report.older_key_record_ids[(chain, seq)] for chain, seq, _ in report.older_key_records}
    rank = chain_keys().rank
    keys_of = {  # the key of each finding: an acknowledgement counts only when sealed with a newer one
        str(record_id): key_id
        for chain, seq, key_id in report.older_key_records
        for record_id in [report.older_key_record_ids[(chain, seq)]]
    }
    acknowledged = {
        resource_id
        for ack_id, resource_id, ack_key in AuditEvent.objects.filter(
            chain_id=primary.pk, seq__lte=primary.seq, resource_type=OLD_KEY_RECORD_ACKNOWLEDGED
        ).values_list("id", "resource_id", "key_id")
        if ack_id not in findings
        and resource_id in keys_of
        and rank.get(ack_key, len(rank)) < rank.get(keys_of[resource_id], len(rank))
    }
    report.older_key_records = [
        (chain, seq, key_id)
        for chain, seq, key_id in report.older_key_records
        if str(report.older_key_record_ids[(chain, seq)]) not in acknowledged
    ]
