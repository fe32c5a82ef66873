"""The poll read the restore mark, drew a number at or below this process's last draw (the database went back),
and the Redis call that compares the two got no answer (review g3). The restore was neither seen nor fallen back
on: L1 served the lost write until the next poll, and with L1 dropped alone a read still took it from L2, keyed
by the restore epoch of before.

The failure: only the compare script is bound to a client of a port nothing listens on (redis-py raises its own
ConnectionError, as for a socket timeout or a dropped connection), so the poll's probe before it and every other
call reach the real Redis. A proxy would fail the probe too (that path, the mark not read, is covered by
test_d_database_restore's outage test); the breaker opened by another thread between the two calls takes the
same branch (`_redis_call` answers False without calling)."""

from __future__ import annotations

import pytest
import redis

from apps.caching.stack import _NOTE_RESTORE_MARK, RESTORE_EPOCH_KEY
from tests.caching.support import make_stack
from tests.reliability.test_d_database_restore import Backup, _family_name, _read, _rename

pytestmark = pytest.mark.django_db(transaction=True)


def _read_before_next_poll(stack, patient) -> str | None:
    return stack.get_or_load("patient_data", ["restore-test-name", patient.pk], lambda: _family_name(patient.pk),
                             scope=f"patient:{patient.pk}")  # fmt: skip


def test_a_compare_that_gets_no_answer_drops_the_caches_and_reads_no_l2_until_the_epoch_starts(patient):
    stack = make_stack(poll_interval=3600)  # no poll but the test's own: the read below comes before the next one
    other = make_stack()
    assert _read(stack, patient) == _read(other, patient) == "Before"
    backup = Backup()
    _rename(patient, "After the backup")
    assert _read(stack, patient) == _read(other, patient) == "After the backup"  # in L1, and in L2
    stack.tick(force=True)  # this process's last draw is past the backup's
    epoch = stack.redis().get(RESTORE_EPOCH_KEY)

    backup.restore()
    unreachable = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    stack._note_restore_mark = unreachable.register_script(_NOTE_RESTORE_MARK)  # this one call gets no answer
    stack.tick(force=True)  # reads the mark, draws at or below its last draw; the compare fails
    assert stack.redis().get(RESTORE_EPOCH_KEY) == epoch, "the compare reached Redis: no failure was made"
    stack._note_restore_mark = None  # Redis answers again
    stack.breaker.reset()

    assert _read_before_next_poll(stack, patient) == "Before"  # was "After the backup" from L1
    stack.l1.clear()
    assert _read_before_next_poll(stack, patient) == "Before"  # was "After the backup" from L2 (the old epoch)

    stack.tick(force=True)  # the next poll starts the epoch
    assert stack.redis().get(RESTORE_EPOCH_KEY) not in (None, epoch)
    assert _read(other, patient) == "Before"
    _rename(patient, "After the restore")
    assert _read(stack, patient) == _read(other, patient) == "After the restore"
