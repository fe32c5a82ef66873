"""A process that ends writes its L1 entries and bytes as 0: written as it held them, with a fresh stamp, an exited
worker's entries counted on the policy page (and against the L1 bound) for another 15 minutes. Its counters stay."""

from __future__ import annotations

import pytest

from apps.caching import selectors, services
from apps.caching.models import CacheStat
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def exiting_stack():
    services.cache_policy_ensure(namespace="audit_logs")
    stack = make_stack()
    for page in range(3):
        for _ in range(2):  # one load, one L1 hit each
            stack.get_or_load("audit_logs", ["page", page], lambda page=page: {"rows": [page]})
    # As a served worker's stack is (the exit flush is only ever a background stack's); set now, after the
    # reads, so that no flusher thread of its own outlives the test.
    stack.background = True
    return stack


def _l1(stack) -> dict:
    return selectors.cache_stats(namespace="audit_logs")["audit_logs"]["tiers"]["l1"]


def test_the_exit_flush_writes_l1_entries_and_bytes_as_none_held(exiting_stack):
    exiting_stack.flush_at_exit()

    l1 = _l1(exiting_stack)
    assert l1["entries"] == 0 and l1["bytes"] == 0 and l1["fullest_process_entries"] == 0
    assert l1["hits"] == 3  # the counters are kept


def test_an_exit_with_nothing_counted_since_the_last_flush_still_writes_them(exiting_stack):
    exiting_stack.flush_stats()
    assert _l1(exiting_stack)["entries"] == 3  # alive: what it holds

    exiting_stack.flush_at_exit()

    l1 = _l1(exiting_stack)
    assert l1["entries"] == 0 and l1["bytes"] == 0
    assert l1["hits"] == 3
    row = CacheStat.objects.get(namespace="audit_logs", tier="l1", process=exiting_stack.process)
    assert (row.entries, row.bytes, row.hits) == (0, 0, 3)


def test_a_live_process_flush_still_writes_what_it_holds(exiting_stack):
    exiting_stack.flush_stats()
    l1 = _l1(exiting_stack)
    assert l1["entries"] == 3 and l1["bytes"] > 0
