"""A non-stream generation whose client left (curl -m 1.5) went on to its end (5.4 s), holding its queue slot,
though the README says a batch whose callers have all left stops at its next token: under gunicorn's sync and
gthread workers nothing told the waiting thread. It now peeks (non-blocking) at the request's socket, which
gunicorn puts in the environ, while it waits; a client gone cancels the call. The view test runs the real
SmolLM2 (the cancelled call must be the model's); the socket is a socketpair whose other end is closed."""

import asyncio
import socket
import threading
from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.inference import serving
from apps.inference.batcher import CallerGone, EventLoopThread


def test_the_probe_tells_an_open_socket_from_one_whose_client_left():
    assert serving.client_gone_probe({}) is None  # no socket (ASGI, the test client): stops at its timeout
    ours, theirs = socket.socketpair()
    try:
        gone = serving.client_gone_probe({"gunicorn.socket": ours})
        assert gone() is False
        theirs.sendall(b"GET /next HTTP/1.1\r\n")  # a pipelined request: still there
        assert gone() is False
        theirs.close()
        ours.recv(100)
        assert gone() is True
    finally:
        ours.close()


def test_a_call_whose_client_left_is_cancelled_not_waited_out():
    bridge, cancelled = EventLoopThread(), threading.Event()

    async def forever():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(CallerGone):
        bridge.call(forever(), timeout=600, gone=lambda: True)
    assert cancelled.wait(30), "the coroutine of a call whose client left was not cancelled"


@pytest.mark.django_db
def test_a_generation_whose_client_left_answers_499_and_is_audited(api, issue_token):
    from apps.inference import services
    from apps.ratelimits.models import RateLimitPolicy

    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    _, assistant = services.bundled_deployments_ensure()
    patient = patient_create(mrn="MRN-GONE", family_name="Roe", given_name="Jo", birth_date=date(1970, 1, 1)).pk
    ours, theirs = socket.socketpair()
    theirs.close()  # the client left once its request was sent
    try:
        before = AuditEvent.objects.count()
        response = api.post(
            f"/api/v1/inference/{assistant.name}/generate",
            {"prompt": "Write a story about a night shift.", "max_new_tokens": 48, "patient_id": patient},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {issue_token('inference', 'patient:read')}",
            **{"gunicorn.socket": ours},
        )
    finally:
        ours.close()
    assert response.status_code == 499, response.content[:300]  # was 200: generated to the end for no one
    assert response.json()["code"] == "client_closed_request"
    assert AuditEvent.objects.count() == before + 1
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.outcome, record.patient_id, record.resource_id) == ("error", patient, assistant.name)
