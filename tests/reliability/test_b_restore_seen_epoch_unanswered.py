"""The poll's compare saw the database go back and started the restore epoch in Redis, and the call that was to
read that epoch back (the one that drops what the process holds) got no answer: a socket timeout on a loaded host.
The process that saw the restore first kept its L1 and its policies until Redis answered again and a poll came,
and served what the restore took back meanwhile (the API's restore test, under load in make test).

The failure: the poll's probe before the draw and the compare reach the real Redis; the client is swapped for one
of a port nothing listens on once the compare has answered (redis-py raises its own ConnectionError, as for a
socket timeout), so only the calls after it get no answer."""

from __future__ import annotations

import pytest
import redis

from apps.caching.stack import _NOTE_RESTORE_MARK, RESTORE_EPOCH_KEY
from tests.caching.support import make_stack, set_policy
from tests.reliability.test_d_database_restore import Backup, _family_name, _read, _rename

pytestmark = pytest.mark.django_db(transaction=True)


def _read_before_next_poll(stack, patient) -> str | None:
    return stack.get_or_load("patient_data", ["restore-test-name", patient.pk], lambda: _family_name(patient.pk),
                             scope=f"patient:{patient.pk}")  # fmt: skip


def test_the_process_that_starts_the_epoch_drops_its_caches_though_the_epoch_is_not_read_back(patient):
    # No poll but the test's own (the reads below come before the next one), and no probe of the breaker's own.
    stack = make_stack(poll_interval=3600, breaker_seconds=3600)
    other = make_stack()
    assert _read(stack, patient) == _read(other, patient) == "Before"
    ttl = stack.policy("patient_data").ttl
    backup = Backup()
    _rename(patient, "After the backup")
    set_policy("patient_data", ttl_seconds=ttl + 7)
    assert _read(stack, patient) == _read(other, patient) == "After the backup"  # in L1, and in L2
    assert stack.policy("patient_data").ttl == ttl + 7
    epoch = stack.redis().get(RESTORE_EPOCH_KEY)

    backup.restore()
    compare = stack.redis().register_script(_NOTE_RESTORE_MARK)
    unreachable = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)

    def compare_then_no_answer(*args, **kwargs):
        answer = compare(*args, **kwargs)
        stack._redis = unreachable  # the compare answered; the calls after it get none
        return answer

    stack._note_restore_mark = compare_then_no_answer
    stack.tick(force=True)  # reads the mark, draws below it: the compare starts the epoch
    assert stack.redis() is unreachable, "the compare was not called"
    assert other.redis().get(RESTORE_EPOCH_KEY) not in (None, epoch), "the compare did not start the epoch"
    assert not stack.breaker.available(), "the epoch was read back: no failure was made"
    stack._note_restore_mark = None
    stack._redis = None  # Redis answers again (the stack connects anew); the breaker stays open until the reset

    assert _read_before_next_poll(stack, patient) == "Before"  # was "After the backup" from L1
    assert stack.policy("patient_data").ttl == ttl  # was ttl + 7

    stack.breaker.reset()
    assert _read(other, patient) == "Before"
    _rename(patient, "After the restore")
    assert _read(stack, patient) == _read(other, patient) == "After the restore"


def test_a_process_whose_compare_another_process_answered_first_drops_its_caches_in_the_same_poll(patient):
    """Two processes poll right after the restore: the other one's compare lands between this one's read of the
    mark and its own compare, and starts the epoch. This one's compare finds the mark moved (not a restore of its
    own to start); it kept its L1 and served the lost name until its next poll."""
    stack = make_stack(poll_interval=3600)  # no poll but the test's own
    other = make_stack()
    assert _read(stack, patient) == _read(other, patient) == "Before"
    backup = Backup()
    _rename(patient, "After the backup")
    assert _read(stack, patient) == _read(other, patient) == "After the backup"
    epoch = stack.redis().get(RESTORE_EPOCH_KEY)

    backup.restore()
    draw = stack._changed_since_by_database_clock

    def other_polls_between(since):
        result = draw(since)
        other.tick(force=True)  # draws the next number, at or below the mark: starts the epoch
        return result

    stack._changed_since_by_database_clock = other_polls_between
    stack.tick(force=True)
    stack._changed_since_by_database_clock = draw
    assert stack.redis().get(RESTORE_EPOCH_KEY) not in (None, epoch), "the other process started no epoch"
    assert _read_before_next_poll(stack, patient) == "Before"  # was "After the backup" from L1
