import pytest

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
