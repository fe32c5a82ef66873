"""L1's byte bound counts embeddings (lists of floats) by what they take in this process, so it holds as many as
fit: each one's size is worked out once, from its JSON, as it is stored."""

from __future__ import annotations

import json
import random
import tracemalloc

from apps.caching.layers import MemoryTier, deep_size, json_memory
from apps.caching.stack import Policy
from tests.caching.support import make_stack

BOUND = 2_000_000
DIMENSIONS = 384  # MiniLM's


def _embeddings(count: int) -> list[list[list[float]]]:
    """What the embeddings endpoint caches: a call's vectors (one text each here), as the model makes them."""
    rnd = random.Random(11)  # noqa: S311 - test data, the same every run
    return [[[rnd.gauss(0.0, 0.05) for _ in range(DIMENSIONS)]] for _ in range(count)]


def test_an_l1_of_embeddings_holds_as_many_as_its_bound_has_room_for():
    """Before: a float was counted as 32 bytes and its digits as text, about 1.9x the 24 bytes it takes, and an L1
    whose bound had room for N embeddings held about N / 2 of them."""
    one = _embeddings(1)[0]
    takes = deep_size(json.loads(json.dumps(one))) + MemoryTier.ENTRY_OVERHEAD_BYTES
    fit = int(0.9 * BOUND) // takes  # with a tenth of the bound to spare
    stack = make_stack(l1_max_bytes=BOUND)
    policy = Policy(namespace="embeddings_in_l1", l2=False, l3=False, encrypt=False)
    for n, value in enumerate(_embeddings(fit)):
        stack.store(policy, f"k{n}", "", value, ttl=None, generations=(None, None))
    entries, counted = stack.l1.usage()["embeddings_in_l1"]
    assert entries == fit
    assert counted <= BOUND


def test_an_embedding_is_never_counted_below_what_decoding_it_allocates():
    """The bound holds in the process's real memory, as tracemalloc sees a decode's allocations."""
    raw = json.dumps(_embeddings(1)[0], separators=(",", ":")).encode()
    decodes = 20
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        values = [json.loads(raw) for _ in range(decodes)]
        allocated = (tracemalloc.get_traced_memory()[0] - before) / decodes
    finally:
        tracemalloc.stop()
    assert len(values) == decodes
    assert json_memory(raw) >= allocated
    assert json_memory(raw) >= deep_size(values[0])
