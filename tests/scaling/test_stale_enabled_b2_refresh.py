"""The forecast run refreshes each policy's state with an instance it loaded minutes before. A policy disabled
meanwhile (its autoscalers withdrawn) was made PENDING by it, and stayed so for good: the checker sends
applies of enabled policies only, and a disabled one is never applied."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from controlplane.celery import app as celery_app
from tests.scaling.fake_servers import FakeKubernetes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster(settings, tmp_path):
    call_command("seed_demo", stdout=StringIO())
    fake = FakeKubernetes()
    settings.SCALING_KUBECONFIG = fake.kubeconfig(tmp_path / "kubeconfig")
    celery_app.conf.task_always_eager = True
    yield fake
    celery_app.conf.task_always_eager = False
    fake.stop()


def _state(pk: int) -> tuple[bool, str, str]:
    return ScalingPolicy.objects.values_list("enabled", "apply_state", "desired_hash").get(pk=pk)


def test_a_policy_disabled_during_the_forecast_run_is_not_made_pending(cluster):
    ScalingPolicy.objects.exclude(service__slug="clinical-api").update(enabled=False)
    services.policies_reconcile()
    pk = ScalingPolicy.objects.get(service__slug="clinical-api").pk
    assert _state(pk)[1] == "active"
    run_instance = ScalingPolicy.objects.select_related("service").get(pk=pk)  # the forecast run's

    admin = ScalingPolicy.objects.get(pk=pk)
    admin.enabled = False
    admin.save(update_fields=["enabled", "updated_at"])
    services.policies_reconcile()  # the checker withdraws its autoscalers
    assert _state(pk) == (False, "not_configured", "")
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == []

    assert services.policy_state_refresh(run_instance) == "not_configured"
    services.policies_reconcile()
    assert _state(pk) == (False, "not_configured", "")
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == []


def test_a_policy_enabled_again_during_the_forecast_run_is_applied(cluster):
    ScalingPolicy.objects.exclude(service__slug="clinical-api").update(enabled=False)
    policy = ScalingPolicy.objects.get(service__slug="clinical-api")
    policy.enabled = False
    policy.save()
    run_instance = ScalingPolicy.objects.select_related("service").get(pk=policy.pk)  # loaded disabled

    policy.enabled = True
    policy.save(update_fields=["enabled", "updated_at"])
    assert _state(policy.pk)[1] == "pending"

    assert services.policy_state_refresh(run_instance) == "pending"
    assert _state(policy.pk)[1:] == ("pending", run_instance.desired_hash) and run_instance.desired_hash
    services.policies_reconcile()
    assert _state(policy.pk)[1] == "active"
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == ["clinical-api"]
