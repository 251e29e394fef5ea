"""Block work on a second thread while the caller's thread uses the block before.

NumPy releases the GIL in its loops, so two threads keep both cores of a small machine busy.
Results come back in the order of their items, so every total, tie and worst element is the
same as when the blocks are processed one after the other, and at most two items are held at
once. NumPy's error state belongs to a thread (NumPy 1.x) or to a context (2.x): each task runs
under the state of the thread that started it, on either.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")


def ahead(work: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, R]]:
    """Each item with ``work(item)``, the next item's work done meanwhile on a second thread. A
    single item stays on the caller's thread. Closing the iterator early waits for the one
    piece of work in flight."""
    pending = list(items)
    if len(pending) <= 1:
        for item in pending:
            yield item, work(item)
        return
    task = _under_callers_errstate(work)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lncheck-ahead") as pool:
        future = pool.submit(task, pending[0])
        for index, item in enumerate(pending):
            done = future.result()
            if index + 1 < len(pending):
                future = pool.submit(task, pending[index + 1])
            yield item, done


def in_order(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``work(item)`` for every item, two at a time on two threads, in the items' order."""
    task = _under_callers_errstate(work)
    results: list[R] = []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="lncheck-pair") as pool:
        running: deque[Future[R]] = deque()
        # the next item is taken only once the oldest is done: at most two are ever held
        for item in items:
            running.append(pool.submit(task, item))
            if len(running) == 2:
                results.append(running.popleft().result())
        results.extend(future.result() for future in running)
    return results


def _under_callers_errstate(work: Callable[[T], R]) -> Callable[[T], R]:
    settings = np.geterr()

    def task(item: T) -> R:
        with np.errstate(**settings):
            return work(item)

    return task
