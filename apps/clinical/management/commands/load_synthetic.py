from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.clinical.loader import AlreadyLoaded, synthetic_patients_load


class Command(BaseCommand):
    help = "Load deterministic synthetic patients with vitals, labs, encounters and medications."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, required=True)
        parser.add_argument("--days", type=int, default=7, help="Days of history before --end (default 7).")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--rounds-per-day", type=int, default=4, help="Vital-sign rounds a day (default 4).")
        parser.add_argument("--first-index", type=int, default=0, help="Add patients after an earlier load.")
        parser.add_argument("--end", type=datetime.fromisoformat, default=None,
                            help="End of the history (ISO 8601); default: now, to the hour.")  # fmt: skip
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--workers", type=int, default=2, help="Loader processes on PostgreSQL (default 2).")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o) -> None:
        for name in ("patients", "days", "rounds_per_day", "batch_size", "workers"):
            if o[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
        if not 0 <= o["seed"] <= 999:
            raise CommandError("--seed must be between 0 and 999.")
        end = o["end"] or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        bar = tqdm(total=o["patients"], unit="patient", disable=o["no_progress"], file=self.stderr._out)

        observations = 0

        def progress(patients: int, new_observations: int) -> None:
            nonlocal observations
            observations += new_observations
            bar.update(patients)
            bar.set_postfix(observations=f"{observations:,}")

        try:
            report = synthetic_patients_load(
                patients=o["patients"], days=o["days"], seed=o["seed"], end=end, rounds_per_day=o["rounds_per_day"],
                first_index=o["first_index"], batch_size=o["batch_size"], workers=o["workers"], on_batch=progress,
            )  # fmt: skip
        except AlreadyLoaded as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(
            f"Loaded {report.patients:,} patients, {report.encounters:,} encounters, "
            f"{report.observations:,} observations, {report.medications:,} medication requests "
            f"in {report.seconds:.1f} s ({report.observations_per_second:,.0f} observation rows/s)."
        )
