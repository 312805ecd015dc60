"""The delivery worker's kept-alive connections (federation/connections.py), against raw
HTTP servers on loopback that answer byte for byte what each test scripts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from federation.connections import ANSWER_READ, Answer, Origin, Pool, PostFailed
from federation.fetcher import AddressPolicy, is_dev_address

DEV = AddressPolicy(allow_http=True, allow_address=is_dev_address)
REQUEST = b"POST /inbox HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"

# What the server does with the n-th request (0-based) of the c-th connection: the
# pieces it writes (each flushed apart), then whether it closes the connection.
Script = Callable[[int, int], tuple[list[bytes], bool]]


class RawServer:
    """A loopback server reading whole requests and answering them as scripted."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.open_now = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None

    @property
    def origin(self) -> Origin:
        assert self.server is not None
        return Origin("http", "127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number, self.connections = self.connections, self.connections + 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            for index in range(100):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                pieces, close = self.script(number, index)
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.001)
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@contextlib.asynccontextmanager
async def serving(script: Script) -> AsyncIterator[RawServer]:
    raw = RawServer(script)
    raw.server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    try:
        yield raw
    finally:
        raw.server.close()


def always(*pieces: bytes, close: bool = False) -> Script:
    return lambda _connection, _request: (list(pieces), close)


async def post_twice(raw: RawServer, pool: Pool) -> list[Answer]:
    return [await pool.post(raw.origin, REQUEST), await pool.post(raw.origin, REQUEST)]


async def two_posts_to(script: Script) -> tuple[list[Answer], RawServer]:
    """Two POSTs, one after the other, through a new pool to a server run by ``script``:
    their answers, and the server (its connections and requests, once it has stopped)."""
    async with serving(script) as raw:
        pool = Pool(DEV)
        answers = await post_twice(raw, pool)
        await pool.close()
    return answers, raw


# ── answers and keep-alive ─────────────────────────────────────────────────────


async def test_a_sized_answer_is_read_and_the_connection_reused() -> None:
    answers, raw = await two_posts_to(always(b"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\n", b"ok!\n"))
    assert answers == [Answer(202), Answer(202)]
    assert raw.connections == 1
    assert raw.requests == [REQUEST, REQUEST]


async def test_a_chunked_answer_in_small_pieces_with_trailers_keeps_the_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\nX-T: 1\r\n\r\n"
    pieces = [answer[i : i + 3] for i in range(0, len(answer), 3)]
    answers, raw = await two_posts_to(always(*pieces))
    assert answers == [Answer(200), Answer(200)]
    assert raw.connections == 1


async def test_an_interim_answer_is_skipped() -> None:
    answers, raw = await two_posts_to(
        always(b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n")
    )
    assert answers == [Answer(204), Answer(204)]
    assert raw.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 503 Busy\r\nRetry-After: 30\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\nRetry-After: 30\r\n\r\nbody until the end",  # no framing
        b"HTTP/1.0 503 Busy\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n",
    ],
)
async def test_an_answer_that_ends_the_connection_gets_a_new_one_next_time(answer: bytes) -> None:
    answers, raw = await two_posts_to(always(answer, close=True))
    assert answers == [Answer(503, "30"), Answer(503, "30")]
    assert raw.connections == 2


async def test_a_large_answer_is_not_read_the_connection_is_closed() -> None:
    big = b"x" * (ANSWER_READ + 10)
    sized = b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n" % len(big)
    chunked = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(big)
    for head in (sized, chunked):
        answers, raw = await two_posts_to(always(head, big))
        assert answers == [Answer(400), Answer(400)]
        assert raw.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/1.1 2x2 Bad\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ],
)
async def test_what_is_not_an_http_1_answer_is_no_answer(answer: bytes) -> None:
    async with serving(always(answer)) as raw:
        pool = Pool(DEV)
        with pytest.raises(PostFailed, match="réponse HTTP invalide"):
            await pool.post(raw.origin, REQUEST)
        await pool.close()


async def test_a_retry_after_is_read_and_a_http_1_0_keep_alive_honoured() -> None:
    answer = (
        b"HTTP/1.0 429 Too Many\r\nConnection: keep-alive\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n"
    )
    answers, raw = await two_posts_to(always(answer))
    assert answers == [Answer(429, "120"), Answer(429, "120")]
    assert raw.connections == 1


async def test_a_kept_connection_closed_unanswered_is_replaced_once() -> None:
    # Given a server that drops every connection's second request without a word
    def script(_connection: int, request: int) -> tuple[list[bytes], bool]:
        if request == 1:
            return [], True
        return [b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"], False

    async with serving(script) as raw:
        pool = Pool(DEV)
        # When two POSTs go one after the other
        answers = await post_twice(raw, pool)
        await pool.close()
    # Then the second went again over a new connection, and both were answered
    assert answers == [Answer(202), Answer(202)]
    assert raw.connections == 2
    assert len(raw.requests) == 3


async def test_a_new_connection_closed_unanswered_fails() -> None:
    async with serving(always(close=True)) as raw:
        pool = Pool(DEV)
        with pytest.raises(PostFailed, match="connexion perdue"):
            await pool.post(raw.origin, REQUEST)
        await pool.close()
    assert raw.connections == 1


async def test_no_more_than_per_host_connections_at_once() -> None:
    answer = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"

    def script(_connection: int, _request: int) -> tuple[list[bytes], bool]:
        return [b"", answer], False  # a pause (the empty piece) before each answer

    async with serving(script) as raw:
        pool = Pool(DEV, per_host=2)
        answers = await asyncio.gather(*(pool.post(raw.origin, REQUEST) for _ in range(8)))
        await pool.close()
    assert answers == [Answer(202)] * 8
    assert raw.most_open == 2


# ── the address guard ──────────────────────────────────────────────────────────


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_are_refused_without_the_dev_setting(host: str) -> None:
    async with serving(always(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")) as raw:
        pool = Pool(AddressPolicy())
        with pytest.raises(PostFailed, match="adresse refusée"):
            await pool.post(Origin("http", host, raw.origin.port), REQUEST)
        await pool.close()
    assert raw.connections == 0
