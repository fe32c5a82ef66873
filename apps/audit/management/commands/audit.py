from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_partitions_ensure


class Command(BaseCommand):
    help = "Audit trail maintenance: `verify` the hash chain, or create monthly `partitions` ahead."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("verify", help="Recompute every record's HMAC and check every link.")
        partitions = sub.add_parser("partitions", help="Create monthly partitions ahead (PostgreSQL).")
        partitions.add_argument("--months-ahead", type=int, default=3)

    def handle(self, *args, action: str, **options) -> None:
        if action == "partitions":
            created = audit_partitions_ensure(months_ahead=options["months_ahead"])
            self.stdout.write(f"Created {len(created)} partition(s): {', '.join(created) or 'none needed'}.")
            return
        report = audit_chain_verify()
        for seq in report.edited:
            self.stdout.write(f"EDITED   record #{seq}: its content no longer matches its seal")
        for first, last in report.missing:
            span = f"#{first}" if first == last else f"#{first}-#{last}"
            self.stdout.write(f"DELETED  record(s) {span}: missing from the chain")
        for seq in report.relinked:
            self.stdout.write(f"RELINKED record #{seq}: does not follow the record before it")
        if not report.ok:
            raise CommandError(f"Audit trail tampered with: checked {report.checked} record(s).")
        self.stdout.write(f"Audit trail intact: {report.checked} record(s) verified.")
