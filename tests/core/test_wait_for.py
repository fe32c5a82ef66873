"""tests.helpers.wait_for, the one wait on a condition the process-starting tests share: it returns once the
condition holds, and a timeout names what was awaited and ends with the tail of the given log."""

import itertools

import pytest

from tests.helpers import LOG_TAIL_CHARS, wait_for


def test_returns_once_the_condition_holds():
    calls = itertools.count(1)
    wait_for(lambda: next(calls) >= 3, 30, "the third call")
    assert next(calls) == 4  # polled until true, then no more


def test_a_timeout_names_what_was_awaited_and_ends_with_the_logs_tail(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("early line\n" + "x" * LOG_TAIL_CHARS + "\nlast line\n")
    with pytest.raises(AssertionError) as failure:
        wait_for(lambda: False, 0, "the server to start", log)
    message = str(failure.value)
    assert message.startswith("Timed out after 0 s waiting for the server to start; server.log ends:\n")
    assert message.endswith("last line\n") and "early line" not in message


def test_a_log_never_written_is_said_so(tmp_path):
    with pytest.raises(AssertionError, match=r"waiting for the worker; worker.log ends:\n\(not written\)"):
        wait_for(lambda: False, 0, "the worker", tmp_path / "worker.log")
