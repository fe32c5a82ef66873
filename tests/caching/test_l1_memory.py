"""L1's byte bound holds for a namespace whose values differ widely in size: each entry is counted by what its
own value takes, never by a ratio sampled on other entries of its namespace."""

from __future__ import annotations

import json
import random
import string
import uuid

import redis
from django.conf import settings

from apps.caching.layers import MemoryTier, deep_size, json_memory
from apps.caching.stack import Policy
from tests.caching.support import make_stack

BOUND = 1_000_000
LARGE_EVERY = 64  # one long text among every 64 cards


def _card(n: int) -> dict:
    identifiers = [{"system": "http://hospital.example.org/mrn", "value": f"S{n:08d}"}]
    return {"id": n, "family_name": f"Family{n:06d}", "given_name": "Given", "birth_date": "1970-01-01",
            "sex": "female", "identifiers": identifiers}  # fmt: skip


def _mixed(count: int) -> list:
    """Many small cards and a few 40 kB texts (a note, a report), the texts first and every LARGE_EVERY after."""
    return [("y" * 40_000 + str(n)) if n % LARGE_EVERY == 0 else _card(n) for n in range(count)]


def _held_in_memory(tier: MemoryTier) -> int:
    """What L1's values take by the walk of each (the tier's own measure), with each entry's bookkeeping."""
    values = [entry.value for entries in tier._namespaces.values() for entry in entries.values()]
    return sum(map(deep_size, values)) + len(values) * MemoryTier.ENTRY_OVERHEAD_BYTES


def test_a_namespace_of_mixed_sizes_stays_within_its_bound_as_loads_fill_it():
    """Before: the first fill (a 40 kB text, about as large decoded as stored) set the namespace's ratio near 1,
    and the cards after it (8x their JSON decoded) were counted at a fraction of what they take: L1 held about
    twice its bound."""
    stack = make_stack(l1_max_bytes=BOUND)
    policy = Policy(namespace="mixed_sizes", l2=False, l3=False, encrypt=False)
    for n, value in enumerate(_mixed(3_000)):
        stack.store(policy, f"k{n}", "", value, ttl=None, generations=(None, None))
    held = _held_in_memory(stack.l1)
    assert held <= BOUND
    assert held > BOUND / 2  # the bound is used, not given away to overcounting
    assert stack.l1.usage()["mixed_sizes"][1] <= BOUND


def test_a_namespace_of_mixed_sizes_stays_within_its_bound_as_l2_hits_fill_it():
    """The same values stored (sealed) by another process and read here from L2: each L1 fill is counted by the
    JSON it was opened from."""
    writer, reader = make_stack(), make_stack(l1_max_bytes=BOUND)
    policy = Policy(namespace="mixed_sizes_l2", ttl=120, l3=False, encrypt=True)
    prefix = uuid.uuid4().hex
    keys = []
    try:
        for n, value in enumerate(_mixed(1_000)):
            keys.append(f"{prefix}{n}")
            writer.store(policy, keys[-1], "", value, ttl=None, generations=(None, None))
        for key in keys:
            found = reader.lookup(policy, key, "")
            assert found.fresh  # an L2 hit, filled into L1
        held = _held_in_memory(reader.l1)
        assert held <= BOUND
        assert held > BOUND / 2
    finally:
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.delete(*[writer._l2_key("v", key) for key in keys])
        client.close()


def _shapes() -> list:
    rnd = random.Random(7)  # noqa: S311 - test data, the same every run

    def leaf():
        return rnd.choice(
            [
                rnd.randrange(-(10**6), 10**6),
                rnd.random(),
                True,
                None,
                "".join(rnd.choices(string.printable, k=rnd.randrange(40))),
                10 ** rnd.randrange(10, 60),
                "héllo" * rnd.randrange(3),
                "😀" * rnd.randrange(3),
                "",
            ]
        )

    def value(depth=0):
        draw = rnd.random()
        if depth > 2 or draw < 0.4:
            return leaf()
        if draw < 0.7:
            return [value(depth + 1) for _ in range(rnd.randrange(12))]
        return {f"k{i}": value(depth + 1) for i in range(rnd.randrange(12))}

    shapes = [value() for _ in range(2_000)]
    shapes += [list(range(n)) for n in range(200)] + [[""] * n for n in range(200)] + [[0.5] * n for n in range(200)]
    shapes += [{str(i): None for i in range(n)} for n in range(200)] + [[{}] * n for n in range(50)]
    shapes += ["a note, with: punctuation {and} [brackets] " * n for n in range(1, 200, 7)]
    shapes += [{"note": "Stable, BP 120/80: review [labs]. " * n, "id": n} for n in range(1, 200, 7)]
    shapes += [['a "quoted" word, ' * n] for n in range(1, 50, 5)]
    return shapes


def test_the_size_worked_out_from_json_is_never_below_what_the_value_takes():
    """What keeps the bound: an entry is never counted below its value's walk, whatever its shape."""
    for shape in _shapes():
        raw = json.dumps(shape, separators=(",", ":")).encode()
        assert json_memory(raw) >= deep_size(json.loads(raw)), raw[:80]


def test_the_size_worked_out_from_json_is_close_for_cards_and_text():
    """Not a bound bought by overcounting: cards and prose are counted within a half of what they take."""
    for value in [_card(7), "y" * 40_000, {"note": "Stable, BP 120/80: review [labs]. " * 300, "id": 1}]:
        raw = json.dumps(value, separators=(",", ":")).encode()
        assert json_memory(raw) <= 1.5 * deep_size(json.loads(raw))
