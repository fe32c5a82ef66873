"""What a process still had to send to Redis when another process started a restore epoch (review d, finding 4):
the generations and the restore watermark's draw of writes the restore took back. Sent into the new epoch, the
draw raised the mark above what the restored sequence hands out, so the next poll started a second, false epoch
(every cache of the fleet dropped again, nothing restored), and the generation of a lost write sat in the new key
space. The restore is test_d_database_restore's (rows and the sequence put back with plain SQL)."""

from __future__ import annotations

import pytest
import redis
from django.db import connection, transaction

from apps.caching.stack import RESTORE_EPOCH_KEY, RESTORE_MARK_KEY
from apps.core.breaker import CircuitBreaker
from tests.caching.support import make_stack
from tests.reliability.test_d_database_restore import Backup, _read

pytestmark = pytest.mark.django_db(transaction=True)


def _lost_write(stack, patient_id: int) -> None:
    """A write after the backup, through `stack`: its bump and draw are taken back by the restore."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE clinical_patient SET family_name = 'Lost' WHERE id = %s", [patient_id])
        stack.invalidate_scopes([f"patient:{patient_id}"])


def _restored_and_seen(backup: Backup, seer, patient) -> tuple[bytes, bytes]:
    """Restore, and let `seer` (another process) see it: the new restore epoch and the mark it set."""
    backup.restore()
    assert _read(seer, patient) == "Before"
    epoch, mark = seer.redis().mget([RESTORE_EPOCH_KEY, RESTORE_MARK_KEY])
    assert epoch, "the restore started no epoch"
    return epoch, mark


def test_a_publish_left_pending_by_a_redis_outage_is_forgotten_not_sent_into_the_new_epoch(patient):
    """A's publish fails (Redis away), the database is restored and B starts the epoch; Redis answers A again and
    A's next write comes before its next poll: the first call learns the epoch, and what it forgot is not sent."""
    a, b = make_stack(), make_stack()
    assert _read(a, patient) == _read(b, patient) == "Before"
    backup = Backup()
    b.tick(force=True)
    a._redis, a._l2_epoch = redis.Redis.from_url("redis://127.0.0.1:1/0"), None  # Redis unreachable from A
    _lost_write(a, patient.pk)
    ((scope_key, lost_generation),) = a._pending_publishes.items()
    assert a._pending_drawn, "the lost write's draw waits to be raised into the mark"
    epoch, _ = _restored_and_seen(backup, b, patient)

    a._redis = None  # Redis answers A again
    a.breaker.reset()
    a.invalidate_scopes(["patient:999999"])  # autocommit: published at once

    assert a._restore_epoch == epoch.decode()
    in_redis = b.redis().get(b._l2_key("g", scope_key))
    assert in_redis is None or int(in_redis) != lost_generation, "a lost write's generation sent into the new epoch"
    b.tick(force=True)
    assert b.redis().get(RESTORE_EPOCH_KEY) == epoch, "a second restore epoch: every cache dropped, nothing restored"
    assert _read(b, patient) == "Before"


@pytest.mark.parametrize("last_look", ["over a poll interval ago", "within a poll interval"])
def test_a_draw_sent_by_a_process_that_has_not_polled_since_the_restore_raises_no_mark(patient, last_look):
    """A's publish waits behind the shared breaker (tripped by a local cache: A's own L2 key space stays as it
    was), the database is restored and B starts the epoch; the breaker closes and A's next write publishes before
    A polls (a worker, which makes no cached read, never does). The lost write's draw, of the epoch before, is
    forgotten, and the mark left alone: A looks at the epoch first when its last look is over a poll interval old,
    and within one (review d, finding 7: the time guard does not make A look again) the raise itself checks the
    epoch, and A learns of it there.

    B polls only when told (an interval of an hour): with make_stack's 0.05 s, B's read of the restored name polled
    again whenever over 0.05 s passed between its forced poll and the read (a loaded machine), and that second
    draw, the restored sequence's next number, is the lost write's: it raised the mark to it (mark == lost_drawn)."""
    breaker = CircuitBreaker(lambda: None, name="shared cache (test)", open_seconds=3600)
    within = last_look == "within a poll interval"
    a = make_stack(breaker=breaker, **({"poll_interval": 3600} if within else {}))
    b = make_stack(poll_interval=3600)
    assert _read(a, patient) == _read(b, patient) == "Before"
    backup = Backup()
    b.tick(force=True)
    breaker.failure()  # another user of the shared cache saw it hang
    _lost_write(a, patient.pk)
    lost_drawn = a._pending_drawn
    assert lost_drawn, "the lost write's draw waits to be raised into the mark"
    epoch, mark = _restored_and_seen(backup, b, patient)
    assert int(mark) < lost_drawn

    breaker.reset()  # the probe answered
    assert a._restore_epoch != epoch.decode(), "A has not looked at the epoch since the restore"
    if not within:
        a._last_probe_ok -= 3600  # A's last look at the epoch: before the restore, a while ago
    a.invalidate_scopes(["patient:999999"])  # A has not polled since

    assert int(b.redis().get(RESTORE_MARK_KEY)) < lost_drawn, "a draw of before the restore raised into its epoch"
    b.tick(force=True)
    assert b.redis().get(RESTORE_EPOCH_KEY) == epoch, "a second restore epoch: every cache dropped, nothing restored"
    assert a._restore_epoch == epoch.decode()
    assert a._pending_drawn == 0 and not a._pending_publishes.get(a.scope_key(f"patient:{patient.pk}"))
    assert _read(a, patient) == "Before"
