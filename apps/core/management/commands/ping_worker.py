import time
import uuid

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.broker_errors import broker_failure, send_errors
from apps.core.selectors import worker_ping_answer
from apps.core.tasks import heartbeat

MAX_TIMEOUT_SECONDS = 24 * 3600  # a day: any longer is no ping


class Command(BaseCommand):
    help = "Send a task through the broker and wait until a worker has run it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for the worker.")

    def handle(self, *args, timeout: float, **options) -> None:
        # 0, negative or nan sent an expired task and waited not at all; past the calendar's end (about 2.5e11 s)
        # the task's expiry date was an OverflowError's traceback, not this message.
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise CommandError(
                f"--timeout must be a number of seconds more than 0 and at most {MAX_TIMEOUT_SECONDS}, not {timeout}."
            )
        nonce = uuid.uuid4().hex
        started = time.monotonic()
        try:
            heartbeat.apply_async(kwargs={"nonce": nonce}, expires=timeout)
        except send_errors(heartbeat.app) as exc:
            raise CommandError(f"The task was not sent: {broker_failure(exc)}.") from exc
        while time.monotonic() - started < timeout:
            answer = worker_ping_answer(nonce)
            if answer:
                elapsed = (time.monotonic() - started) * 1000
                self.stdout.write(f"Worker {answer['hostname']} ran the task in {elapsed:.0f} ms (round trip).")
                return
            time.sleep(0.05)
        raise CommandError(f"No worker ran the task within {timeout:.0f} s: is a worker consuming 'default'?")
