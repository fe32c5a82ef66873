"""A generation batch whose callers have all given up (their wait timed out, their client left) stops at
its next token: it used to run to its token cap for no one (a 400-token generation went on for 96 s after
its caller left), holding the batcher and the cores from the callers queued behind it."""

import asyncio
import threading
import time

import pytest

from apps.inference import serving
from apps.inference.batcher import BatchController, DynamicBatcher

DEADLINE = 60.0


class TokenLoop:
    """A model stand-in that makes "tokens" until its batch is abandoned or the test lets it finish."""

    def __init__(self) -> None:
        self.started, self.finish, self.ended = threading.Event(), threading.Event(), threading.Event()
        self.abandoned_at_end: bool | None = None

    def __call__(self, items, abandoned):
        self.started.set()
        give_up = time.monotonic() + DEADLINE  # never a thread left looping after a failed test
        while not self.finish.is_set() and not abandoned.wait(0.01) and time.monotonic() < give_up:
            pass
        self.abandoned_at_end = abandoned.is_set()
        self.ended.set()
        return [item.upper() for item in items]


async def wait_for(event: threading.Event) -> bool:
    return await asyncio.to_thread(event.wait, DEADLINE)


async def test_a_batch_whose_callers_all_left_is_told_to_stop():
    model = TokenLoop()
    batcher = DynamicBatcher(model, BatchController(slo_ms=10_000, max_batch_size=4, max_delay_ms=20),
                             stoppable=True)  # fmt: skip
    callers = [asyncio.ensure_future(batcher.submit(text)) for text in ("a", "b")]
    assert await wait_for(model.started)
    for caller in callers:
        caller.cancel()
    assert await wait_for(model.ended), "the batch ran on after its callers left"
    assert model.abandoned_at_end is True
    model.finish.set()


async def test_a_batch_with_a_caller_still_waiting_runs_on_for_it():
    model = TokenLoop()
    batcher = DynamicBatcher(model, BatchController(slo_ms=10_000, max_batch_size=4, max_delay_ms=50),
                             stoppable=True)  # fmt: skip
    gone, staying = asyncio.ensure_future(batcher.submit("a")), asyncio.ensure_future(batcher.submit("b"))
    assert await wait_for(model.started)
    gone.cancel()
    model.finish.set()
    assert await asyncio.wait_for(staying, DEADLINE) == "B"
    assert model.abandoned_at_end is False


@pytest.mark.django_db
def test_a_real_generation_stops_when_its_caller_leaves(monkeypatch):
    """SmolLM2 for real, in its deployment's batcher: the batch is held at its start until its caller has
    left (its future cancelled, as EventLoopThread.call does when a wait times out), then generates with the
    stop it was given: a few tokens, not the 400 asked for."""
    from apps.inference import services

    _, assistant = services.bundled_deployments_ensure()
    current = serving.served(assistant)
    real_generate, started, caller_gone, outcome = current.runner.generate, threading.Event(), threading.Event(), {}

    def held(prompts, limits, **options):
        started.set()
        assert caller_gone.wait(DEADLINE)
        outcome["results"] = real_generate(prompts, limits, **options)
        outcome["stopped"] = options.get("stop") is not None and options["stop"].is_set()
        return outcome["results"]

    monkeypatch.setattr(current.runner, "generate", held)
    call = asyncio.run_coroutine_threadsafe(
        current.batcher.submit(("Count from 1 to 400, one number per line.", 400)), serving.bridge.loop()
    )
    assert started.wait(DEADLINE)
    call.cancel()
    caller_gone.set()
    waited = threading.Event()
    for _ in range(int(DEADLINE * 4)):  # the held batch ends: soon with the fix, after 400 tokens without it
        if "stopped" in outcome or waited.wait(0.25):
            break
    assert outcome.get("stopped") is True, outcome
    [result] = outcome["results"]
    assert result["output_tokens"] < 400
