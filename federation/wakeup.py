"""The loop the queue workers share: drain while there is work, then sleep until a
``NOTIFY`` on the queue's channel, ``stop``, or the poll interval (a safety net for a
missed notification and for retries falling due)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from node.queues import QueueSpec


async def drain_on_notify(
    pool: asyncpg.Pool,
    queue: QueueSpec,
    stop: asyncio.Event,
    step: Callable[[], Awaitable[bool]],
    asleep: asyncio.Event | None = None,
) -> None:
    """Run ``step`` until ``stop`` is set; ``step`` answers whether to run again at
    once (it did some work), else the loop waits as the docstring says. One pool
    connection is held for LISTEN the whole time. ``asleep`` (optional) is set while
    the loop waits, so a caller can tell « idle, listening » from « working »."""
    wake = asyncio.Event()

    def on_notify(*_args: Any) -> None:
        wake.set()

    async with pool.acquire() as listener:
        await listener.add_listener(queue.channel, on_notify)
        try:
            while not stop.is_set():
                wake.clear()
                if await step():
                    continue
                if asleep is not None:
                    asleep.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(wake, stop), queue.poll_interval)
                if asleep is not None:
                    asleep.clear()
        finally:
            await listener.remove_listener(queue.channel, on_notify)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
