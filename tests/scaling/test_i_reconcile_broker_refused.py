"""The scaling checker (beat, every minute) sends each due apply as it judges the policies, one by one. Sent while
RabbitMQ refused the connection (its vhost down), amqp's NotAllowed came out of the first send and ended the
round: the policies after it were not judged at all (an emergency mode set by hand until a time past was not
ended, a stuck apply not given up), and the next minute ended at the same policy again, for as long as the
broker refused. A refused send is now logged and the round goes on; the policy, still due, is sent next minute.
Real RabbitMQ: this environment's own vhost is deleted for the round and created again afterwards. The cluster
is the scaling tests' fake API server (no Kubernetes exists here)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from controlplane.celery import app as celery_app

pytestmark = pytest.mark.django_db(transaction=True)  # the sends run on the checker's commit


def test_a_refused_apply_send_does_not_end_the_round(cluster, policy_for, vhost_deleted, caplog):
    celery_app.conf.task_always_eager = False  # sent to the broker; the cluster fixture sets it back after
    policies = [policy_for("triage"), policy_for("radiology")]
    ended_an_hour_ago = timezone.now() - timedelta(hours=1)
    ScalingPolicy.objects.filter(pk__in=[p.pk for p in policies]).update(
        emergency_manual=True, emergency_until=ended_an_hour_ago
    )
    assert {p.apply_state for p in ScalingPolicy.objects.all()} == {ScalingPolicy.ApplyState.PENDING}

    with caplog.at_level(logging.WARNING, logger="apps.scaling.services"):
        due = services.policies_reconcile()  # raised NotAllowed at the first policy before

    assert sorted(due) == sorted(p.pk for p in policies)  # still due: sent by the next round
    for policy in ScalingPolicy.objects.all():
        assert (policy.emergency_manual, policy.emergency_until) == (False, None), policy.service_id
        assert policy.apply_state == ScalingPolicy.ApplyState.PENDING
    refused = [r.getMessage() for r in caplog.records if "the broker did not take it" in r.getMessage()]
    assert len(refused) == 2 and all("NotAllowed" in line for line in refused), refused
