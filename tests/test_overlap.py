"""Work on the worker threads (``lncheck.overlap``): results in order, at most two items in
flight, the caller's NumPy error state, and a forked child that starts its own workers."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from lncheck import overlap


def test_results_come_back_in_the_items_order_whatever_finishes_first() -> None:
    def slow_for_small(v: int) -> int:
        time.sleep(0.02 * (5 - v))
        return v * v

    assert overlap.in_order(slow_for_small, range(5)) == [0, 1, 4, 9, 16]
    assert list(overlap.ahead(slow_for_small, range(5))) == [(v, v * v) for v in range(5)]


def test_no_more_than_two_items_are_held_at_once() -> None:
    lock, held, most = threading.Lock(), [0], [0]
    # the first two tasks meet here: they can only both pass if they run at the same time
    meet = threading.Barrier(2, timeout=10)

    def items() -> Iterator[int]:
        for v in range(8):
            with lock:  # an item taken from the iterable is held until its work is done
                held[0] += 1
                most[0] = max(most[0], held[0])
            yield v

    def work(v: int) -> int:
        if v < 2:
            meet.wait()
        with lock:
            held[0] -= 1
        return v

    assert overlap.in_order(work, items()) == list(range(8))
    assert most[0] == 2


def test_the_next_item_is_worked_on_while_the_caller_uses_this_one() -> None:
    threads: list[str] = []

    def work(v: int) -> int:
        threads.append(threading.current_thread().name)
        return v

    for _ in overlap.ahead(work, range(3)):
        time.sleep(0.01)
    assert all(name.startswith("lncheck") for name in threads)
    assert [r for _, r in overlap.ahead(work, [7])] == [7]  # one item: the caller's thread
    assert threads[-1] == threading.current_thread().name


def test_tasks_run_under_the_callers_numpy_error_state() -> None:
    def divide(v: float) -> float:
        return float(np.float64(v) / np.float64(0.0))

    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        overlap.in_order(divide, [1.0, 2.0, 3.0])
    with np.errstate(divide="ignore"):
        assert overlap.in_order(divide, [1.0, 2.0]) == [np.inf, np.inf]


def _child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(overlap.in_order(lambda v: v + 1, range(4)))


def test_a_forked_child_starts_its_own_workers() -> None:
    overlap.in_order(abs, [-1, -2])  # the parent's workers exist before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    assert queue.get(timeout=30) == [1, 2, 3, 4]
    child.join(timeout=30)
    assert child.exitcode == 0
