from datetime import UTC, datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from apps.clinical.loader import AlreadyLoaded, synthetic_patients_load, synthetic_range_refuse_loaded
from apps.clinical.services import EARLIEST_BIRTH_DATE
from apps.clinical.synthetic import OLDEST_AGE_YEARS

# Inclusive bounds: past them a load overflows a date, forks a process per worker or never ends.
BOUNDS = {
    "patients": (1, 10_000_000),
    "days": (1, 3650),
    "rounds_per_day": (1, 1440),
    "batch_size": (1, 100_000),
    "workers": (1, 32),
    "seed": (0, 999),
    # An MRN holds the index in seven digits (S001-0000042).
    "first_index": (0, 9_999_999),
}
# The oldest patients are born up to OLDEST_AGE_YEARS before --end: no earlier than a birth date the product
# accepts (a load ending in 1950 stored patients born in the 1850s, which registering one refuses).
EARLIEST_END = datetime.combine(EARLIEST_BIRTH_DATE, time.min, UTC) + timedelta(days=OLDEST_AGE_YEARS * 365.25 + 1)


class Command(BaseCommand):
    help = "Load deterministic synthetic patients with vitals, labs, encounters and medications."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, required=True)
        parser.add_argument("--days", type=int, default=7, help="Days of history before --end (default 7).")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--rounds-per-day", type=int, default=4, help="Vital-sign rounds a day (default 4).")
        parser.add_argument("--first-index", type=int, default=0, help="Add patients after an earlier load.")
        parser.add_argument("--end", type=datetime.fromisoformat, default=None,
                            help="End of the history (ISO 8601; without an offset, in TIME_ZONE); default: now, "
                                 "to the hour.")  # fmt: skip
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--workers", type=int, default=2, help="Loader processes on PostgreSQL (default 2).")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o) -> None:
        for name, (low, high) in BOUNDS.items():
            if not low <= o[name] <= high:
                raise CommandError(f"--{name.replace('_', '-')} must be between {low:,} and {high:,}.")
        last_index = BOUNDS["first_index"][1]
        if o["first_index"] + o["patients"] - 1 > last_index:
            raise CommandError(
                f"--first-index plus --patients must end at index {last_index:,} at most (an MRN holds seven digits)."
            )
        now = datetime.now(UTC)
        end = o["end"] or now.replace(minute=0, second=0, microsecond=0)
        if timezone.is_naive(end):  # a wall-clock time where the product runs (TIME_ZONE), as Django reads one
            end = timezone.make_aware(end)
        # Patients born after today, or before the earliest birth date the product accepts, are not data.
        if not EARLIEST_END <= end <= now:
            raise CommandError(f"--end must be between {EARLIEST_END:%Y-%m-%d} and now.")
        try:  # before the progress bar is drawn (the load checks again, for a load started meanwhile)
            synthetic_range_refuse_loaded(seed=o["seed"], first_index=o["first_index"], patients=o["patients"])
        except AlreadyLoaded as exc:
            raise CommandError(str(exc)) from exc
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
