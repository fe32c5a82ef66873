"""A deleted policy's autoscalers are removed by scaling.remove_objects, which retries itself (no row is left to
keep a failure on). A retry the broker refused (RabbitMQ's vhost down: amqp's NotAllowed) was wrapped by Celery's
retry() in Reject(requeue=False): the worker dropped the task, and the autoscalers stayed on the cluster with no
word anywhere. A refused retry now logs an error naming each of them, to remove by hand.
Real RabbitMQ: this environment's own vhost is deleted for the retry's send and created again afterwards. The
cluster is the scaling tests' fake API server (no Kubernetes exists here). The task runs as a worker runs it."""

from __future__ import annotations

import logging

import pytest

from apps.scaling import kube, services, tasks
from controlplane.celery import app as celery_app
from tests.scaling.removal_support import NAME, NS, applied, deleted_with_its_removal_failing

pytestmark = pytest.mark.django_db(transaction=True)  # the delete's removal is sent on its commit


def _as_a_worker_runs_it(refs: list[dict], retries: int) -> list[str]:
    task = tasks.remove_objects
    task.push_request(
        id=f"e2-{retries}", args=[refs], kwargs={}, retries=retries, called_directly=False, is_eager=False
    )
    try:
        return task.run(refs)
    finally:
        task.pop_request()


def test_a_refused_retry_names_the_autoscalers_to_remove_by_hand(request, cluster, caplog):
    policy = applied()
    refs = services._withdrawable(policy)
    deleted_with_its_removal_failing(cluster, policy)
    cluster.fail["VerticalPodAutoscaler"] = 503  # the next try fails too, and its retry is refused
    celery_app.conf.task_always_eager = False  # sent to the broker; the cluster fixture sets it back after
    request.getfixturevalue("vhost_deleted")
    caplog.clear()  # the delete's own eager tries logged their failures

    with caplog.at_level(logging.ERROR, logger="apps.scaling.services"):
        outcome = _as_a_worker_runs_it(refs, retries=1)  # raised Reject before: the worker dropped the task

    assert outcome == [f"not removed, retry not sent: {ref['kind']}/{ref['name']}" for ref in refs]
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and r.name == "apps.scaling.services"]
    assert "its retry not sent (the broker did not take it (NotAllowed" in error
    assert "HTTP 503" in error
    assert f"remove them: VerticalPodAutoscaler/{NS}/{NAME}, HorizontalPodAutoscaler/{NS}/{NAME}" in error
    assert cluster.autoscalers_of(NS, NAME) == [NAME]  # still there: what the error asks to remove


def test_the_last_try_still_fails_with_the_clusters_error(cluster):
    """Retried 6 times, as autoretry_for did: the last failure is the task's, not a Retry."""
    policy = applied()
    refs = services._withdrawable(policy)
    deleted_with_its_removal_failing(cluster, policy)
    cluster.fail["VerticalPodAutoscaler"] = 503
    with pytest.raises(kube.ApplyError, match="503"):
        _as_a_worker_runs_it(refs, retries=tasks.remove_objects.max_retries)
