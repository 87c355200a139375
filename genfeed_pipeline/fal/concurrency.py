"""The asyncio plumbing of a discovery: a prioritised limit on requests in flight, a steady progress log,
and the runner that drives a coroutine from synchronous code."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from genfeed_pipeline.runtime import collector_paused

log = logging.getLogger(__name__)
T = TypeVar("T")


class PrioritySlots:
    """A limit on requests in flight where waiting list pages go before waiting fan-out requests.

    The list is a chain of sequential pages; if its next page queued behind a hundred schema batches,
    the chain would stall and the refresh would take longer than its round trips.
    """

    LIST = 0
    FANOUT = 1

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = 0

    async def acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order += 1
        heapq.heappush(self._waiting, (priority, self._order, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    @contextlib.asynccontextmanager
    async def hold(self, priority: int) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


class ProgressLog:
    """Logs "n of N" at a steady rate, never once per model. N may grow as work is found."""

    def __init__(self, what: str, total: int, interval_seconds: float, logger: logging.Logger = log) -> None:
        self.what, self.total, self.done = what, total, 0
        self._interval = interval_seconds
        self._next = time.monotonic() + interval_seconds
        self._log = logger

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._interval
            self._log.info("%s: %d of %d", self.what, self.done, self.total)

    def finish(self) -> None:
        self._log.info("%s: %d of %d done", self.what, self.done, self.total)


def run_sync(coroutine_factory: Callable[[], Awaitable[T]]) -> T:
    """Runs a coroutine from synchronous code (Dagster asset bodies, the command line).

    A plain event loop rather than `asyncio.run`: the latter swaps the SIGINT handler on every call,
    and on Python 3.11 that formats the previous handler's repr, which can drag a whole catalog
    through `repr` (a quarter of a second at 1,500 endpoints).
    """
    loop = asyncio.new_event_loop()
    try:
        with collector_paused():
            return loop.run_until_complete(coroutine_factory())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
