"""A deleted rule's "resolved" is retried by its task on the channels that failed. A retry the broker refused
(RabbitMQ's vhost down: amqp's NotAllowed) was rejected by the worker, and the receivers were never told nor named:
only the last try's error names whom to tell by hand. A refused retry now logs that error, with the refusal.
Real RabbitMQ: this environment's own vhost is deleted for the retry's send (after the delete queued the task,
whose send is kept aside as in test_rule_delete_i2_queued) and created again afterwards; the receivers are real
loopback listeners that never answer. The task runs here as a worker runs it (not called directly)."""

from __future__ import annotations

import pytest

from apps.metrics import tasks
from tests.metrics.test_rule_delete_i2_queued import _firing_rules, _hung, _no_seeded_rules, queued, receiver

pytestmark = pytest.mark.django_db
__all__ = ["_no_seeded_rules", "queued", "receiver"]  # fixtures


def test_a_refused_retry_names_the_receivers_to_tell_by_hand(
    request, receiver, queued, monkeypatch, settings, caplog, django_capture_on_commit_callbacks
):
    [rule] = _firing_rules(receiver, ["CPU"])
    _hung(receiver, settings)
    with django_capture_on_commit_callbacks(execute=True):
        rule.delete()
    [(kwargs, _)] = queued
    monkeypatch.undo()  # the task's own apply_async again: its retry goes to the broker
    request.getfixturevalue("vhost_deleted")
    task = tasks.deleted_alert_resolution_send
    task.push_request(id="b-refused", retries=0, called_directly=False, is_eager=False)
    try:
        task.run(**kwargs)  # raised Reject: the worker dropped the task
    finally:
        task.pop_request()
    assert receiver.accepted == 2  # both channels tried, both failed
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "its retry not sent (the broker did not take it (NotAllowed" in error
    assert f"tell webhook http://127.0.0.1:{receiver.port}/..., email oncall@example.org by hand" in error
    assert "s3cr3t" not in caplog.text
