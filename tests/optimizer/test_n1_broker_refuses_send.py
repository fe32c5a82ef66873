"""The admin's "Apply the selected recommendations" caught only kombu's OperationalError (the broker unreachable).
A broker that answers and refuses the connection raises the transport's own errors as they are: RabbitMQ's
NOT_ALLOWED for a vhost missing or down (amqp.exceptions.NotAllowed), ACCESS_REFUSED for rotated credentials
(AccessRefused). The action was a 500 and the recommendation stayed applying ("waiting for a worker") for 2 h,
a second apply refused. It now says the broker did not take it and leaves the recommendation as it was.
Real RabbitMQ: the app's sends go to a vhost that does not exist, or with a wrong password."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command

from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation

pytestmark = pytest.mark.django_db(transaction=True)  # the send runs on the claim's commit

CHANGELIST = "/admin/optimizer/recommendation/"
BROKER = os.environ.get("CELERY_BROKER_URL") or os.environ.get("TEST_CELERY_BROKER_URL", "")


def _refusing(kind: str) -> str:
    if kind == "missing vhost":
        return BROKER.rsplit("/", 1)[0] + "/controlplane-no-such-vhost"
    scheme, rest = BROKER.split("://", 1)
    return f"{scheme}://guest:rotated-away@{rest.split('@', 1)[1]}"


@pytest.fixture(params=["missing vhost", "rotated credentials"])
def broker_refusing(request):
    """The app's sends go to a RabbitMQ that refuses them; its connection pools are put back afterwards."""
    if not BROKER.startswith("amqp://"):
        pytest.skip("needs RabbitMQ (CELERY_BROKER_URL=amqp://...)")
    from controlplane.celery import app

    saved = app.conf.broker_write_url, app._pool, app.amqp._producer_pool
    app.conf.broker_write_url = _refusing(request.param)
    app._pool = app.amqp._producer_pool = None  # the pools made for the working broker are kept aside
    yield request.param
    app.conf.broker_write_url, app._pool, app.amqp._producer_pool = saved


def _proposal() -> Recommendation:
    run = OptimizationRun.objects.create(target="database", status=OptimizationRun.Status.SUCCEEDED)
    return Recommendation.objects.create(
        run=run, step="database", kind="create_index", subject="dba_n1_index", title="Create index dba_n1_index",
        reason="test", change={"index": "dba_n1_index"},
    )  # fmt: skip


def test_a_refused_send_warns_and_leaves_the_recommendation_pending(admin_client, broker_refusing):
    proposal = _proposal()
    admin_client.raise_request_exception = False
    response = admin_client.post(CHANGELIST, {"action": "apply_selected", "_selected_action": [proposal.pk]})
    assert response.status_code == 302, f"{broker_refusing}: {response.status_code}"  # was 500
    [message] = get_messages(response.wsgi_request)
    assert message.level_tag == "warning"
    expected = "NotAllowed" if broker_refusing == "missing vhost" else "AccessRefused"
    assert "not queued, the broker did not take it" in message.message and expected in message.message
    assert "Nothing was applied" in message.message
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.PENDING, proposal.outcome  # was applying, for 2 h
    assert proposal.decided_by is None and proposal.outcome == {}


def test_a_refused_run_is_failed_not_left_pending(broker_refusing):
    """`optimize` without --inline sends its steps the same way: the run is finished as failed, exit status 2."""
    with pytest.raises(CommandError) as refused:
        call_command("optimize", "caching", stdout=StringIO(), stderr=StringIO())
    run = OptimizationRun.objects.latest("started_at")
    assert refused.value.returncode == 2
    assert f"Run #{run.pk} was not sent: the broker did not take it" in str(refused.value)
    assert run.status == OptimizationRun.Status.FAILED
    assert run.steps.get().status == OptimizationStep.Status.FAILED
