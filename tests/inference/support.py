"""Helpers shared by the inference tests: an embedding deployment, a call to it, an admin's edit of it, a
loader that fails for one mode, and a model that fails part-way through a generation."""

from __future__ import annotations

import time

from apps.inference.models import ModelDeployment

EMBED_URL = "/api/v1/inference/{}/embed"


def embed(api, token, name: str):
    return api.post(EMBED_URL.format(name), {"inputs": ["fever"]}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def deployment(name: str, **fields) -> ModelDeployment:
    """A MiniLM embedding deployment on the CPU, fp32 unless `fields` say otherwise."""
    return ModelDeployment.objects.create(name=name, source=ModelDeployment.Source.MINILM, task="embedding",
                                          device="cpu", **{"quantization": "fp32", **fields})  # fmt: skip


class LoadFailingIn:
    """The real loader, but `mode` raises `error` while `failing` is set; every mode asked for is kept."""

    def __init__(self, mode: str, error: Exception) -> None:
        from apps.inference import serving

        self.mode, self.error, self.failing, self.asked = mode, error, True, []
        self.real = serving.load

    def __call__(self, spec, mode):
        self.asked.append(mode)
        if mode == self.mode and self.failing:
            raise self.error
        return self.real(spec, mode)


def edit(row: ModelDeployment, **fields) -> ModelDeployment:
    """An admin's edit (a save, which moves updated_at), bypassing clean() as a row edited on another host
    (where nf4 could run) would."""
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return ModelDeployment.objects.get(pk=row.pk)


class FailingModel:
    """Generates two tokens into the streamer, then fails as a broken kernel or an exhausted memory would."""

    def generate(self, *, input_ids, streamer, **options):
        import torch

        streamer.put(input_ids)  # the prompt, as generate hands it over first (skipped by the streamer)
        for token in (input_ids[0, -2:-1], input_ids[0, -1:]):
            streamer.put(torch.tensor([int(token)]))
            time.sleep(0.05)
        raise RuntimeError("the model failed part-way")
