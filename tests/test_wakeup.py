"""The loop every queue worker runs (federation/wakeup.py): it outlives a failing step
and a lost listening connection, and a NOTIFY still wakes it afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest

from federation import wakeup
from node.queues import QueueSpec
from tests.helpers import eventually

TEST_QUEUE = QueueSpec(
    name="test",
    table="inbox_items",
    channel="vbg_test_wakeup",
    lease=timedelta(minutes=1),
    retry_delays=(timedelta(seconds=1),),
    poll_interval=60.0,  # only a NOTIFY (or a poke) wakes it within a test
)


class Recorder(wakeup.Drain):
    """Steps that fail ``failures`` times, then find nothing to do; what woke it."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__(TEST_QUEUE)
        self.failures = failures
        self.steps = 0
        self.heard: list[str | None] = []
        self.connections = 0

    async def connected(self, conn: asyncpg.Connection) -> None:
        self.connections += 1

    def notified(self, channel: str | None) -> None:
        self.heard.append(channel)

    async def step(self) -> wakeup.Wait:
        self.steps += 1
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug in a step")
        return wakeup.IDLE


async def running(drain: Recorder, pool: asyncpg.Pool) -> tuple[asyncio.Task[None], asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(drain.run(pool, stop))
    await asyncio.wait_for(drain.asleep.wait(), 10)
    return task, stop


async def test_a_failing_step_is_retried_and_the_loop_goes_on(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a queue whose first two steps raise (the back-off shortened for the test)
    monkeypatch.setattr(wakeup, "ERROR_BACKOFF", 0.05)
    drain = Recorder(failures=2)
    # When its loop runs
    task, stop = await running(drain, pool)
    try:
        # Then it stepped again after each failure and is now idle, listening
        assert drain.steps == 3 and not task.done()
        # And a NOTIFY wakes it
        await pool.execute(f"NOTIFY {TEST_QUEUE.channel}")
        await eventually(lambda: _stepped(drain, 4), "a NOTIFY wakes the loop")
        assert TEST_QUEUE.channel in drain.heard
    finally:
        stop.set()
        await task
    assert drain.conn is None  # the listening connection went back to the pool


async def test_a_lost_listening_connection_is_replaced(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakeup, "ERROR_BACKOFF", 0.05)
    drain = Recorder()
    task, stop = await running(drain, pool)
    try:
        # Given the server ends the listening connection (a restart, an admin)
        assert drain.conn is not None
        lost = drain.conn.get_server_pid()
        await pool.execute("SELECT pg_terminate_backend($1)", lost)
        await eventually(_closed(drain), "the client sees its connection closed")
        # When the loop wakes (a poke: the poll interval is a minute here)
        drain.poke()
        # Then it listens again on a new connection, told so (notifications may have been missed)
        await eventually(_relistening(drain, lost), "the loop listens on a new connection")
        assert drain.connections == 2
        # And a NOTIFY reaches it there
        steps = drain.steps
        await pool.execute(f"NOTIFY {TEST_QUEUE.channel}")
        await eventually(lambda: _stepped(drain, steps + 1), "a NOTIFY wakes the loop after the reconnection")
    finally:
        stop.set()
        await task


async def _stepped(drain: Recorder, count: int) -> bool:
    return drain.steps >= count and drain.asleep.is_set()


def _closed(drain: Recorder) -> Callable[[], Awaitable[bool]]:
    async def closed() -> bool:
        return drain.conn is None or not wakeup.usable(drain.conn)

    return closed


def _relistening(drain: Recorder, lost: int) -> Callable[[], Awaitable[bool]]:
    async def relistening() -> bool:
        conn = drain.conn
        return (
            conn is not None
            and wakeup.usable(conn)
            and conn.get_server_pid() != lost
            and drain.asleep.is_set()
        )

    return relistening
