"""What gunicorn's request threads do to one served model at once: count tokens (the input cap check, in
each request's thread) while the batcher's thread tokenizes a batch. Real MiniLM weights and tokenizer."""

import os
import threading
import time

import pytest

from apps.inference.backends import LoadSpec, load
from apps.inference.models import ModelDeployment


def test_counting_tokens_in_request_threads_never_breaks_a_running_batch():
    """A fast tokenizer keeps padding and truncation as state each call sets: a count (no padding) landing
    between a batch's setting of padding and its encoding left the batch unpadded, and the batch failed
    ("Unable to create tensor"), to be run again in halves or fail its callers."""
    runner = load(LoadSpec(ModelDeployment.Source.MINILM, "", "embedding", "cpu", 256), "fp32")
    texts = [f"patient reports {'dizziness ' * (n % 11)}and fever" for n in range(24)]
    errors: list[str] = []
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            try:
                runner.token_count("chest pain radiating to the left arm " * 6)
            except Exception as error:  # noqa: BLE001 - collected and asserted on below
                errors.append(f"count: {error!r}")

    counters = [threading.Thread(target=count) for _ in range(3)]
    for thread in counters:
        thread.start()
    deadline, batches = time.monotonic() + 20, 0
    try:
        while time.monotonic() < deadline and batches < 60:
            try:
                vectors = runner.embed(texts)
                assert len(vectors) == len(texts)
            except Exception as error:  # noqa: BLE001 - collected and asserted on below
                errors.append(f"embed: {error!r}")
            batches += 1
    finally:
        done.set()
        for thread in counters:
            thread.join()
    assert not errors, f"{len(errors)} failures in {batches} batches, e.g. {errors[0][:200]}"


def test_every_mode_of_one_model_shares_its_tokenizers_lock():
    """Two deployments of the same weights (fp32 and int8, say) share one tokenizer object: a lock per
    runner would leave the race between them."""
    spec = LoadSpec(ModelDeployment.Source.MINILM, "", "embedding", "cpu", 256)
    fp32, int8 = load(spec, "fp32"), load(spec, "int8")
    assert fp32.tokenizer is int8.tokenizer and fp32.tokenizing is int8.tokenizing


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to narrow to one")
def test_torch_computes_on_the_cores_this_process_may_use_not_the_nodes(monkeypatch):
    """os.cpu_count() counts the node's cores: narrowed to one (a cpuset, taskset, a container's quota)
    torch still ran a thread per core of the node, each fighting the others for the one."""
    import torch

    from apps.inference import backends

    monkeypatch.delenv("INFERENCE_THREADS", raising=False)
    allowed, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {min(allowed)})
    try:
        backends._cpu_threads()
        assert torch.get_num_threads() == 1
    finally:
        os.sched_setaffinity(0, allowed)
        torch.set_num_threads(threads)
    monkeypatch.setenv("INFERENCE_THREADS", "3")
    assert backends.cpu_threads() == 3
