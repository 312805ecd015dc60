"""Kept-alive HTTP/1.1 connections to remote inboxes: how the delivery worker POSTs.

::

    Origin (scheme, host, port)
      ──addresses──> a literal IP, or the host resolved once per DNS_TTL; every address
                     checked by the AddressPolicy (the guarded fetcher's rules: no private
                     or loopback address unless the dev setting allows it)
      ──dial──────> a socket to a checked address only, TCP_NODELAY (https: the default
                     verified TLS context, SNI, ALPN http/1.1), within the attempt's deadline
      ──post──────> the request written at once; the answer read by aiohttp's HTTP/1.1
                     response parser (llhttp), its body dropped as it comes (more than
                     ANSWER_READ: the connection is closed instead) ──> Answer(status, retry_after)
      ──kept──────> back to the origin's idle connections when the answer was complete
                     and the server keeps it open; closed after KEEP_ALIVE idle seconds

At most ``per_host`` connections per origin are open at once (the others wait for one).
A kept-alive connection the server closed before answering is replaced by a new one,
once (the request never reached the inbox: nothing was answered).

Why not aiohttp's ClientSession for this one path: a delivery needs none of its
per-request machinery (request and response objects, cookie jar, tracing, timers,
redirects, decompression, happy-eyeballs dialing): measured with bench/delivery.py,
that machinery cost as much CPU per delivery as half an RSA-2048 signature, and
dialing a connection through its connector about as much as a whole one. aiohttp
still does the HTTP here: its response parser (the C one, llhttp, ~6 µs an answer)
reads every answer, so framing, chunked bodies, interim answers and malformed heads
are handled by the same tested code as every aiohttp request; this module only pools
connections and writes requests. Everything else still goes through the guarded
fetcher (``federation.fetcher``, aiohttp's ClientSession); this module shares its
address policy and raises only :class:`PostFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpResponseParser, RawResponseMessage
from aiohttp.http_exceptions import HttpProcessingError

from federation import fetcher

ANSWER_READ = 16 * 1024  # the most of an answer's body we read (and skip)
MAX_HEAD = 16 * 1024  # a header field
MAX_LINE = 8190  # the status line
KEEP_ALIVE = 30.0  # seconds an idle connection is kept
DNS_TTL = 60.0  # seconds a host's checked addresses are reused
MAX_IDLE = 4096  # idle connections kept across every origin
SWEEP_EVERY = 5.0


class PostFailed(Exception):
    """No answer: the connection could not be made or was lost. ``reason`` is short and
    safe to store (no address, no content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Origin(NamedTuple):
    """Where a connection goes (a tuple: hashed in C, every POST looks its pool up)."""

    scheme: str
    host: str  # as in the URL: a name, or an IP literal (IPv6 without brackets)
    port: int


class Answer(NamedTuple):
    status: int
    retry_after: str | None = None


# ── one connection: writes a request, parses the answer ───────────────────────


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request at a time. Its answers are read by
    aiohttp's HTTP/1.1 response parser (llhttp, the one every aiohttp client request
    uses): framing, chunks, interim answers and malformed heads are its business."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # has carried a request before
        self._waiter: asyncio.Future[tuple[Answer, bool]] | None = None
        loop = asyncio.get_running_loop()
        # The answers' bodies are drained as they arrive and never exceed ANSWER_READ
        # here, far under the reader's high-water mark: flow control never engages.
        self._parser = HttpResponseParser(
            BaseProtocol(loop),
            loop,
            4 * ANSWER_READ,
            max_line_size=MAX_LINE,
            max_field_size=MAX_HEAD,
            auto_decompress=False,
        )
        self._reset()

    def _reset(self) -> None:
        self._answer: Answer | None = None
        self._message: RawResponseMessage | None = None
        self._payload: StreamReader | None = None
        self._received = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # nothing was asked: a confused server
            return
        self._received = True
        try:
            messages, _upgraded, _tail = self._parser.feed_data(data)
        except HttpProcessingError:
            self._fail("réponse HTTP invalide")
            return
        for message, payload in messages:
            if 100 <= message.code < 200:
                if message.code == 101:
                    self._fail("réponse HTTP invalide")
                    return
                continue  # an interim answer: the real one follows
            self._message, self._payload = message, payload
            self._answer = Answer(message.code, message.headers.get("Retry-After"))
            length = message.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > ANSWER_READ:
                self._done(keep=False)  # not worth reading: the connection goes
                return
        self._skip_body()

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._answer is not None and self._message is not None and self._message.should_close:
                self._waiter.set_result((self._answer, False))  # body until the end: it ended
            else:
                self._waiter.set_exception(_Lost(self._received))

    # -- requests

    def request(
        self, data: bytes, waiter: asyncio.Future[tuple[Answer, bool]]
    ) -> asyncio.Future[tuple[Answer, bool]]:
        """Send ``data``; ``waiter`` gets the answer and whether the connection may be reused."""
        assert self.transport is not None
        self._reset()
        self.used = True
        self._waiter = waiter
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    # -- the answer

    def _fail(self, reason: str) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(PostFailed(reason))
        self.close()

    def _done(self, keep: bool) -> None:
        assert self._answer is not None and self._waiter is not None
        if not self._waiter.done():
            self._waiter.set_result((self._answer, keep))

    def _skip_body(self) -> None:
        """Drop what has arrived of the answer's body; done once it is whole (the
        connection kept if the server keeps it) or once it passes ANSWER_READ (closed)."""
        message, payload = self._message, self._payload
        if message is None or payload is None:
            return
        payload.read_nowait()
        if payload.total_bytes > ANSWER_READ:
            self._done(keep=False)
        elif payload.is_eof():
            self._done(keep=not message.should_close)


class _Lost(Exception):
    """The connection ended before the answer; ``answered``: some of it had arrived."""

    def __init__(self, answered: bool) -> None:
        super().__init__("connection lost")
        self.answered = answered


# ── the pool ──────────────────────────────────────────────────────────────────


@dataclass
class _Host:
    """An origin's connections: idle ones (most recent last) and how many are open."""

    idle: list[_Connection] = field(default_factory=list)
    open: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class Pool:
    """Kept-alive connections to many origins, each dialled only to checked addresses.
    Must be created inside a running event loop."""

    def __init__(self, policy: fetcher.AddressPolicy, *, per_host: int = 4) -> None:
        self.policy = policy
        self.per_host = per_host
        self._loop = asyncio.get_running_loop()
        self._hosts: dict[Origin, _Host] = {}
        self._addresses: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._tls: ssl.SSLContext | None = None
        self._idle = 0
        self._swept_at = time.monotonic()

    async def post(self, origin: Origin, request: bytes) -> Answer:
        """Send ``request`` (request line, headers, body) to ``origin``; its answer."""
        host = self._hosts.get(origin)
        if host is None:
            host = self._hosts[origin] = _Host()
        # a kept-alive connection at hand: taken without a coroutine to run
        connection = self._take_idle(host) or await self._acquire(origin, host)
        reusable = False
        try:
            reused = connection.used
            try:
                answer, reusable = await connection.request(request, self._loop.create_future())
            except _Lost as lost:
                if not reused or lost.answered:
                    raise
                connection.close()  # the server had closed it, unanswered: once more
                connection = await self._dial(origin)
                answer, reusable = await connection.request(request, self._loop.create_future())
        except _Lost:
            raise PostFailed("connexion perdue") from None
        finally:
            self._release(host, connection, reusable)
        return answer

    async def close(self) -> None:
        for host in self._hosts.values():
            for connection in host.idle:
                connection.close()
            host.idle.clear()
        self._hosts.clear()
        self._idle = 0
        await asyncio.sleep(0)  # let the transports close

    def sweep(self) -> None:
        """Close the connections idle for more than KEEP_ALIVE (at most every SWEEP_EVERY)."""
        now = time.monotonic()
        if now - self._swept_at < SWEEP_EVERY:
            return
        self._swept_at = now
        for origin, host in list(self._hosts.items()):
            stale = [c for c in host.idle if c.closed or now - c.idle_since > KEEP_ALIVE]
            for connection in stale:
                self._forget_idle(host, connection)
                connection.close()
            if not host.idle and not host.open and not host.waiters:
                del self._hosts[origin]

    # -- connections

    def _take_idle(self, host: _Host) -> _Connection | None:
        """The most recently used idle connection still open (idle ones count as open)."""
        while host.idle:
            connection = host.idle.pop()
            self._idle -= 1
            if not connection.closed and time.monotonic() - connection.idle_since < KEEP_ALIVE:
                return connection
            connection.close()
            host.open -= 1
        return None

    async def _acquire(self, origin: Origin, host: _Host) -> _Connection:
        while True:
            connection = self._take_idle(host)
            if connection is not None:
                return connection
            if host.open < self.per_host:
                host.open += 1
                try:
                    return await self._dial(origin)
                except BaseException:
                    host.open -= 1
                    self._wake(host)
                    raise
            waiter = self._loop.create_future()
            host.waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    host.waiters.remove(waiter)

    def _release(self, host: _Host, connection: _Connection, reusable: bool) -> None:
        if reusable and not connection.closed and self._idle < MAX_IDLE:
            connection.idle_since = time.monotonic()
            host.idle.append(connection)
            self._idle += 1
        else:
            connection.close()
            host.open -= 1
        self._wake(host)
        self.sweep()

    def _forget_idle(self, host: _Host, connection: _Connection) -> None:
        host.idle.remove(connection)
        host.open -= 1
        self._idle -= 1

    @staticmethod
    def _wake(host: _Host) -> None:
        for waiter in host.waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _dial(self, origin: Origin) -> _Connection:
        tls = self._tls_context() if origin.scheme == "https" else None
        last = "connexion impossible"
        for address in await self._checked_addresses(origin.host, origin.port):
            try:
                _transport, connection = await self._loop.create_connection(
                    _Connection,
                    address,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls else None,
                )
            except ssl.SSLError:
                last = "échec TLS"
            except OSError:
                last = "connexion impossible"
            else:
                return connection
        raise PostFailed(last)

    async def _checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` the policy allows (checked once per DNS_TTL)."""
        now = time.monotonic()
        cached = self._addresses.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        literal = fetcher._parse_ip(host)
        if literal is not None:
            found = [host]
        else:
            try:
                infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError:
                raise PostFailed("nom introuvable") from None
            found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [
            a for a in found if (ip := fetcher._parse_ip(a)) is not None and self.policy.allow_address(ip)
        ]
        if not allowed:
            raise PostFailed("adresse refusée (adresse privée)")
        if len(self._addresses) > 65_536:
            self._addresses.clear()
        self._addresses[(host, port)] = (now + DNS_TTL, allowed)
        return allowed

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
            self._tls.set_alpn_protocols(["http/1.1"])
        return self._tls

    def idle_connections(self) -> Iterator[_Connection]:
        for host in self._hosts.values():
            yield from host.idle
