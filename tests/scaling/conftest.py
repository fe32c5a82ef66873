import pytest

from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service
from controlplane.celery import app as celery_app
from tests.scaling.fake_servers import FakeKubernetes


@pytest.fixture
def cluster(settings, tmp_path):
    """The fake API server on loopback, configured as the cluster (no Kubernetes exists here); tasks run
    eagerly."""
    fake = FakeKubernetes()
    settings.SCALING_KUBECONFIG = fake.kubeconfig(tmp_path / "kubeconfig")
    celery_app.conf.task_always_eager = True
    try:
        yield fake
    finally:
        celery_app.conf.task_always_eager = False
        fake.stop()


@pytest.fixture
def policy_for():
    """A service named `name` and the policy the ensure service gives it (synthetic history, not predictive),
    read back as saved."""

    def make(name: str, **fields) -> ScalingPolicy:
        service = Service.objects.create(name=name, slug=name, route_prefix=f"api/{name}/")
        policy = services.scaling_policy_ensure(service, history_source="synthetic", predictive=False, **fields)[0]
        policy.refresh_from_db()
        return policy

    return make


@pytest.fixture
def policy_edit():
    """An admin edit: the policy re-read, the fields saved (the refresh runs on save)."""

    def edit(policy: ScalingPolicy, **fields) -> None:
        policy.refresh_from_db()
        for name, value in fields.items():
            setattr(policy, name, value)
        policy.save()

    return edit
