"""stages.ThreadedStage: a link of a stream on its own thread, a bounded queue ahead; errors surface, nothing hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from talking_head.errors import InputError
from talking_head.stages import ThreadedStage


def stage_threads(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def counted(n: int, log: list[int]) -> Iterator[int]:
    """0 .. n-1, each appended to ``log`` as it is produced (how far ahead the stage's thread has read)."""
    for i in range(n):
        log.append(i)
        yield i


def test_items_arrive_in_order_and_the_thread_runs_at_most_depth_ahead() -> None:
    produced: list[int] = []
    taken, ahead = [], []
    with ThreadedStage(counted(50, produced), depth=3, name="ordered") as stream:
        for item in stream:
            time.sleep(0.002)  # a slower consumer: the producer fills the queue and waits
            ahead.append(len(produced) - len(taken))
            taken.append(item)
    assert taken == list(range(50))
    assert max(ahead) <= 3 + 2  # the queue, the item handed over, the one the thread holds
    assert not stage_threads("ordered")


def test_an_error_on_the_thread_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    error = InputError("frame 3 is damaged")

    def source() -> Iterator[int]:
        yield from range(3)
        raise error

    taken = []
    with pytest.raises(InputError) as raised, ThreadedStage(source(), depth=2, name="failing") as stream:
        for item in stream:
            taken.append(item)
    assert raised.value is error and taken == [0, 1, 2]
    assert not stage_threads("failing")


def test_a_consumer_that_stops_early_stops_the_thread_and_closes_its_source() -> None:
    cleaned = threading.Event()
    closed_on: list[str] = []

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed_on.append(threading.current_thread().name)
            cleaned.set()

    with pytest.raises(RuntimeError, match="consumer failed"), ThreadedStage(endless(), depth=2, name="endless") as stream:
        for item in stream:
            if item == 5:
                raise RuntimeError("consumer failed")
    assert cleaned.is_set() and closed_on == ["endless"]  # its finally ran, on its own thread
    assert not stage_threads("endless")


def test_chained_stages_all_stop_when_the_last_consumer_fails() -> None:
    def numbers() -> Iterator[int]:
        yield from range(10**6)

    first = ThreadedStage(numbers(), depth=4, name="first")
    second = ThreadedStage((n * 2 for n in first), depth=4, name="second")
    with pytest.raises(ValueError), first, second:
        for doubled in second:
            if doubled > 20:
                raise ValueError("stop")
    assert not stage_threads("first") and not stage_threads("second")


def test_depth_zero_takes_the_next_item_only_when_the_consumer_takes_this_one() -> None:
    """A camera's frame is fetched while the consumer works on the last one, never two frames early."""
    fetched: list[int] = []
    with ThreadedStage(counted(6, fetched), depth=0, name="handover") as stream:
        for item in stream:
            time.sleep(0.02)  # the consumer's work: the thread fetched item + 1 meanwhile, and no more
            assert len(fetched) <= item + 2
    assert fetched == list(range(6))


def test_depth_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="depth"):
        ThreadedStage(iter(()), depth=-1, name="none")
