"""The ai_inference answer cache was shared by every caller (its key held the deployment, the model and a digest
of the input only): a client with the `inference` scope alone could send a guessed text about a patient and learn
from `"cached": true` that another client had sent exactly that text, with no record. Answers are kept per caller
now. Real MiniLM on the CPU is loaded for the checks; the embedding itself is counted."""

import uuid

import pytest

from apps.inference import serving
from tests.inference.support import EMBED_URL, deployment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_let_go_of_test_models")]


def _embed(api, token, name: str, texts: list[str]):
    return api.post(EMBED_URL.format(name), {"inputs": texts}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_one_client_s_answer_is_not_served_to_another(api, token, issue_token, monkeypatch):
    computed = []
    real = serving.embed

    def counting(row, texts, **options):
        computed.append(list(texts))
        return real(row, texts, **options)

    monkeypatch.setattr(serving, "embed", counting)
    row = deployment("per-caller-cache")
    texts = [f"patient Jane Roe tested HIV positive {uuid.uuid4().hex}"]

    first = _embed(api, token, row.name, texts)
    assert first.status_code == 200, first.content[:300]
    assert first.json()["cached"] is False and len(computed) == 1

    other = issue_token("inference", "patient:read")
    guessed = _embed(api, other, row.name, texts)
    assert guessed.status_code == 200, guessed.content[:300]
    assert guessed.json()["cached"] is False  # was True: the first client's answer, shared
    assert len(computed) == 2  # computed afresh for this caller

    again = _embed(api, token, row.name, texts)
    assert again.json()["cached"] is True and len(computed) == 2  # the first client's own repeat is still a hit
    assert _embed(api, other, row.name, texts).json()["cached"] is True
