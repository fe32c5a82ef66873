"""How inference answers are keyed in the ai_inference namespace (no model needed: the answer is given)."""

import gc
import tracemalloc

import pytest

from apps.caching.stack import cache_reads_reset
from apps.inference.api.views import _cached_answer

pytestmark = pytest.mark.django_db


def test_the_cache_keeps_no_copy_of_the_input_text_in_process_memory():
    """The cache remembers the MACs of its last 8,192 keys together with their parts: with the texts among
    them, that memo held every recent caller's clinical text (1.3 MB for a call of 64 long inputs)."""
    _cached_answer(["clinical-embeddings", "fp32", "embed"], ["warm-up"], lambda: [[0.0]])
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for call in range(20):
        texts = [f"call {call} text {n} " + ("x" * 150 + " ") * 130 for n in range(64)]  # 1.3 MB a call
        answer, cached = _cached_answer(["clinical-embeddings", "fp32", "embed"], texts, lambda: [[0.5]])
        assert answer == [[0.5]] and cached is False
        del texts
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert kept < 2 * 2**20, f"{kept / 2**20:.1f} MB kept after 20 calls of 1.3 MB of text"


def test_the_same_inputs_are_a_hit_and_other_inputs_a_miss():
    def answer(texts, compute):
        cache_reads_reset()  # as each request starts
        return _cached_answer(["clinical-embeddings", "fp32", "embed"], texts, compute)

    assert answer(["a", "b"], lambda: [[1.0], [2.0]]) == ([[1.0], [2.0]], False)
    assert answer(["a", "b"], lambda: pytest.fail("computed again")) == ([[1.0], [2.0]], True)
    assert answer(["a b"], lambda: [[3.0]]) == ([[3.0]], False)
    assert answer(["b", "a"], lambda: [[2.0], [1.0]])[1] is False
