"""Celery beat's liveness heartbeat: the scheduler touches its file after each pass of beat's loop.

Beat runs one loop in its main thread; each pass reads the schedule from the database and sends what is
due. A pass stuck on a lock or a hung connection left beat Running, and no nightly job was sent again. A
thread touching the file would keep it fresh then; the loop's own pass does not. The beat Deployment
selects this scheduler (`--scheduler`) and probes `python -m apps.core.liveness beat`.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

from celery.beat import SchedulingError
from django.db import close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler
from kombu import Connection
from kombu.exceptions import OperationalError

from apps.core.liveness import TOUCH_INTERVAL, heartbeat_path, touch_heartbeat

logger = logging.getLogger(__name__)


class HeartbeatScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler (the settings' CELERY_BEAT_SCHEDULER), touching the beat heartbeat."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat = heartbeat_path("beat")
        # Beat sleeps up to max_interval between passes: a longer one (beat_max_loop_interval) would let
        # a healthy beat's file age past the probe's limit.
        self.max_interval = min(self.max_interval, TOUCH_INTERVAL)

    def schedule_changed(self) -> bool:
        """Also changed when the schedules' stamp went back: the database restored from a backup. The library
        reloads on a later stamp only, and beat kept sending the schedules as edited after the backup (a task
        the restore enabled again never sent, one it no longer has still sent) until the next edit."""
        last = self._last_timestamp
        if super().schedule_changed():
            return True
        stamp = self._last_timestamp
        return bool(stamp and last and stamp < last)

    def tick(self, *args, **kwargs) -> float:
        interval = super().tick(*args, **kwargs)
        touch_heartbeat(self.heartbeat)
        return interval

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        """Celery's send of a due entry, waiting for the broker while it is unreachable (the connection's own
        retry loop, touching the heartbeat) and then sending it. Celery's send gave up after its publish retries
        (about a second): a nightly run due while RabbitMQ restarted was never sent, yet beat had already
        recorded it as run (last_run_at, total_run_count). If the broker is still away once the loop's retries
        (broker_connection_max_retries) are spent, the entry's run is given back: it is not recorded as run,
        and is due again at the next pass; so it is when beat is stopped while it waits (a redeploy during a
        RabbitMQ outage had skipped the nightly run until the next night). A one-off's run, written before its send,
        is written back for the wait and again just before the send that follows (`_write_run`)."""
        if advance:
            entry, advance = self.reserve(entry), False
        one_off = written = self._one_off_recorded(entry)
        while True:
            if one_off and not written:  # the broker is back: the run is made from here on
                self._write_run(entry, made=True)
                written = True
            try:
                return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
            except SchedulingError as exc:
                if not self._broker_unreachable(exc):
                    raise  # its arguments or the task: sending again would not help
                logger.error("beat: %s; waiting for the broker to send it", exc)
                if written:  # the wait may be the whole outage: a beat killed in it sends the one-off again
                    written = not self._write_run(entry, made=False)
                try:
                    self._wait_for_broker(producer)
                except (OperationalError, OSError):  # its retries spent, the broker still away
                    self._unreserve(entry, write=one_off)
                    raise exc from None
                except BaseException:  # beat stopped while it waited (SIGTERM: SystemExit): nothing was sent
                    self._unreserve(entry, write=one_off)
                    raise

    def _one_off_recorded(self, entry) -> bool:
        """Write a one-off schedule's run (reserved by the tick) to the database before it is sent, and whether
        this entry is one. Beat writes runs at its next sync, minutes later: killed meanwhile (kill -9, an OOM
        kill, a node lost), the restarted beat found the one-off not run and sent it again, a load test or an
        optimization applied twice. Written first, a beat killed between the write and the send leaves it
        unsent: at most once. A write that fails raises (Celery logs it) and the run is given back, due again."""
        model = getattr(entry, "model", None)
        if model is None or not model.one_off:
            return False
        try:
            entry.save()
        except Exception:
            self._unreserve(entry)
            raise
        return True

    def _write_run(self, entry, *, made: bool) -> bool:
        """Write a one-off's reserved run to the database as made, or back as not made (the run before), leaving
        beat's own reservation as it is; whether it was written. A one-off is written back while beat waits for
        the broker (minutes, an outage long): killed -9 then, the restarted beat found it run and disabled it,
        never sent. It is written as made again just before the send that follows (at most once); that write
        failing, the run is given back and raised (Celery logs it): due again, not sent unrecorded."""
        model = entry.model
        if made:
            close_old_connections()  # after a wait as long as the outage: a connection the server dropped
        run = {"last_run_at": model.last_run_at, "total_run_count": model.total_run_count}
        if not made:
            run = {"last_run_at": entry.last_run_at, "total_run_count": max(model.total_run_count - 1, 0)}
        try:
            type(model)._default_manager.filter(pk=model.pk).update(**run)  # no_changes: beat re-reads nothing
        except Exception:
            if made:
                self._unreserve(entry)
                raise
            logger.exception("beat: could not write back the run of %s while it waits for the broker", entry.name)
            return False
        return True

    def _broker_unreachable(self, exc: BaseException) -> bool:
        cause = exc.__cause__ or exc.__context__
        errors = (*self.connection.recoverable_connection_errors, *self.connection.connection_errors)
        return isinstance(cause, (OperationalError, ConnectionError, *errors))

    def _wait_for_broker(self, producer) -> None:
        connection = producer.connection if producer is not None else self.connection
        connection.ensure_connection(
            _log_retry,
            self.app.conf.broker_connection_max_retries,
            callback=partial(touch_heartbeat, self.heartbeat),
        )

    def _unreserve(self, entry, *, write: bool = False) -> None:
        """Undo `reserve` (beat's tick reserves an entry before sending it): the model's last run is the one
        before, one run fewer, and beat reads its heap again so that the entry is due at once. `write`: at once
        (a one-off's run, written before its send), not only at the next sync."""
        model = getattr(entry, "model", None)
        if model is not None:
            model.last_run_at = entry.last_run_at  # the entry reserved keeps the time of the run before
            model.total_run_count = max(model.total_run_count - 1, 0)
            # Written at the next sync, beat's last included: one during the wait (beat's SIGTERM handler
            # syncs before it exits) had already written the run as made.
            self._dirty.add(entry.name)
            if write:
                with contextlib.suppress(Exception):  # the next sync writes it
                    entry.save()
        self._heap = None

    def _ensure_connected(self) -> Connection:
        """Celery's first connection to the broker (when an entry is first due), touching the heartbeat each
        second its retry loop waits: beat waiting for RabbitMQ is alive, and a restart would drop the entry
        it is sending (already marked run), where waiting sends it when the broker is back."""
        return self.connection.ensure_connection(
            _log_retry,
            self.app.conf.broker_connection_max_retries,
            callback=partial(touch_heartbeat, self.heartbeat),
        )


def _log_retry(exc: Exception, interval: float) -> None:
    logger.error("beat: Connection error: %s. Trying again in %s seconds...", exc, interval)
