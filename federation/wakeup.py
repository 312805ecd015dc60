"""The loop every queue worker runs (inbox, delivery, media, documents, mail).

A :class:`Drain` holds one pool connection with ``LISTEN`` on its queue's channel (and
any other channel it names) and runs its :meth:`Drain.step` until ``stop`` is set. A
step answers how long to wait before the next one:

- :data:`AT_ONCE` — it did some work, there may be more: step again now;
- a number of seconds — wait at most that long (a ``NOTIFY`` or :meth:`Drain.poke`
  ends the wait early; the delivery worker's flush of finished attempts);
- :data:`IDLE` — nothing to do: sleep until a ``NOTIFY``, a poke, ``stop`` or the
  poll interval (a safety net for a missed notification and for retries falling
  due), with :attr:`Drain.asleep` set meanwhile.

A database error or a bug in a step is logged and the loop waits ``ERROR_BACKOFF``
before trying again (a bug must not silently end a queue); a listening connection
that was closed (the server restarted) is replaced before the next step, and the
step is told (:meth:`Drain.connected`), since notifications may have been missed.

The queues whose step is « handle what is due, say how many » (inbox, media,
documents, mail) use :class:`Batches`; the delivery worker subclasses :class:`Drain`
(two channels, its claims on the listening connection, a flush to finish on stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import asyncpg

from node.queues import QueueSpec

log = logging.getLogger(__name__)

AT_ONCE: Final = 0.0
IDLE: Final = None
ERROR_BACKOFF = 5.0  # seconds after a database error or a bug, before the next step
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

Wait = float | None  # what a step answers (see the module docstring)


class Drain:
    """One queue's loop (see the module docstring). Subclasses write :meth:`step` and,
    when they need them, the hooks :meth:`connected`, :meth:`notified` and
    :meth:`closing`."""

    def __init__(
        self, queue: QueueSpec, *, also: Sequence[str] = (), poll_interval: float | None = None
    ) -> None:
        self.queue = queue
        self.channels = (*also, queue.channel)  # the queue's own LISTEN last
        self.poll_interval = queue.poll_interval if poll_interval is None else poll_interval
        self.asleep = asyncio.Event()  # set while the loop is idle, listening
        self.conn: asyncpg.Connection | None = None  # the listening connection, once open
        self._wake = asyncio.Event()
        self._pool: asyncpg.Pool | None = None

    # -- what a queue writes

    async def step(self) -> Wait:
        raise NotImplementedError

    async def connected(self, conn: asyncpg.Connection) -> None:
        """A new connection, about to LISTEN (at start, and after one was lost): set
        it up; notifications may have been missed meanwhile."""

    def notified(self, channel: str | None) -> None:
        """A ``NOTIFY`` on ``channel`` arrived, or (``None``) the poll interval passed
        with none: what to look at in the next step."""

    async def closing(self) -> None:
        """The loop ends: the last chance to use :attr:`conn` (still listening)."""

    # -- the loop

    def poke(self) -> None:
        """End the current wait now (work arrived that no ``NOTIFY`` announces)."""
        self._wake.set()

    async def run(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Step until ``stop`` is set (the module docstring says how it waits)."""
        try:
            if self.conn is None:
                await self.listen(pool)
            while not stop.is_set():
                if not await self._listening():
                    await self._wait(stop, ERROR_BACKOFF)
                    continue
                self._wake.clear()
                try:
                    wait = await self.step()
                except DB_ERRORS as exc:
                    log.warning(
                        "%s worker: database error, retrying in %.0f s: %s",
                        self.queue.name,
                        ERROR_BACKOFF,
                        exc,
                    )
                    await self._after_error(stop)
                    continue
                except Exception:
                    log.exception(
                        "%s worker: unexpected error, retrying in %.0f s", self.queue.name, ERROR_BACKOFF
                    )
                    await self._after_error(stop)
                    continue
                if wait is IDLE:
                    self.asleep.set()
                    try:
                        if not await self._wait(stop, self.poll_interval):
                            self.notified(None)
                    finally:
                        self.asleep.clear()
                elif wait > AT_ONCE:
                    await self._wait(stop, wait)
        finally:
            await self.finish()

    async def listen(self, pool: asyncpg.Pool) -> None:
        """Take the listening connection (:meth:`run` does when it was not taken before;
        a test driving :meth:`step` by hand calls it, then :meth:`finish`)."""
        self._pool = pool
        conn = await pool.acquire()
        try:
            await self.connected(conn)
            for channel in self.channels:  # LISTEN last: the loop is ready when it is done
                await conn.add_listener(channel, self._on_notify)
        except BaseException:
            await pool.release(conn)
            raise
        self.conn = conn

    async def finish(self) -> None:
        """:meth:`closing`, then the listening connection goes back to the pool."""
        try:
            await self.closing()
        finally:
            await self._unlisten()

    async def _listening(self) -> bool:
        """Whether the listening connection is usable; a closed one is replaced."""
        if self.conn is not None and usable(self.conn):
            return True
        assert self._pool is not None
        await self._unlisten()
        try:
            await self.listen(self._pool)
        except DB_ERRORS as exc:
            log.warning(
                "%s worker: cannot listen, retrying in %.0f s: %s", self.queue.name, ERROR_BACKOFF, exc
            )
            return False
        return True

    async def _unlisten(self) -> None:
        if self.conn is None or self._pool is None:
            return
        conn, self.conn = self.conn, None
        with contextlib.suppress(*DB_ERRORS):
            for channel in self.channels:
                await conn.remove_listener(channel, self._on_notify)
            await self._pool.release(conn)

    def _on_notify(self, _conn: Any, _pid: int, channel: str, _payload: str) -> None:
        self.notified(channel)
        self._wake.set()

    async def _after_error(self, stop: asyncio.Event) -> None:
        """Back off, then look at everything again (as after a poll)."""
        await self._wait(stop, ERROR_BACKOFF)
        self.notified(None)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait for a wake-up, ``stop`` or ``seconds``; whether something woke us."""
        if self._wake.is_set() or stop.is_set():
            return True
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return bool(done)


def usable(conn: asyncpg.Connection) -> bool:
    """Whether ``conn`` is open. A pool's connection the server ended is detached from
    the pool (every call on it raises InterfaceError): not usable either."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class Batches(Drain):
    """A queue whose step is one call, ``process()``, answering how many rows (or
    files) it handled: again at once while it handles some, idle when none."""

    def __init__(self, queue: QueueSpec, process: Callable[[], Awaitable[int]]) -> None:
        super().__init__(queue)
        self.process = process

    async def step(self) -> Wait:
        return AT_ONCE if await self.process() else IDLE
