"""A deployment pointed at other weights (a new model version in another folder): the process serves the
new ones and lets the old go (each version's fp32 weights used to stay in memory for the process's life).
Real MiniLM weights, linked into two version folders."""

import gc
import weakref

import pytest

from apps.inference import serving
from apps.inference.backends import LoadSpec, model_location
from apps.inference.models import ModelDeployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(tmp_path):
    bundled, _ = model_location(LoadSpec(ModelDeployment.Source.MINILM, "", "embedding", "cpu"))
    folders = []
    for version in ("v1", "v2"):
        folder = tmp_path / version
        folder.mkdir()
        for file in bundled.iterdir():
            if file.is_file():
                (folder / file.name).symlink_to(file)
        folders.append(folder)
    return folders


def test_a_new_weights_folder_is_served_and_the_old_weights_are_freed(versions):
    v1, v2 = versions
    deployment = ModelDeployment.objects.create(name="versioned", source="path", local_path=str(v1),
                                                task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    [first], _ = serving.embed(deployment, ["fever"])
    old_weights = weakref.ref(serving.served(deployment).runner.model)

    deployment.local_path = str(v2)
    deployment.save()
    [second], _ = serving.embed(deployment, ["fever"])
    assert serving.served(deployment).runner.model is not old_weights()
    assert sum(a * b for a, b in zip(first, second, strict=True)) > 0.9999  # the same weights, linked twice
    gc.collect()
    assert old_weights() is None
