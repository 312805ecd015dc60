"""The one guarded fetcher for every remote URL (docs/architecture.md §4).

    url ──check_url──> scheme (https; http only in dev), domain policy hook, literal IP
        ──guarded session──> every address the socket connects to is checked
                             (DNS rebinding cannot slip a private address in after a check)
        ──signed GET (instance actor)──> status, Content-Type, body ≤ 1 MiB DECOMPRESSED
        ──redirect?──> re-check from the top, at most 3 hops, re-signed
        ──JSON object, ``id`` == URL asked──> dict
          (fetch_media: an allowed image Content-Type, a larger cap ──> Media)
    all under one overall deadline; aiohttp and zlib errors become FetchError here
    (FetchRefused when our own guards said no: final).

``Fetcher(settings, signer)`` is what the rest of the code uses::

    fetcher = Fetcher(settings, signer=actors.instance_signer(pool), domain_allowed=policy.allows)
    actor = await fetcher.fetch_object("https://example.org/users/alice")
    jrd = await fetcher.fetch_json("https://example.org/.well-known/webfinger?resource=acct:…")
    media = await fetcher.fetch_media("https://example.org/x.jpg", {"image/jpeg"}, 8 * 1024 * 1024)
    status = await fetcher.post_activity(inbox, body, key_id, private_key)
    await fetcher.close()

``guarded_session(policy)`` gives the same address guard to code that keeps its own
pooled session, with a per-host connection limit; such code must still call
``check_url`` before each request. The delivery worker's connections
(``federation.connections``) apply the same ``AddressPolicy`` to every address before
dialling it, after ``check_url`` on the inbox URL.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import socket
import zlib
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urldefrag, urljoin

import aiohttp
from aiohappyeyeballs import AddrInfoType
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from yarl import URL

from federation.errors import FetchError, FetchRefused
from federation.signatures import sign_request
from node.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_T = TypeVar("_T")
Signer = Callable[[], Awaitable[tuple[str, RSAPrivateKey]]]
DomainAllowed = Callable[[str], Awaitable[bool]]

AS_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
JSON_ACCEPT = "application/jrd+json, application/json;q=0.9, application/activity+json;q=0.8"
AS_PROFILE = "https://www.w3.org/ns/activitystreams"
JSON_TYPES = frozenset({"application/json", "application/jrd+json", "application/activity+json"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "vbg-node/0.1 (ActivityPub)"


# ---------------------------------------------------------------- address policy

# Ranges Python's flags miss or call global: shared address space, IETF protocol
# assignments, local-use NAT64, deprecated site-local.
_EXTRA_FORBIDDEN = tuple(
    ipaddress.ip_network(n) for n in ("100.64.0.0/10", "192.0.0.0/24", "64:ff9b:1::/48", "fec0::/10")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to: mapped, 6to4, Teredo client, NAT64."""
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _special(ip: IPAddress) -> bool:
    return (
        ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_link_local
        or any(ip in n for n in _EXTRA_FORBIDDEN if n.version == ip.version)
    )


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses (and what they embed)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if any(not is_public_address(v4) for v4 in embedded_ipv4(ip)):
            return False
        if ip.ipv4_mapped is not None:
            return True  # judged by its IPv4 address above
    return ip.is_global and not ip.is_private and not ip.is_loopback and not _special(ip)


def is_dev_address(ip: IPAddress) -> bool:
    """Development policy: public, loopback and private peers; never link-local (cloud
    metadata), multicast, unspecified or reserved."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = embedded_ipv4(ip)
        if embedded:
            return all(is_dev_address(v4) for v4 in embedded)
    if ip.is_loopback or (ip.is_private and not _special(ip)):
        return True
    return is_public_address(ip)


@dataclass(frozen=True)
class AddressPolicy:
    """Which schemes and addresses remote URLs may use."""

    allow_http: bool = False
    allow_address: Callable[[IPAddress], bool] = is_public_address

    @classmethod
    def for_settings(cls, settings: Settings) -> AddressPolicy:
        if settings.dev_allow_private_peers:
            return cls(allow_http=True, allow_address=is_dev_address)
        return cls()


@dataclass(frozen=True)
class Limits:
    max_body: int = 1024 * 1024
    deadline: float | None = 10.0  # None: the caller keeps its own (the delivery sender)
    connect_timeout: float = 5.0
    max_redirects: int = 3
    max_response_read: int = 64 * 1024  # what post_activity reads of an inbox's answer
    media_deadline: float = 30.0  # fetch_media: a few MiB from a slow server
    limit: int = 100
    limit_per_host: int = 4


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _socket_factory(policy: AddressPolicy) -> Callable[[AddrInfoType], socket.socket]:
    def create(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        ip = _parse_ip(str(sockaddr[0]))
        if ip is None or not policy.allow_address(ip):
            # An OSError: aiohttp reports it as a connection failure, caught below.
            raise PermissionError(errno.EACCES, f"forbidden address {sockaddr[0]}")
        return socket.socket(family=family, type=type_, proto=proto)

    return create


def guarded_session(policy: AddressPolicy, limits: Limits | None = None) -> aiohttp.ClientSession:
    """A ClientSession whose every connection goes through ``policy``'s address check.

    No environment proxies (they would bypass the check), no cookies, no automatic
    decompression (bodies are decompressed by the reader, under the size cap).
    Must be created inside a running event loop.
    """
    limits = limits or Limits()
    connector = aiohttp.TCPConnector(
        limit=limits.limit,
        limit_per_host=limits.limit_per_host,
        socket_factory=_socket_factory(policy),
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=limits.deadline, sock_connect=limits.connect_timeout),
        headers={"User-Agent": USER_AGENT},
    )


def check_url(url: str, policy: AddressPolicy) -> URL:
    """The parsed URL, or FetchRefused when its scheme or literal address is refused."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise FetchRefused("malformed URL") from exc
    allowed = {"https", "http"} if policy.allow_http else {"https"}
    if parsed.scheme not in allowed or not parsed.raw_host:
        raise FetchRefused(f"scheme or host refused: {parsed.scheme}://")
    if parsed.user is not None or parsed.password is not None:
        raise FetchRefused("credentials in URL refused")
    ip = _parse_ip(parsed.raw_host)
    if ip is not None and not policy.allow_address(ip):
        raise FetchRefused(f"forbidden address {ip}")
    return parsed


# ---------------------------------------------------------------- body reading


def _decoder(encoding: str) -> Any:
    encoding = encoding.strip().lower()
    if encoding in {"", "identity"}:
        return None
    if encoding in {"gzip", "x-gzip"}:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib or gzip header, auto-detected
    raise FetchError(f"unsupported content encoding {encoding[:20]!r}")


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, decompressed incrementally; FetchError as soon as it exceeds ``cap`` bytes.

    ``max_length`` bounds each zlib step, so a gzip bomb never expands in memory.
    """
    decoder = _decoder(response.headers.get("Content-Encoding", ""))
    out = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        data = chunk
        while data:
            if decoder is None:
                piece, data = data, b""
            else:
                piece = decoder.decompress(data, cap + 1 - len(out))
                data = decoder.unconsumed_tail
            out += piece
            if len(out) > cap:
                raise FetchError("response body over the size limit")
            if decoder is not None and not piece:
                break
    if decoder is not None:
        out += decoder.flush(cap + 1 - len(out))
        if len(out) > cap:
            raise FetchError("response body over the size limit")
    return bytes(out)


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    kind, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        name, _, val = item.partition("=")
        params[name.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), params


def is_activitystreams(content_type: str) -> bool:
    kind, params = _media_type(content_type)
    if kind == "application/activity+json":
        return True
    return kind == "application/ld+json" and AS_PROFILE in params.get("profile", "").split()


def _is_json(content_type: str) -> bool:
    kind, _ = _media_type(content_type)
    return kind in JSON_TYPES or is_activitystreams(content_type)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FetchError("response is not JSON") from exc
    if not isinstance(doc, dict):
        raise FetchError("response is not a JSON object")
    return doc


def _origin(url: str) -> tuple[str, int | None]:
    parsed = URL(url)
    return (parsed.raw_host or "").lower(), parsed.port


# ---------------------------------------------------------------- the fetcher


@dataclass(frozen=True)
class Media:
    """A fetched media file: the ``Content-Type`` the peer declared (allowed, not
    trusted: the bytes are checked by who cleans them) and the body."""

    content_type: str
    body: bytes


def _address_refused(exc: BaseException) -> bool:
    """Did the connection fail because the address guard refused every address?"""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, PermissionError) and "forbidden address" in str(seen):
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return False


def authority(url: URL) -> str:
    """The domain as the instance policy and ``actors.domain`` spell it: lowercase host,
    with the port only when it is not the scheme's default (loopback peers use ports)."""
    host = (url.raw_host or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = url.explicit_port
    if port is None or port == {"http": 80, "https": 443}.get(url.scheme):
        return host
    return f"{host}:{port}"


@dataclass
class Fetcher:
    """Guarded, signed fetching of remote documents; one per process (pooled connections)."""

    settings: Settings
    signer: Signer
    domain_allowed: DomainAllowed | None = None
    policy: AddressPolicy | None = None
    limits: Limits = field(default_factory=Limits)
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.policy is None:
            self.policy = AddressPolicy.for_settings(self.settings)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            assert self.policy is not None
            self._session = guarded_session(self.policy, self.limits)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def fetch_object(self, url: str) -> dict[str, Any]:
        """An ActivityStreams document whose ``id`` is ``url`` (fragment ignored).

        A document with another id on the same host is refetched once from that id
        (key URLs, aliases); any other mismatch is refused.
        """
        asked, _ = urldefrag(url)
        async with self._deadline():
            doc = await self._get(asked, AS_ACCEPT, is_activitystreams)
            doc_id = doc.get("id")
            if doc_id == asked:
                return doc
            if not isinstance(doc_id, str) or _origin(doc_id) != _origin(asked):
                raise FetchError("document id does not match the URL")
            again = await self._get(doc_id, AS_ACCEPT, is_activitystreams)
            if again.get("id") != doc_id:
                raise FetchError("document id does not match the URL")
            return again

    async def fetch_json(self, url: str) -> dict[str, Any]:
        """A JSON object (WebFinger, NodeInfo): same guards, JSON types, no id check."""
        async with self._deadline():
            return await self._get(url, JSON_ACCEPT, _is_json)

    async def fetch_media(
        self,
        url: str,
        allowed_types: Collection[str],
        max_bytes: int,
        *,
        domain_ok: DomainAllowed | None = None,
        accept: str = "image/*",
        deadline: float | None = None,
    ) -> Media:
        """A media file (an image to clean): same guards and signed GET, a
        ``Content-Type`` among ``allowed_types``, at most ``max_bytes`` decompressed,
        within ``limits.media_deadline``. ``domain_ok`` is asked about every host on the
        way (the media worker's ``reject_media`` check) besides the instance policy.
        ``accept`` and ``deadline`` (seconds) suit larger files (the documents worker).
        A refusal by the guards is FetchRefused; what the peer answered, FetchError."""

        async def read(response: aiohttp.ClientResponse) -> Media:
            if response.status != 200:
                raise FetchError(f"remote answered {response.status}", remote_status=response.status)
            kind, _params = _media_type(response.headers.get("Content-Type", ""))
            if kind not in allowed_types:
                raise FetchRefused(f"unexpected content type {kind[:50]!r}")
            length = response.content_length
            if length is not None and length > max_bytes:
                raise FetchRefused("response body over the size limit")
            try:
                body = await read_capped(response, max_bytes)
            except FetchError as exc:
                raise FetchRefused(exc.reason) from exc
            return Media(kind, body)

        deadline = deadline or self.limits.media_deadline
        timeout = aiohttp.ClientTimeout(total=deadline, sock_connect=self.limits.connect_timeout)
        async with _TranslatedTimeout(deadline):
            return await self._follow(url, accept, read, domain_ok=domain_ok, client_timeout=timeout)

    async def post_activity(
        self, inbox_url: str, body: bytes, key_id: str, private_key: RSAPrivateKey
    ) -> int:
        """Deliver ``body`` to ``inbox_url`` (signed POST); the HTTP status the inbox answered.

        Redirects are not followed (a 3xx is returned as is); a little of the answer
        is read so the connection can be reused.
        """
        async with self._deadline():
            target = await self._check(inbox_url)
            headers = sign_request(
                "POST",
                str(target),
                body,
                key_id,
                private_key,
                {"Content-Type": "application/activity+json", "Accept": AS_ACCEPT},
            )
            try:
                async with self.session.post(
                    target, data=body, headers=headers, allow_redirects=False
                ) as response:
                    await response.content.read(self.limits.max_response_read)
                    return response.status
            except TimeoutError as exc:  # aiohttp's timeouts are also ClientErrors: first
                raise FetchError("deadline exceeded") from exc
            except aiohttp.ClientError as exc:
                raise FetchError(f"delivery failed: {exc!r}") from exc

    # -- internals

    def _deadline(self) -> _TranslatedTimeout:
        return _TranslatedTimeout(self.limits.deadline)

    async def _check(self, url: str) -> URL:
        assert self.policy is not None
        target = check_url(url, self.policy)
        if self.domain_allowed is not None:
            domain = authority(target)
            if not await self.domain_allowed(domain):
                raise FetchRefused(f"domain refused by instance policy: {domain}", status=403)
        return target

    async def _get(self, url: str, accept: str, type_ok: Callable[[str], bool]) -> dict[str, Any]:
        async def read(response: aiohttp.ClientResponse) -> dict[str, Any]:
            return await self._document(response, type_ok)

        return await self._follow(url, accept, read)

    async def _follow(
        self,
        url: str,
        accept: str,
        read: Callable[[aiohttp.ClientResponse], Awaitable[_T]],
        *,
        domain_ok: DomainAllowed | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> _T:
        """A signed GET of ``url``, redirects followed (each hop checked again and
        re-signed, at most ``max_redirects``), the final answer given to ``read``."""
        for _hop in range(self.limits.max_redirects + 1):
            target = await self._check(url)
            if domain_ok is not None and not await domain_ok(authority(target)):
                raise FetchRefused(f"domain refused by the caller: {authority(target)}", status=403)
            key_id, key = await self.signer()
            headers = sign_request("GET", str(target), None, key_id, key, {"Accept": accept})
            try:
                extra: dict[str, Any] = {"timeout": client_timeout} if client_timeout else {}
                async with self.session.get(
                    target, headers=headers, allow_redirects=False, **extra
                ) as response:
                    if response.status in REDIRECT_STATUSES:
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchError("redirect without Location")
                        url = urljoin(str(target), location)
                        continue
                    return await read(response)
            except TimeoutError as exc:  # aiohttp's timeouts are also ClientErrors: first
                raise FetchError("deadline exceeded") from exc
            except aiohttp.ClientError as exc:
                if _address_refused(exc):
                    raise FetchRefused(f"forbidden address: {exc!r}") from exc
                raise FetchError(f"fetch failed: {exc!r}") from exc
        raise FetchError("too many redirects")

    async def _document(
        self, response: aiohttp.ClientResponse, type_ok: Callable[[str], bool]
    ) -> dict[str, Any]:
        if response.status != 200:
            raise FetchError(f"remote answered {response.status}", remote_status=response.status)
        if not type_ok(response.headers.get("Content-Type", "")):
            raise FetchError("unexpected content type")
        length = response.content_length
        if length is not None and length > self.limits.max_body:
            raise FetchError("response body over the size limit")
        return _json_object(await read_capped(response, self.limits.max_body))


class _TranslatedTimeout:
    """``asyncio.timeout`` whose expiry surfaces as FetchError (the overall deadline)."""

    def __init__(self, seconds: float | None) -> None:
        self._timeout = asyncio.timeout(seconds)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            await self._timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError as timeout:
            raise FetchError("deadline exceeded") from timeout
        if isinstance(exc, TimeoutError):  # aiohttp's own timeout, inside ours
            raise FetchError("deadline exceeded") from exc
