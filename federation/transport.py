"""A lean HTTP/1.1 client for deliveries: one signed POST, its status, nothing else.

Why not aiohttp here (it stays for every fetch): a delivery is one RSA signature and
one small POST, and aiohttp's per-request machinery cost as much CPU as the signature
itself (measured on loopback, 1,000 inboxes: ~0.35 ms per POST on a kept-alive
connection, ~0.7 ms with the connection set-up; this client ~0.09 ms and ~0.25 ms),
which capped a worker at about half its signing rate. What a delivery needs is
small: connect (guarded), write one request, read the status line and headers,
drain a short body so the connection can be reused.

Safety is the fetcher's (``federation.fetcher``): the URL's scheme and literal
address are checked by :func:`fetcher.check_url` before anything is sent, and every
address a name resolves to is checked here before connecting *to that address*
(no second resolution between check and connect); TLS verifies the certificate
against the name (``server_hostname``). Answers are bounded: headers
``MAX_HEAD`` bytes, bodies read up to ``MAX_BODY`` (a longer one closes the
connection); the caller puts a deadline on the whole exchange.

Connection life::

    acquire ─ idle connection of (scheme, host, port) younger than IDLE_TIMEOUT ─┐
            └ none: resolve (cached DNS_TTL), check addresses, connect ──────────┤
    write request ─> read answer ─┬ framed (Content-Length or chunked), HTTP/1.1,
                                  │ no "Connection: close" ─> back to idle
                                  └ otherwise ─> closed
    A reused connection that fails before any answer byte (the server closed it
    while idle) is retried once on a new one: the server processed nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import cast

from federation.errors import FetchError
from federation.fetcher import AddressPolicy, check_url
from federation.signatures import host_and_target

MAX_HEAD = 16 * 1024
MAX_BODY = 16 * 1024
IDLE_TIMEOUT = 4.0  # below the 5 s keep-alive of Node.js servers (Fedify, NodeBB …)
MAX_IDLE_PER_HOST = 8
DNS_TTL = 60.0
MAX_CACHED_NAMES = 10_000


class TransportError(Exception):
    """No usable answer: connection refused or lost, forbidden address, bad HTTP."""


@dataclass(frozen=True)
class Target:
    """An inbox URL, checked and split once (deliveries to it reuse this)."""

    tls: bool
    host: str  # to resolve and to verify the certificate against
    port: int
    host_header: str  # also the signed ``host``
    path: str  # also the signed ``(request-target)`` path, query included

    @property
    def origin(self) -> tuple[bool, str, int]:
        return (self.tls, self.host, self.port)


def target_of(url: str, policy: AddressPolicy) -> Target:
    """The target of ``url``; FetchError when its scheme or literal address is refused."""
    parsed = check_url(url, policy)
    host_header, path = host_and_target(url)
    if any(c in host_header + path for c in "\r\n\x00 "):
        raise FetchError("control characters in URL")
    assert parsed.raw_host is not None and parsed.port is not None
    return Target(parsed.scheme == "https", parsed.raw_host, parsed.port, host_header, path)


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None  # the raw header value, parsed by the caller


# ── the answer parser ─────────────────────────────────────────────────────────


class _NoAnswer(TransportError):
    """The connection ended before a single byte of answer."""


@dataclass
class _Exchange:
    """One request's answer being read."""

    future: asyncio.Future[Answer]
    status: int = 0
    retry_after: str | None = None
    keep_alive: bool = True
    framing: str = "length"  # "length" | "chunked" | "close" (read until the server closes)
    remaining: int = 0  # bytes of the body (or of the current chunk) still to read
    chunk_state: str = "size"  # "size" | "data" | "crlf" | "trailer"
    body_read: int = 0
    got_bytes: bool = False


class _Connection(asyncio.Protocol):
    """An HTTP/1.1 client connection: one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.exchange: _Exchange | None = None
        self.in_head = True
        self.closed = False
        self.idle_since = time.monotonic()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports, under granian, are not asyncio.Transport subclasses)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # nothing asked: a server speaking out of turn
            self.close()
            return
        exchange.got_bytes = True
        self.buffer += data
        try:
            self._parse(exchange)
        except TransportError as exc:
            self._end(exchange, error=exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self.exchange
        if exchange is None:
            return
        if exchange.framing == "close" and not self.in_head:
            self._end(exchange)
        elif not exchange.got_bytes:
            self._end(exchange, error=_NoAnswer("connexion fermée sans réponse"))
        else:
            self._end(exchange, error=TransportError("connexion fermée pendant la réponse"))

    # -- use

    def send(self, request: bytes, body: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None and self.exchange is None
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.exchange = _Exchange(future)
        self.in_head = True
        self.buffer.clear()
        self.transport.write(request + body)
        return future

    @property
    def reusable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- parsing

    def _parse(self, exchange: _Exchange) -> None:
        while self.in_head:
            end = self.buffer.find(b"\r\n\r\n", 0, MAX_HEAD)
            if end < 0:
                if len(self.buffer) >= MAX_HEAD:
                    raise TransportError("en-têtes de réponse trop longs")
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            self._read_head(exchange, head)
        if self._read_body(exchange):
            self._end(exchange)
        elif exchange.body_read > MAX_BODY:
            exchange.keep_alive = False  # not worth reading: answer now, drop the connection
            self._end(exchange)

    def _read_head(self, exchange: _Exchange, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise TransportError("réponse HTTP invalide")
        status = int(parts[1])
        if 100 <= status < 200:
            return  # an interim answer (100 Continue): the real one follows
        exchange.status = status
        exchange.keep_alive = parts[0] == b"HTTP/1.1"
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                if not value.isdigit() or (length is not None and length != int(value)):
                    raise TransportError("Content-Length invalide")
                length = int(value)
            elif name == b"transfer-encoding":
                exchange.framing = "chunked" if value.lower().endswith(b"chunked") else "close"
            elif name == b"connection" and b"close" in value.lower():
                exchange.keep_alive = False
            elif name == b"retry-after":
                exchange.retry_after = value[:100].decode("latin-1")
        if exchange.framing == "length":
            if status in (204, 304):
                length = 0
            if length is None:
                exchange.framing = "close"
            else:
                exchange.remaining = length
        if exchange.framing == "close":
            exchange.keep_alive = False
        self.in_head = False

    def _read_body(self, exchange: _Exchange) -> bool:
        """Consume what the buffer holds of the body; whether the body is complete."""
        if exchange.framing == "chunked":
            return self._read_chunks(exchange)
        if exchange.framing == "close":
            exchange.body_read += len(self.buffer)
            self.buffer.clear()
            return False
        self._take(exchange)
        return exchange.remaining == 0

    def _take(self, exchange: _Exchange) -> None:
        taken = min(exchange.remaining, len(self.buffer))
        del self.buffer[:taken]
        exchange.remaining -= taken
        exchange.body_read += taken

    def _read_chunks(self, exchange: _Exchange) -> bool:
        while True:
            if exchange.chunk_state == "data":
                self._take(exchange)
                if exchange.remaining:
                    return False
                exchange.chunk_state = "crlf"
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise TransportError("bloc HTTP invalide")
                return False
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            if exchange.chunk_state == "crlf":
                if line:
                    raise TransportError("bloc HTTP invalide")
                exchange.chunk_state = "size"
            elif exchange.chunk_state == "trailer":
                if not line:
                    return True
            else:
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise TransportError("bloc HTTP invalide") from None
                exchange.chunk_state, exchange.remaining = ("trailer", 0) if size == 0 else ("data", size)

    def _end(self, exchange: _Exchange, error: Exception | None = None) -> None:
        if self.exchange is exchange:
            self.exchange = None
        self.idle_since = time.monotonic()
        if error is not None or not exchange.keep_alive or self.buffer:
            self.close()  # (bytes beyond the answer: the connection is out of step)
        if exchange.future.done():
            return
        if error is not None:
            exchange.future.set_exception(error)
        else:
            exchange.future.set_result(Answer(exchange.status, exchange.retry_after))


# ── the client ────────────────────────────────────────────────────────────────


@dataclass
class _Resolved:
    addresses: list[tuple[int, str]]  # (family, address)
    until: float


@dataclass
class Transport:
    """Connections to inboxes, kept alive and reused; resolved names cached."""

    policy: AddressPolicy
    connect_timeout: float = 5.0
    ssl_context: ssl.SSLContext | None = None
    _idle: dict[tuple[bool, str, int], list[_Connection]] = field(default_factory=dict)
    _dns: dict[str, _Resolved] = field(default_factory=dict)

    async def post(self, target: Target, request: bytes, body: bytes) -> Answer:
        """Send ``request`` (the head, blank line included) and ``body``; the answer.
        TransportError when there is none. The caller bounds the time it takes."""
        conn, reused = self._reuse(target)
        try:
            if conn is None:
                conn = await self._connect(target)
            try:
                answer = await conn.send(request, body)
            except _NoAnswer:
                if not reused:
                    raise
                conn = await self._connect(target)  # the idle one was closed by the server
                answer = await conn.send(request, body)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._release(target, conn)
        return answer

    async def close(self) -> None:
        """Close the idle connections (busy ones end with their exchange)."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    # -- connections

    def _reuse(self, target: Target) -> tuple[_Connection | None, bool]:
        idle = self._idle.get(target.origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.reusable and now - conn.idle_since < IDLE_TIMEOUT:
                return conn, True
            conn.close()
        return None, False

    def _release(self, target: Target, conn: _Connection) -> None:
        if not conn.reusable:
            return
        idle = self._idle.setdefault(target.origin, [])
        if len(idle) >= MAX_IDLE_PER_HOST:
            conn.close()
        else:
            idle.append(conn)

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if target.tls:
            tls = self.ssl_context = self.ssl_context or ssl.create_default_context()
        last = TransportError("aucune adresse")
        for family, address in await self._addresses(target.host, target.port):
            if not self.policy.allow_address(ipaddress.ip_address(address)):
                last = TransportError(f"adresse interdite {address}")
                continue
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, conn = await loop.create_connection(
                        _Connection,
                        address,
                        target.port,
                        family=family,
                        ssl=tls,
                        server_hostname=target.host if tls else None,
                    )
            except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
                last = TransportError(f"connexion impossible : {type(exc).__name__}")
                continue
            return conn
        raise last

    async def _addresses(self, host: str, port: int) -> list[tuple[int, str]]:
        literal = _literal(host)
        if literal is not None:
            return [literal]
        cached = self._dns.get(host)
        if cached is not None and cached.until > time.monotonic():
            return cached.addresses
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise TransportError(f"nom introuvable : {type(exc).__name__}") from exc
        addresses = list(dict.fromkeys((int(info[0]), str(info[4][0]).split("%", 1)[0]) for info in infos))
        if len(self._dns) > MAX_CACHED_NAMES:
            self._dns.clear()
        self._dns[host] = _Resolved(addresses, time.monotonic() + DNS_TTL)
        return addresses


def _literal(host: str) -> tuple[int, str] | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))
