"""L1's usage (the entries and bytes each flush reports) is read under the tier's lock."""

from __future__ import annotations

import threading

from apps.caching.layers import Entry, MemoryTier


def test_usage_waits_for_a_put_or_eviction_in_progress():
    """Read while another thread held the lock (a put half done), it gave the entries of one moment and the
    bytes of another."""
    tier = MemoryTier(1024 * 1024)
    tier.put("ai_inference", "k", Entry({"v": 1}, 0, 2e9, 2e9, "", 16), max_entries=10)
    outcome, done = [], threading.Event()

    def read() -> None:
        outcome.append(tier.usage())
        done.set()

    reader = threading.Thread(target=read)
    with tier._lock:  # another thread's put, under way
        reader.start()
        # With the fix it cannot finish while the lock is held, however long the wait; the code before this
        # fix finished at once.
        finished_while_held = done.wait(0.5)
    reader.join(30)
    assert not finished_while_held
    assert outcome == [{"ai_inference": (1, tier._bytes["ai_inference"])}]


def test_usage_while_other_threads_fill_new_namespaces_never_fails():
    tier = MemoryTier(64 * 1024 * 1024)
    stop, errors = threading.Event(), []

    def fill() -> None:
        for index in range(5000):
            if stop.is_set():
                return
            tier.put(f"ns-{index % 500}", f"k{index}", Entry({"v": index}, 0, 2e9, 2e9, "", 16), max_entries=5)

    writers = [threading.Thread(target=fill) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        while any(writer.is_alive() for writer in writers):
            try:
                usage = tier.usage()
            except RuntimeError as exc:  # dictionary changed size during iteration
                errors.append(exc)
                break
            assert all(entries <= 5 for entries, _ in usage.values())
    finally:
        stop.set()
        for writer in writers:
            writer.join(60)
    assert errors == []
