"""A failed model load is a metric, not only the row's `load_failure` text (which keeps the last one and is
cleared by the next load that succeeds): a Prometheus counter per deployment and mode, and the
`inference_load_failures` series the dashboard charts and the series API answers. No call's input is in them.

The load is replaced by one that raises (an out-of-memory cannot be produced on cue), as in test_load_failures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.inference import serving
from apps.inference.models import ModelDeployment
from apps.metrics import selectors
from apps.metrics.models import MetricPoint
from apps.resources.selectors import database_now

pytestmark = pytest.mark.django_db


def out_of_memory(spec, mode):
    raise MemoryError("out of memory")


def _embed(api, token, name: str):
    return api.post(f"/api/v1/inference/{name}/embed", {"inputs": ["chest pain 40"]}, format="json",
                    HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip


def test_each_failed_load_is_counted_per_deployment_and_mode(api, token, staff_api, client, monkeypatch):
    # Counted from here: other tests of the session leave failed loads of their own deployments in the series.
    began = database_now()
    monkeypatch.setattr(serving, "load", out_of_memory)
    ModelDeployment.objects.create(name="counted-oom", source=ModelDeployment.Source.MINILM, task="embedding",
                                   device="cpu", quantization="fp32")  # fmt: skip
    assert _embed(api, token, "counted-oom").status_code == 503
    monkeypatch.setattr(serving, "LOAD_FAILURE_SECONDS", 0.0)  # tried again: a second failed load
    assert _embed(api, token, "counted-oom").status_code == 503

    points = MetricPoint.objects.filter(series="inference.load_failures.counted-oom.fp32")
    assert sum(point.sum for point in points) == 2
    assert not MetricPoint.objects.filter(series__contains="chest").exists()  # never a call's input

    assert selectors.counted_total("inference_load_failures", since=began, until=database_now()) == 2
    window = {"start": began.isoformat(), "end": (database_now() + timedelta(seconds=1)).isoformat()}
    response = staff_api.get("/api/v1/metrics/series/", {"metric": "inference_load_failures", "step": 300, **window})
    assert response.status_code == 200, response.content
    values = [value for _, value in response.json()["points"]]
    assert sum(values) == 2 and None not in values  # a step without failures is 0, not "no data"

    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    counter = 'cp_inference_load_failures_total{deployment="counted-oom",mode="fp32"}'
    line = next(line for line in body.splitlines() if line.startswith(counter))
    assert float(line.split()[-1]) >= 2  # the process's counter (other tests of the process may add to it)


def test_a_metrics_failure_does_not_change_what_the_call_answers(api, token, monkeypatch, caplog):
    from apps.metrics import services

    def broken(**_):
        raise RuntimeError("metrics away")

    monkeypatch.setattr(serving, "load", out_of_memory)
    monkeypatch.setattr(services, "inference_load_failure_record", broken)
    ModelDeployment.objects.create(name="counted-broken", source=ModelDeployment.Source.MINILM, task="embedding",
                                   device="cpu", quantization="fp32")  # fmt: skip
    response = _embed(api, token, "counted-broken")
    assert response.status_code == 503 and response.json()["code"] == "deployment_unavailable"
    assert "could not be counted" in caplog.text
