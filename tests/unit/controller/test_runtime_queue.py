"""The work queue's guarantees and the per-key backoff, with a clock the test moves."""

import threading

import pytest

from ctrain.controller.runtime.engine import Loop
from ctrain.controller.runtime.queue import Backoff, WorkQueue, jittered

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_waiting_key_waits_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert [queue.get(block=False), queue.get(block=False), queue.get(block=False)] == [
        "a",
        "b",
        None,
    ]


def test_a_key_is_never_handed_out_twice_and_an_add_meanwhile_runs_after() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(block=False) == "a"
    queue.add("a")  # a change arrives while a worker holds "a"
    assert queue.get(block=False) is None  # not to a second worker
    queue.done("a")
    assert queue.get(block=False) == "a"  # but right after
    queue.done("a")
    assert queue.get(block=False) is None


def test_schedule_sets_the_one_next_look_and_none_cancels_it() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.schedule("a", 10)
    queue.schedule("a", 30)  # the latest request wins, not the earliest
    clock.now = 15
    assert queue.get(block=False) is None
    clock.now = 31
    assert queue.get(block=False) == "a"
    queue.done("a")
    queue.schedule("b", 5)
    queue.schedule("b", None)  # finished: not looked at again
    queue.schedule("c", 5)
    queue.forget("c")  # deleted
    clock.now = 100
    assert queue.get(block=False) is None
    assert queue.scheduled() == 0


def test_get_waits_for_the_next_scheduled_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.schedule("later", 0.05)
    got: list[str | None] = []
    thread = threading.Thread(target=lambda: got.append(queue.get()))
    thread.start()
    thread.join(5)
    assert got == ["later"]
    queue.shutdown()
    assert queue.get() is None


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets_on_success() -> None:
    low: Backoff[str] = Backoff(base=1, cap=60, rng=lambda a, _b: a)
    high: Backoff[str] = Backoff(base=1, cap=60, rng=lambda _a, b: b)
    lows = [low.failed("k") for _ in range(8)]
    highs = [high.failed("k") for _ in range(8)]
    assert lows == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 60]
    assert highs == [1.2, 2.4, 4.8, 9.6, 19.2, 38.4, 60, 60]
    low.forget("k")
    assert low.failed("k") == 0.8
    assert low.failed("other") == 0.8  # per key


def test_jitter_stays_within_twenty_percent() -> None:
    values = [jittered(10) for _ in range(200)]
    assert all(8 <= v <= 12 for v in values)
    assert len(set(values)) > 100


def test_a_failing_key_backs_off_alone_and_a_success_resets_it() -> None:
    outcomes = {"bad": [RuntimeError("boom")] * 3 + [None], "good": [None] * 4}

    def handle(key: str) -> float | None:
        outcome = outcomes[key].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return 60.0 if key == "good" else None

    loop: Loop[str] = Loop("test", handle, workers=1, backoff=Backoff(rng=lambda a, _b: a))
    delays = []
    for _ in range(3):
        loop.run("bad")
        delays.append(loop.queue.due_in("bad"))
        loop.run("good")
    assert [round(d or 0, 1) for d in delays] == [0.8, 1.6, 3.2]  # growing, not a hot loop
    assert loop.backoff.failures("good") == 0
    loop.run("bad")
    assert loop.backoff.failures("bad") == 0
    assert loop.queue.due_in("bad") is None  # it asked for no further look
