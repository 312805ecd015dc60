"""The lean HTTP/1.1 client of deliveries (federation/transport.py) against real sockets.

Each test runs a small raw HTTP server on loopback that answers exactly the bytes a
case needs (chunked bodies, closed connections, oversized heads …) and records the
connections and requests it got.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from federation import transport
from federation.errors import FetchError
from federation.fetcher import AddressPolicy, is_dev_address

DEV = AddressPolicy(allow_http=True, allow_address=is_dev_address)
REQUEST = b"POST /inbox HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
BODY = b"{}"

Answer = Callable[[int], bytes]  # request number (from 0) -> raw answer


class RawServer:
    """Answers each request with ``answer(n)``; ``close_after`` closes the connection
    after that many answers on it."""

    def __init__(self, answer: Answer, close_after: int | None = None) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                self.requests.append(head + await reader.readexactly(length))
                writer.write(self.answer(len(self.requests) - 1))
                await writer.drain()
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/inbox"


@asynccontextmanager
async def raw_server(answer: Answer, close_after: int | None = None) -> AsyncIterator[RawServer]:
    server = RawServer(answer, close_after)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


@asynccontextmanager
async def client(policy: AddressPolicy = DEV) -> AsyncIterator[transport.Transport]:
    t = transport.Transport(policy, connect_timeout=2.0)
    try:
        yield t
    finally:
        await t.close()


async def post(t: transport.Transport, url: str, policy: AddressPolicy = DEV) -> transport.Answer:
    async with asyncio.timeout(5):
        return await t.post(transport.target_of(url, policy), REQUEST, BODY)


def fixed(raw: bytes) -> Answer:
    return lambda _n: raw


async def test_kept_alive_connection_is_reused_for_the_next_delivery() -> None:
    # Given an inbox answering 202 with a chunked body on a kept-alive connection
    chunked = (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"
    )
    async with raw_server(fixed(chunked)) as inbox, client() as t:
        # When two deliveries go to it
        first, second = await post(t, inbox.url), await post(t, inbox.url)
        # Then both are answered 202, over one connection, with the body as sent
        assert (first.status, second.status) == (202, 202)
        assert inbox.connections == 1
        assert inbox.requests == [REQUEST + BODY] * 2


async def test_connection_close_and_unframed_answers_are_not_reused() -> None:
    # Given an inbox that says "Connection: close", then one that answers without a length
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        b"HTTP/1.0 201 Created\r\n\r\nthe body runs until the server closes",
    ]
    async with raw_server(lambda n: answers[min(n, 1)], close_after=1) as inbox, client() as t:
        # When three deliveries go to it
        statuses = [(await post(t, inbox.url)).status for _ in range(3)]
        # Then each is answered, each on its own connection
        assert statuses == [200, 201, 201]
        assert inbox.connections == 3


async def test_an_idle_connection_closed_by_the_server_is_replaced_once() -> None:
    # Given an inbox that silently closes each connection after one answer (no "close" header)
    async with raw_server(
        fixed(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"), close_after=1
    ) as inbox:
        async with client() as t:
            await post(t, inbox.url)
            await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle
            # When the next delivery finds that connection gone
            answer = await post(t, inbox.url)
        # Then it is sent again on a new connection, and answered
        assert answer.status == 202
        assert inbox.connections == 2
        assert len(inbox.requests) == 2


async def test_retry_after_is_read_and_a_long_body_is_not() -> None:
    # Given an inbox answering 429 with Retry-After and a body larger than we read
    big = b"x" * (1024 * 1024)  # more than one read of the event loop (256 KiB)
    answer = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Length: %d\r\n\r\n" % len(big) + big
    )
    async with raw_server(fixed(answer)) as inbox, client() as t:
        # When a delivery goes to it
        got = await post(t, inbox.url)
        # Then the status and the header come back; the connection is dropped, not drained
        assert (got.status, got.retry_after) == (429, "120")
        await post(t, inbox.url)
        assert inbox.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 202 Accepted\r\nX-Junk: " + b"y" * (transport.MAX_HEAD + 10) + b"\r\n\r\n",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\nContent-Length: nine\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["oversized head", "not HTTP", "bad length", "bad chunk"],
)
async def test_malformed_answers_are_errors_not_statuses(answer: bytes) -> None:
    # Given an inbox answering something that is not a well-formed HTTP answer
    async with raw_server(fixed(answer)) as inbox, client() as t:
        # When a delivery goes to it, Then it fails as a transport error (retried later)
        with pytest.raises(transport.TransportError):
            await post(t, inbox.url)


async def test_a_server_closing_without_answer_is_an_error() -> None:
    # Given an inbox that reads the request and hangs up
    async with raw_server(fixed(b""), close_after=1) as inbox, client() as t:
        # When a delivery goes to it (on a new connection), Then it fails
        with pytest.raises(transport.TransportError, match="sans réponse"):
            await post(t, inbox.url)


async def test_private_addresses_are_refused_literal_or_resolved() -> None:
    # Given a production address policy (http allowed for the test, public addresses only)
    policy = AddressPolicy(allow_http=True)
    async with raw_server(fixed(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")) as inbox:
        # When the inbox is named by its loopback address, Then the URL is refused before anything
        with pytest.raises(FetchError):
            transport.target_of(inbox.url, policy)
        # When it is named by a name that resolves to loopback, Then no connection is made
        async with client(policy) as t:
            with pytest.raises(transport.TransportError, match="adresse interdite"):
                await post(t, f"http://localhost:{inbox.port}/inbox", policy)
        assert inbox.connections == 0


def test_targets_keep_the_signed_host_and_path() -> None:
    # Given inbox URLs with a default port, another port and a query
    plain = transport.target_of("http://127.0.0.1:80/inbox", DEV)
    other = transport.target_of("http://127.0.0.1:8080/u/x/inbox?a=1", DEV)
    # Then the Host header and request path are what the signature covers
    assert (plain.host_header, plain.path, plain.port) == ("127.0.0.1", "/inbox", 80)
    assert (other.host_header, other.path, other.port) == ("127.0.0.1:8080", "/u/x/inbox?a=1", 8080)


def test_the_client_works_on_uvloop_as_inside_granian() -> None:
    # Given the event loop `vbg-node serve` runs its in-process worker on (granian picks uvloop)
    uvloop = pytest.importorskip("uvloop")

    async def two_deliveries() -> tuple[list[int], int]:
        async with raw_server(fixed(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")) as inbox:
            async with client() as t:
                statuses = [(await post(t, inbox.url)).status for _ in range(2)]
            return statuses, inbox.connections

    # When two deliveries go to an inbox, Then both are answered over one kept-alive connection
    assert uvloop.run(two_deliveries()) == ([202, 202], 1)
