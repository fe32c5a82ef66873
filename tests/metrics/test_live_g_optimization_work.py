"""The live feed's running optimizations: a run of no service names no hidden service to a viewer who does not
see every service, and a running step's own progress moves the run's progress bar."""

import json

import pytest
from django.contrib.auth.models import Group

from apps.metrics.selectors import live_snapshot
from apps.optimizer import services
from apps.optimizer.models import OptimizationStep
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def hidden_and_open():
    hidden, _ = service_ensure(slug="fhir-api", name="FHIR API")
    hidden.visible_to.add(Group.objects.create(name="FHIR team"))
    shown, _ = service_ensure(slug="open-svc", name="Open service")
    return hidden, shown


def _running(run, message: str, progress: float) -> None:
    OptimizationStep.objects.filter(run=run).update(status="running", progress=progress, progress_message=message)


def _work(visible_services) -> dict[int, dict]:
    return {item["id"]: item for item in live_snapshot(visible_services=visible_services)["work"]}


def test_a_run_of_no_service_shows_only_its_step_to_who_does_not_see_every_service(hidden_and_open):
    hidden, shown = hidden_and_open
    every = services.optimization_run_create(target="scaling")
    _running(every, "forecast fhir-api", 0.5)

    outsider = _work(frozenset({shown.pk}))
    assert outsider[every.pk]["message"] == "scaling"  # the step, not the hidden service it is forecasting
    assert "fhir-api" not in json.dumps(outsider)
    for who_sees_every_service in (None, frozenset({shown.pk, hidden.pk})):
        assert _work(who_sees_every_service)[every.pk]["message"] == "scaling: forecast fhir-api"


def test_a_run_of_a_visible_service_keeps_its_message(hidden_and_open):
    _, shown = hidden_and_open
    own = services.optimization_run_create(target="scaling", service=shown)
    _running(own, "forecast open-svc", 0.5)
    assert _work(frozenset({shown.pk}))[own.pk]["message"] == "scaling: forecast open-svc"


def test_a_one_step_run_shows_its_step_progress(hidden_and_open):
    run = services.optimization_run_create(target="caching")
    _running(run, "measuring", 0.6)
    assert _work(None)[run.pk]["progress"] == 0.6  # it read 0.0 until the step finished

    run_all = services.optimization_run_create(target="all")  # four steps: one done, the second half way
    OptimizationStep.objects.filter(run=run_all, name="database").update(status="skipped", progress=1.0)
    OptimizationStep.objects.filter(run=run_all, name="caching").update(status="running", progress=0.5)
    assert _work(None)[run_all.pk]["progress"] == 0.375
