"""INFERENCE_PRELOAD: a server process loads the enabled deployments when it starts, and /readyz says when
they are in memory. Real models (MiniLM only: SmolLM2 would add ~20 s), real gunicorn."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest
from django.conf import settings

from apps.inference import services, serving
from apps.inference.models import ModelDeployment

pytestmark = pytest.mark.django_db(transaction=True)  # the preload thread reads committed rows


@pytest.fixture
def only_embeddings():
    embeddings, assistant = services.bundled_deployments_ensure()
    ModelDeployment.objects.filter(pk=assistant.pk).update(enabled=False)
    return embeddings


def test_preload_loads_the_enabled_deployments_and_readyz_follows(client, monkeypatch, only_embeddings):
    preload = serving.Preload()
    monkeypatch.setattr(serving, "preload", preload)
    assert client.get("/readyz").json()["checks"]["inference"]["status"] == "ok"  # off: loads on first call

    preload.start().join(timeout=120)
    check = client.get("/readyz").json()["checks"]["inference"]
    assert preload.state == "ready" and check["status"] == "ok"
    assert "loaded clinical-embeddings" in check["detail"]
    assert serving.served(only_embeddings) is serving._served[only_embeddings.pk]  # no load on the first call

    preload.state, preload.detail = "loading", "loading clinical-embeddings (1 of 1)"
    body = client.get("/readyz").json()
    assert body["status"] == "degraded" and body["checks"]["inference"]["status"] == "error"
    monkeypatch.setattr(settings, "READYZ_REQUIRED", ["database", "inference"])
    assert client.get("/readyz").status_code == 503  # kept out of the load balancer until loaded


def test_a_deployment_that_fails_to_load_is_named_and_the_others_still_load(client, monkeypatch, only_embeddings):
    ModelDeployment.objects.create(name="gone", source="path", local_path="/nonexistent/model", task="embedding")
    preload = serving.Preload()
    monkeypatch.setattr(serving, "preload", preload)
    preload.start().join(timeout=120)
    assert preload.state == "failed"
    assert "loaded clinical-embeddings" in preload.detail and "failed: gone" in preload.detail
    assert client.get("/readyz").json()["checks"]["inference"]["status"] == "degraded"  # never keeps a pod out


def test_gunicorn_workers_preload_when_asked(only_embeddings, tmp_path):
    from tests.helpers import REPO_ROOT, VENV_BIN, closed_port

    database = settings.DATABASES["default"]
    port = closed_port()
    env = {
        **os.environ,
        "INFERENCE_PRELOAD": "true",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DEBUG": "false",
        "SECRET_KEY": "preload-test-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "controlplane.wsgi", "--config", "controlplane/gunicorn.conf.py", "--bind",
             f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"],
            cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        check, deadline = None, time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                    check = json.load(response)["checks"]["inference"]
            except OSError as error:  # not listening yet, or a 503 while a required check fails
                body = getattr(error, "read", lambda: b"")()
                check = json.loads(body)["checks"]["inference"] if body else None
            if check and check["status"] == "ok":
                break
            time.sleep(0.5)
        assert check is not None and check["status"] == "ok", (check, log.read_text()[-3000:])
        assert "loaded clinical-embeddings" in check["detail"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_pod_is_ready_for_inference_only_when_every_worker_of_its_server_is(client, monkeypatch, tmp_path):
    """Gunicorn's workers each load their own copy and any of them may take the next request: the probe
    that reaches a loaded worker must still say "loading" while its sibling loads. A sibling here is a
    real process (a sleeper) whose state file sits beside ours, as a worker's does."""
    monkeypatch.setattr(settings, "VAR_DIR", tmp_path)
    preload = serving.Preload()
    monkeypatch.setattr(serving, "preload", preload)
    preload._set("ready", "loaded clinical-embeddings in 3.0 s")
    sibling = subprocess.Popen(["sleep", "60"])  # a stand-in for the other worker
    try:
        path = serving.preload_state_path(sibling.pid)
        path.write_text(json.dumps({"state": "loading", "detail": "loading clinical-assistant (2 of 2)"}))
        check = client.get("/readyz").json()["checks"]["inference"]
        assert check["status"] == "error"
        assert check["detail"] == f"1 of 2 workers loading; worker {sibling.pid}: loading clinical-assistant (2 of 2)"
        path.write_text(json.dumps({"state": "ready", "detail": "loaded clinical-assistant in 21.0 s"}))
        assert client.get("/readyz").json()["checks"]["inference"]["status"] == "ok"
        path.write_text(json.dumps({"state": "loading", "detail": "starting"}))
    finally:
        sibling.kill()
        sibling.wait()
    # A worker that died (its file left behind, its pid gone) is no sibling: ready again.
    assert client.get("/readyz").json()["checks"]["inference"]["status"] == "ok"
    assert json.loads(serving.preload_state_path(os.getpid()).read_text())["state"] == "ready"


def test_a_restarted_server_forgets_the_preload_states_of_its_earlier_life(monkeypatch, tmp_path):
    """A container's gunicorn is PID 1 every time and VAR_DIR outlives its restart: states left by workers
    killed before child_exit ran would read as siblings still loading once a new process takes their pid."""
    import runpy

    from tests.helpers import REPO_ROOT

    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    hooks = runpy.run_path(str(REPO_ROOT / "controlplane" / "gunicorn.conf.py"))
    (tmp_path / "preload").mkdir()
    earlier, other_server = tmp_path / "preload" / f"{os.getpid()}-7.json", tmp_path / "preload" / "999999-7.json"
    for path in (earlier, other_server):
        path.write_text(json.dumps({"state": "loading", "detail": "starting"}))
    hooks["on_starting"](object())  # the arbiter: this process stands in for it
    assert not earlier.exists() and other_server.exists()
