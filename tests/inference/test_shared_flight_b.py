"""The cache's single flight hands the calls waiting on a load (the same client's same body) the loading call's
error. A client that sent a generation twice and dropped the first got 499 on the second, still connected
(the first's client gone, shared), and the second call's patient was never checked nor recorded: every shared
error (a model failure, a full queue, a timeout) skipped it. A call whose client is still here now loads
again (and answers 200), and a shared error is recorded for the waiting call's patient too.

The first call is held (a wrapped serving.generate) until the second waits on its load, so the second is the
one the flight hands its error to; the model is the real SmolLM2 (the cancelled call must be the model's)."""

import socket
import threading
from datetime import date

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.caching import stack
from apps.clinical.services import patient_create
from apps.inference import serving

pytestmark = pytest.mark.django_db(transaction=True)  # the calls run in threads: the token, patient committed


@pytest.fixture
def follower_waiting(monkeypatch) -> threading.Event:
    """Set once a call waits on another call's load of the same key (the cache's single flight)."""
    waiting = threading.Event()

    class Watched(threading.Event):
        def wait(self, timeout=None):
            waiting.set()
            return super().wait(timeout)

    class Flight(stack._Flight):
        __slots__ = ()

        def __init__(self) -> None:
            super().__init__()
            self.done = Watched()

    monkeypatch.setattr(stack, "_Flight", Flight)
    return waiting


def _held_first(monkeypatch, follower_waiting, fail=None) -> threading.Event:
    """serving.generate, the first call's held until a second call waits on its load, then run (or `fail`)."""
    real, leading, calls = serving.generate, threading.Event(), []

    def generate(*args, **options):
        calls.append(args)
        if len(calls) == 1:
            leading.set()
            assert follower_waiting.wait(60), "the second call never waited on the first's load"
            if fail is not None:
                raise fail
        return real(*args, **options)

    monkeypatch.setattr(serving, "generate", generate)
    return leading


def _post(results: dict, which: str, name: str, body: dict, token: str, sock: socket.socket) -> None:
    try:
        results[which] = APIClient().post(
            f"/api/v1/inference/{name}/generate", body, format="json",
            HTTP_AUTHORIZATION=f"Bearer {token}", **{"gunicorn.socket": sock},
        )  # fmt: skip
    finally:
        connection.close()


def _two_calls(name: str, body: dict, token: str, leading: threading.Event, first_gone: bool) -> dict:
    """The same client's same body twice: the first (its client gone if `first_gone`) leads the load."""
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    if first_gone:
        first_peer.close()  # the client left once its request was sent
    results: dict = {}
    threads = {which: threading.Thread(target=_post, args=(results, which, name, body, token, sock), daemon=True)
               for which, sock in (("first", first), ("second", second))}  # fmt: skip
    try:
        threads["first"].start()
        assert leading.wait(120), "the first call never reached the model"
        threads["second"].start()
        for thread in threads.values():
            thread.join(180)
            assert not thread.is_alive(), "a call did not answer"
    finally:
        for sock in (first, first_peer, second, second_peer):
            sock.close()
    return results


def _patient() -> int:
    return patient_create(mrn="MRN-FLIGHT", family_name="Roe", given_name="Jo", birth_date=date(1970, 1, 1)).pk


def test_a_connected_client_is_answered_though_its_first_call_s_client_left(
    token, follower_waiting, monkeypatch, _let_go_of_test_models
):
    from apps.inference import services

    _, assistant = services.bundled_deployments_ensure()
    patient = _patient()
    leading = _held_first(monkeypatch, follower_waiting)
    body = {"prompt": "List warning signs of stroke in adults.", "max_new_tokens": 4, "patient_id": patient}
    results = _two_calls(assistant.name, body, token, leading, first_gone=True)

    assert results["first"].status_code == 499, results["first"].content[:300]
    # Was 499 client_closed_request: the first call's client gone, handed to the second by the single flight.
    assert results["second"].status_code == 200, results["second"].content[:300]
    assert results["second"].json()["cached"] is False
    records = AuditEvent.objects.filter(patient_id=patient, resource_id=assistant.name)
    # Was one (the first's error): the second call's patient went unrecorded.
    assert sorted(records.values_list("outcome", flat=True)) == ["error", "success"]


def test_a_model_failure_shared_by_the_single_flight_is_recorded_for_each_call_s_patient(
    token, follower_waiting, monkeypatch, _let_go_of_test_models
):
    from apps.inference import services

    _, assistant = services.bundled_deployments_ensure()
    patient = _patient()
    leading = _held_first(monkeypatch, follower_waiting, fail=serving.InferenceFailed("RuntimeError: broken"))
    body = {"prompt": "Name two vital signs.", "max_new_tokens": 4, "patient_id": patient}
    results = _two_calls(assistant.name, body, token, leading, first_gone=False)

    for which in ("first", "second"):
        assert results[which].status_code == 503, results[which].content[:300]
        assert results[which].json()["code"] == "inference_failed"
    records = AuditEvent.objects.filter(patient_id=patient, resource_id=assistant.name)
    assert sorted(records.values_list("outcome", flat=True)) == ["error", "error"]  # was one: the first's
