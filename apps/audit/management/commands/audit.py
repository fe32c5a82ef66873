import dataclasses
import re
import time
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import OperationalError, connection

from apps.audit.archive import ArchiveFailed, ArchiveNotAllowed, archive_default_left, audit_archive
from apps.audit.selectors import ChainReport, audit_chain_verify
from apps.audit.services import (
    CHAIN_BREAK_ACKNOWLEDGED,
    PARTITION_MONTHS_AHEAD_MAX,
    audit_anchors_read,
    audit_anchors_write,
    audit_chain_break_acknowledge,
    audit_partitions_ensure_attempt,
    chain_keys,
    lock_not_granted,
)


class Command(BaseCommand):
    help = (
        "Audit trail maintenance: `verify` the hash chain, create monthly `partitions` ahead, or `archive` past "
        "months to files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="Recompute every record's HMAC and check every link.")
        verify.add_argument(
            "--anchor",
            type=Path,
            metavar="FILE",
            help="Each chain's end as the last intact verify saw it, kept off the database (rewritten when intact): "
            "records cut from a chain's end with its head restored from an earlier copy are found only so.",
        )
        verify.add_argument(
            "--progress",
            action="store_true",
            help="Say on stderr, every few seconds, how many records have been checked of those the heads account "
            "for, and at what rate.",
        )
        verify.add_argument(
            "--archives",
            type=Path,
            metavar="DIR",
            help="Also verify the archive files `audit archive` wrote there: each file's SHA-256 against its archive "
            "record, every HMAC and link inside, and that it holds the records archived.",
        )
        archive = sub.add_parser(
            "archive",
            help="Export each monthly partition wholly before --before to a verifiable file (PostgreSQL); with "
            "--drop, record the archive and drop the partition.",
        )
        archive.add_argument("--before", required=True, metavar="YYYY-MM", help="The first month kept.")
        archive.add_argument("--to", required=True, type=Path, metavar="DIR", help="Where the files go.")
        archive.add_argument(
            "--drop", action="store_true", help="Drop each partition once its file is checked (else only export)."
        )
        archive.add_argument("--by", default="audit-archive", help="Who archives (kept in the archive record).")
        archive.add_argument("--progress", action="store_true", help="Say on stderr how the export goes.")
        acknowledge = sub.add_parser(
            "acknowledge-break",
            help="Acknowledge a chain break (BREAK) or a record sealed with a retired key (OLD KEY) `verify` "
            "reports, once looked into: a sealed record in the primary chain, after which verify no longer reports it.",
        )
        acknowledge.add_argument("record_id", type=int, help="The record id `verify` names.")
        acknowledge.add_argument("--by", required=True, help="Who looked into it (kept in the record).")
        partitions = sub.add_parser("partitions", help="Create monthly partitions ahead (PostgreSQL).")
        partitions.add_argument("--months-ahead", type=int, default=3)

    def handle(self, *args, action: str, **options) -> None:
        if action == "archive":
            self._archive(**options)
            return
        if action == "acknowledge-break":
            try:
                record = audit_chain_break_acknowledge(record_id=options["record_id"], by=options["by"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            what = "Chain break of record" if record.resource_type == CHAIN_BREAK_ACKNOWLEDGED else "OLD KEY record"
            self.stdout.write(f"{what} {options['record_id']} acknowledged (record {record.pk}).")
            return
        if action == "partitions":
            months_ahead = options["months_ahead"]
            if not 0 <= months_ahead <= PARTITION_MONTHS_AHEAD_MAX:
                raise CommandError(f"--months-ahead must be between 0 and {PARTITION_MONTHS_AHEAD_MAX}.")
            # One attempt (an operator is waiting), recorded as the task's are: a success clears the task's failure
            # note in `audit verify`, a failure is noted there.
            try:
                created = audit_partitions_ensure_attempt(months_ahead=months_ahead, attempts=1)
            except OperationalError as exc:
                if not lock_not_granted(exc):
                    raise
                raise CommandError(
                    "The trail's lock was not granted in time: a long reader of it (audit verify, pg_dump?) is "
                    "running. Nothing was created; run this again once it ends."
                ) from exc
            self.stdout.write(f"Created {len(created)} partition(s): {', '.join(created) or 'none needed'}.")
            return
        anchor_file = options.get("anchor")
        try:
            anchors = audit_anchors_read(anchor_file) if anchor_file else {}
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options.get("progress"):
            line = ProgressLine(self.stderr)
            report = audit_chain_verify(
                anchors=anchors, progress=line, on_total=line.start, archives=options.get("archives")
            )
            line.finish(report.checked)
        else:
            report = audit_chain_verify(anchors=anchors, archives=options.get("archives"))
        for chain, seq in report.edited:
            self.stdout.write(f"EDITED   record #{seq} of chain {chain}: its content no longer matches its seal")
        if report.edited_unnamed:
            self.stdout.write(
                f"NOTE     {report.edited_unnamed} of the EDITED record(s) were sealed before records named their "
                "key: a key removed from AUDIT_CHAIN_KEY_FALLBACKS too early looks the same; if one was, add it back"
            )
        self._keys(report)
        for chain, first, last in report.missing:
            span = f"#{first}" if first == last else f"#{first}-#{last}"
            self.stdout.write(f"DELETED  record(s) {span} of chain {chain}: missing from the chain")
        for chain, seq in report.relinked:
            self.stdout.write(f"RELINKED record #{seq} of chain {chain}: does not follow the record before it")
        for chain in report.deleted_chains:
            self.stdout.write(f"DELETED  chain {chain}: registered or referenced, but its head is gone")
        for chain in report.forged_heads:
            self.stdout.write(
                f"FORGED   head of chain {chain}: moved without the key (records cut from its end?), or sealed with a "
                "key since removed from AUDIT_CHAIN_KEY_FALLBACKS"
            )
        for chain in report.unregistered_chains:
            self.stdout.write(f"FORGED   chain {chain}: never registered in the primary chain")
        for chain, seq, record_id, previous_seq, previous_id in report.misordered_ids:
            self.stdout.write(
                f"REORDERED record #{seq} of chain {chain} (id {record_id}) is not after record #{previous_seq} "
                f"(id {previous_id}): ids were changed"
            )
        for record_id, chain, cut in report.reported_breaks:
            what = f"{cut} record(s) cut from its end" if cut else "its head moved without the key"
            self.stdout.write(
                f"BREAK    chain #{chain}: its writer saw {what} (record {record_id}); once looked into, "
                f"`audit acknowledge-break {record_id} --by NAME`"
            )
        for chain, seq, record_id in report.ids_past_sequence:
            self.stdout.write(f"REORDERED record #{seq} of chain {chain}: its id {record_id} was never issued")
        for table in report.missing_partitions:
            self.stdout.write(f"DROPPED  partition {table}: gone from the partitioned table")
        for table in report.detached_partitions:
            self.stdout.write(f"DETACHED partition {table}: a table of the trail, no longer in it")
        for table in report.unguarded_tables:
            self.stdout.write(f"UNGUARDED table {table}: its TRUNCATE guard is missing or disabled")
        for table in report.writable_tables:
            self.stdout.write(f"WRITABLE table {table}: its append-only trigger is missing or disabled")
        for chain, seq in report.cut_below_anchor:
            self.stdout.write(f"CUT      chain {chain} below its anchor: record #{seq} is gone or changed")
        for partition in report.forged_archives:
            self.stdout.write(
                f"FORGED   archive record of {partition}: its seal does not match it, or the key that sealed it was "
                "removed from AUDIT_CHAIN_KEY_FALLBACKS (an archive record needs its key for good)"
            )
        for chain, seq in report.archive_overlaps:
            self.stdout.write(f"ARCHIVED record #{seq} of chain {chain}: archived, yet still in the database")
        for problem in report.archive_problems:
            self.stdout.write(problem)
        for table in report.month_gaps:
            self.stdout.write(f"NOTE     no partition {table} between the others: dropped, or never created")
        if report.partitions_run_out:
            self.stdout.write(
                f"NOTE     the last monthly partition is {report.partitions_run_out}: is the beat task "
                "audit.ensure_partitions running? Records past it go to the default partition."
            )
        if report.partitions_task_failed:
            self.stdout.write(f"NOTE     {report.partitions_task_failed}")
        if not report.ok:
            if dataclasses.replace(report, unconfigured_keys={}).ok:
                raise CommandError(
                    f"Audit trail not verified: {sum(report.unconfigured_keys.values())} of {report.checked} "
                    "record(s) are sealed with keys no longer configured (UNKEYED), and nothing else is wrong."
                )
            raise CommandError(f"Audit trail tampered with: checked {report.checked} record(s).")
        if anchor_file:
            try:
                audit_anchors_write(anchor_file, report.heads)
            except OSError as exc:
                raise CommandError(f"The trail is intact, but the anchors could not be saved: {exc}") from exc
        archived = ""
        if report.archives:
            files = "verified" if options.get("archives") else "not read (--archives DIR)"
            archived = f"; {report.archived} more in {report.archives} archive(s), files {files}"
        self.stdout.write(
            f"Audit trail intact: {report.checked} record(s) in {report.chains} chain(s) verified{archived}."
        )

    def _keys(self, report: ChainReport) -> None:
        """Which chain keys sealed what, and which fallbacks nothing in the database needs any more."""
        for key_id, count in sorted(report.unconfigured_keys.items()):
            self.stdout.write(
                f"UNKEYED  {count} record(s) sealed with key {key_id}, not configured: add it to "
                "AUDIT_CHAIN_KEY_FALLBACKS (not verified; no sign of tampering)"
            )
        for chain, seq, key_id in report.older_key_records:
            record_id = report.older_key_record_ids[(chain, seq)]
            self.stdout.write(
                f"OLD KEY  record #{seq} of chain {chain}: sealed with {f'key {key_id}' if key_id else 'no key id'} "
                "after its chain's records sealed with a newer key, past AUDIT_KEY_ROLLOUT_GRACE_MINUTES: forged with "
                f"a retired (leaked?) key, or a pod left on it (record {record_id}); once looked into, "
                f"`audit acknowledge-break {record_id} --by NAME`"
            )
        keys = chain_keys()
        for key_id, rank in keys.rank.items():
            uses = [
                f"{count} {what}"
                for count, what in (
                    (report.records_by_key.get(key_id, 0), "record(s)"),
                    (report.heads_by_key.get(key_id, 0), "chain head(s)"),
                    (report.archives_by_key.get(key_id, 0), "archive record(s)"),
                )
                if count
            ]
            role = "AUDIT_CHAIN_KEY" if rank == 0 else f"fallback {rank}"
            line = f"KEY      {key_id} ({role}) seals {', '.join(uses) or 'nothing'}"
            if rank and not uses:
                line += (
                    ": no record, head or archive record in the database needs it; removable once no archive file does"
                )
            self.stdout.write(line)

    def _outcomes(self, outcomes: list, lines: dict) -> None:
        for outcome in outcomes:
            if outcome.partition in lines and outcome.refused is None:
                lines[outcome.partition].finish(outcome.rows)
            if outcome.refused is not None:
                self.stdout.write(f"REFUSED  {outcome.refused}; later months left alone")
                continue
            how = "kept the identical file" if outcome.reused else "wrote"
            done = "partition dropped" if outcome.dropped else "partition kept (no --drop)"
            self.stdout.write(
                f"ARCHIVED {outcome.partition}: {outcome.rows} record(s), {how} {outcome.file} "
                f"(sha256 {outcome.sha256}), {done}"
            )

    def _archive(self, *, before: str, to: Path, drop: bool, by: str, progress: bool, **options) -> None:
        match = re.fullmatch(r"(\d{4})-(\d{2})", before)
        if match is None or not 1 <= int(match[2]) <= 12:
            raise CommandError(f"--before must be a month, YYYY-MM, not {before!r}.")
        if int(match[1]) < 1970:  # no audit record is older: a typo, never a month to archive before
            raise CommandError(f"--before must be a month from 1970-01 on, not {before!r}.")
        first_kept = date(int(match[1]), int(match[2]), 1)
        if connection.vendor != "postgresql":
            raise CommandError(
                "Archiving needs PostgreSQL: it moves out the trail's monthly partitions, which this database "
                f"({connection.vendor}) does not have."
            )
        lines = {}

        def progress_for(partition: str, total: int) -> ProgressLine:
            line = lines[partition] = ProgressLine(self.stderr, label=f"audit archive {partition}")
            line.start(total)
            return line

        try:
            outcomes = audit_archive(
                before=first_kept, directory=to, drop=drop, by=by, progress=progress_for if progress else None
            )
        except ArchiveNotAllowed as exc:
            raise CommandError(str(exc)) from exc
        except ArchiveFailed as exc:
            self._outcomes(exc.outcomes, lines)
            if isinstance(exc.cause, OperationalError) and lock_not_granted(exc.cause):
                why = (
                    "a lock on the trail was not granted in time (a long reader of it: audit verify, pg_dump?); run "
                    "this again once it ends"
                )
            elif isinstance(exc.cause, OSError):
                why = f"the files could not be written to {to}: {exc.cause}"
            else:
                why = f"a database error: {type(exc.cause).__name__}: {exc.cause}"
            done = f"{len(exc.outcomes)} month(s) before it done as listed above" if exc.outcomes else "none before it"
            raise CommandError(
                f"Archiving stopped at {exc.partition}, left as it was (no partial file kept): {why}. {done}."
            ) from exc
        self._outcomes(outcomes, lines)
        if not outcomes:
            self.stdout.write(f"No monthly partition before {first_kept:%Y-%m} to archive.")
        left = archive_default_left(before=first_kept)
        if left:
            self.stdout.write(
                f"NOTE     {left} record(s) before {first_kept:%Y-%m} are in the default partition (written while "
                "their month had no partition): they stay in the database, since the default partition also takes "
                "the months to come and is never archived."
            )
        if any(outcome.refused for outcome in outcomes):
            raise CommandError("Not every month was archived: see REFUSED above.")


class ProgressLine:
    """`--progress`: one line every `every` seconds (rewritten in place on a terminal), then the total and rate."""

    def __init__(self, stream: OutputWrapper, every: float = 2.0, label: str = "audit verify") -> None:
        self.stream, self.every, self.label = stream, every, label
        self.total = 0
        self.started = self.shown = time.monotonic()

    def start(self, total: int) -> None:
        self.total = total
        self.started = self.shown = time.monotonic()

    def __call__(self, checked: int) -> None:
        if time.monotonic() - self.shown >= self.every:
            self._show(checked, end="\r" if self.stream.isatty() else "\n")

    def finish(self, checked: int) -> None:
        self._show(checked, end="\n")

    def _show(self, checked: int, *, end: str) -> None:
        self.shown = time.monotonic()
        rate = checked / max(self.shown - self.started, 1e-6)
        # No total (an archive's partition the planner has not counted yet): the count alone.
        total = f" of {self.total:,}" if self.total else ""
        share = f" ({min(checked * 100 // self.total, 100)}%)" if self.total else ""
        self.stream.write(f"{self.label}: {checked:,}{total} records{share}, {rate:,.0f} records/s", ending=end)
        self.stream.flush()
