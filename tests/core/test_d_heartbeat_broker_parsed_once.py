"""core.heartbeat reads whether the broker drops expired messages from the broker URL once per process.

Before: every heartbeat (each beat, on `default`) parsed CELERY_BROKER_URL again, a setting that does not change
while a process runs. The parse ends in a look-up in BROKERS_DROPPING_EXPIRED, counted here.
"""

import pytest

from apps.core import tasks

pytestmark = pytest.mark.django_db


class CountedBrokers(frozenset):
    """BROKERS_DROPPING_EXPIRED, counting the parses that end in it."""

    looked_up = 0

    def __contains__(self, scheme: object) -> bool:
        type(self).looked_up += 1
        return super().__contains__(scheme)


def test_the_broker_url_is_parsed_once_over_several_heartbeats(monkeypatch):
    monkeypatch.setattr(tasks, "BROKERS_DROPPING_EXPIRED", CountedBrokers(tasks.BROKERS_DROPPING_EXPIRED))
    monkeypatch.setattr(CountedBrokers, "looked_up", 0)
    monkeypatch.setattr(tasks, "long_queues", lambda: ())  # nothing relayed: no message sent to a long queue
    forget = getattr(tasks._broker_drops_expired, "cache_clear", lambda: None)  # (the old code kept nothing)
    forget()  # as a fresh process
    try:
        for _ in range(3):
            tasks.heartbeat.apply()
        assert CountedBrokers.looked_up == 1  # it was 3: one parse a heartbeat
        app = tasks.heartbeat.app
        assert tasks._broker_drops_expired(app) is tasks._broker_drops_expired.__wrapped__(app)  # as parsed now
    finally:
        forget()  # the next test's parse sees the real set
