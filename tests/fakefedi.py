"""The fake fediverse: small real ActivityPub servers on loopback, for every federation test.

Each ``FakeInstance`` is a real aiohttp web server on its own loopback address, with its
own RSA keys. It serves actors, objects, WebFinger and NodeInfo, VERIFIES the HTTP
signature of every request it receives (twice: with ``federation.signatures`` and,
independently, with httpsig's own verifier over pycryptodome) and records each request.
It signs what it sends to our node — correctly, or broken on purpose for negative tests.
Tests must set ``VBG_DEV_ALLOW_PRIVATE_PEERS=1`` (``settings.dev_allow_private_peers``)
for our node to talk to it: its base URL is ``http://127.0.0.X:PORT``.

    async with FakeInstance("127.0.0.31", software="mastodon") as masto:
        alice = masto.add_actor("alice")                      # Person, own key pair
        lobby = masto.add_actor("lobby", type="Group")        # Group
        note = masto.add_object({"type": "Note", "id": masto.new_id(), "content": "…",
                                 "attributedTo": alice.id})
        masto.trust_key(our_key_id, our_public_pem)           # else keys are fetched by keyId
        resp = await masto.send(our_inbox, {...}, actor=alice)              # signed POST
        resp = await masto.send(our_inbox, {...}, actor=alice, variant="hmac_public_key")
        resp = await masto.fetch(our_object_url, actor=alice)               # signed GET
        got = await masto.wait_for(lambda r: r.method == "POST" and r.path == alice.inbox_path)
        assert got.signature_ok and got.json["type"] == "Follow"

API
- ``FakeInstance(host="127.0.0.31", software="mastodon", *, port=0, require_signatures=True,
  inbox_status=202)``: async context manager (or ``await start()`` / ``await stop()``).
  ``base_url``, ``domain`` (``host:port``), ``url(path)``, ``instance_actor``,
  ``received: list[Received]``, ``actors: dict[str, FakeActor]``.
  ``software`` chooses the URL layout (mastodon: ``/users/NAME``; lemmy: ``/u/NAME`` and
  ``/c/NAME``) and the NodeInfo software name.
- ``add_actor(username, type="Person", **extra) -> FakeActor`` (``id``, ``inbox``,
  ``inbox_path``, ``shared_inbox``, ``key_id``, ``private_pem``, ``public_pem``,
  ``document()``, ``await signer()`` -> ``(key_id, RSAPrivateKey)`` usable by ``Fetcher``).
- ``new_id(kind="objects") -> str``; ``add_object(doc, *, content_type=AS_TYPE, status=200)``
  serves ``doc`` at the path of its ``id``; ``add_response(path, body, *, status=200,
  content_type=AS_TYPE, headers=None)`` serves raw bytes (or a dict as JSON);
  ``redirect(path, location, status=302)``; ``add_route(method, path, handler)`` for a raw
  aiohttp handler. Objects and actors answer 401 to unsigned or badly signed GETs while
  ``require_signatures`` (WebFinger, NodeInfo and the instance actor never require it).
- Inboxes (each actor's and ``/inbox``) answer ``inbox_status`` to well-signed POSTs, 401
  otherwise; ``inbox_activities()`` lists the JSON bodies accepted.
- ``trust_key(key_id, public_pem)``: the key to verify a signer with; unknown keys are
  fetched from their ``keyId`` URL with a signed GET (as Mastodon does) — except for
  requests to open paths (instance actor, WebFinger, NodeInfo), recorded with
  ``signature_ok=False`` when the key is unknown (two fakes would otherwise fetch each
  other's instance actor forever): ``trust_key`` first to check those.
- ``await send(inbox_url, activity, actor=None, *, variant="ok", body=None, headers=None)``
  and ``await fetch(url, actor=None, *, variant="ok", accept=AS_ACCEPT)`` return a
  ``Response(status, headers, body)`` (``.text``, ``.json()``). ``actor`` defaults to the
  actor named by ``activity["actor"]`` when it is ours, else the instance actor.
- ``await wait_for(predicate, within=5.0) -> Received`` polls ``received``.
- ``signed_headers(method, url, body, key, variant="ok", extra=None)``: the headers alone
  (no network), for unit tests of the verifier. ``VARIANTS`` lists the variants:
  ``ok``, ``hs2019``, ``unsigned``, ``wrong_key``, ``hmac_public_key``, ``stale_date``,
  ``future_date``, ``bad_digest``, ``unsigned_digest``, ``no_request_target``, ``no_host``,
  ``no_date``, ``rsa_sha512``, ``rfc9421``, ``path_only`` (``(request-target)`` without the
  query string, as NodeBB 4.15 signs its GETs), ``all_headers`` (the extra headers signed
  too, as Mastodon signs a ``Collection-Synchronization`` header).
- ``Received(method, path, headers, body, json, signature_ok, signature_error, key_id)``;
  ``path`` includes the query string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from httpsig.utils import generate_message
from httpsig.verify import HeaderVerifier
from yarl import URL

from federation import signatures
from federation.errors import SignatureError
from tests.helpers import eventually

AS_TYPE = "application/activity+json"
AS_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
AS_CONTEXT = ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]
VARIANTS = (
    "ok",
    "all_headers",
    "hs2019",
    "unsigned",
    "wrong_key",
    "hmac_public_key",
    "stale_date",
    "future_date",
    "bad_digest",
    "unsigned_digest",
    "no_request_target",
    "no_host",
    "no_date",
    "rsa_sha512",
    "rfc9421",
    "path_only",
)
_LAYOUTS = {
    "mastodon": {"Person": "/users/{}", "Group": "/users/{}", "Service": "/users/{}"},
    "lemmy": {"Person": "/u/{}", "Group": "/c/{}", "Service": "/u/{}"},
}
_OPEN_PREFIXES = ("/.well-known/", "/nodeinfo/")
_counter = itertools.count(1)


# ---------------------------------------------------------------- keys and signing


@dataclass(frozen=True)
class KeyPair:
    key_id: str
    private_pem: str
    public_pem: str


@lru_cache(maxsize=1)
def _stranger_key() -> rsa.RSAPrivateKey:
    """A key nobody published: what a forger signs with."""
    return signatures.load_private_key(signatures.generate_key_pair()[0])


def signed_headers(
    method: str,
    url: str,
    body: bytes | None,
    key: KeyPair,
    variant: str = "ok",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Request headers signed by ``key`` as ``variant`` says (see ``VARIANTS``).

    Written apart from ``federation.signatures.sign_request`` (only the URL helper is
    shared) so the verifier is tested against a second implementation.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    host, target = signatures.host_and_target(url)
    now = datetime.now(UTC)
    moment = {"stale_date": now - timedelta(hours=2), "future_date": now + timedelta(hours=2)}.get(
        variant, now
    )
    headers = dict(extra or {})
    headers["Host"] = host
    headers["Date"] = signatures.http_date(moment)
    if body is not None:
        digested = body + b" " if variant == "bad_digest" else body
        headers["Digest"] = "SHA-256=" + _b64(hashlib.sha256(digested).digest())
    if variant == "unsigned":
        return headers
    if variant == "rfc9421":
        return _rfc9421(method, url, body, key, headers)
    signed = _signed_list(method, body, variant)
    if variant == "all_headers":  # as Mastodon: every header sent is signed (FEP-8fcf's header too)
        signed += [name.lower() for name in extra or {}]
    if variant == "path_only":
        target = target.partition("?")[0]
    message = generate_message(signed, headers, host=host, method=method, path=target)
    algorithm, signature = _signature(message, key, variant)
    headers["Signature"] = signatures.signature_header(key.key_id, algorithm, signed, signature)
    return headers


def _signed_list(method: str, body: bytes | None, variant: str) -> list[str]:
    signed = ["(request-target)", "host", "date"]
    if body is not None and variant != "unsigned_digest":
        signed.append("digest")
    drop = {"no_request_target": "(request-target)", "no_host": "host", "no_date": "date"}.get(variant)
    return [h for h in signed if h != drop]


def _signature(message: bytes, key: KeyPair, variant: str) -> tuple[str, bytes]:
    if variant == "hmac_public_key":
        return "hmac-sha256", hmac.new(key.public_pem.encode(), message, hashlib.sha256).digest()
    private = _stranger_key() if variant == "wrong_key" else signatures.load_private_key(key.private_pem)
    if variant == "rsa_sha512":
        return "rsa-sha512", private.sign(message, padding.PKCS1v15(), hashes.SHA512())
    algorithm = "hs2019" if variant == "hs2019" else "rsa-sha256"
    return algorithm, private.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _rfc9421(
    method: str, url: str, body: bytes | None, key: KeyPair, headers: dict[str, str]
) -> dict[str, str]:
    """A genuine RFC 9421 signature (rsa-v1_5-sha256) and no draft-cavage one."""
    components = ['"@method"', '"@target-uri"']
    lines = [f'"@method": {method.upper()}', f'"@target-uri": {url}']
    if body is not None:
        headers.pop("Digest", None)
        headers["Content-Digest"] = f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"
        components.append('"content-digest"')
        lines.append(f'"content-digest": {headers["Content-Digest"]}')
    params = f'({" ".join(components)});created={int(time.time())};keyid="{key.key_id}";alg="rsa-v1_5-sha256"'
    lines.append(f'"@signature-params": {params}')
    private = signatures.load_private_key(key.private_pem)
    signature = private.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    headers["Signature-Input"] = f"sig1={params}"
    headers["Signature"] = f"sig1=:{_b64(signature)}:"
    return headers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    signature_ok: bool
    signature_error: str | None
    key_id: str | None


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeActor:
    instance: FakeInstance
    username: str
    type: str
    id: str
    private_pem: str
    public_pem: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key_id(self) -> str:
        return f"{self.id}#main-key"

    @property
    def key(self) -> KeyPair:
        return KeyPair(self.key_id, self.private_pem, self.public_pem)

    @property
    def inbox(self) -> str:
        return f"{self.id}/inbox"

    @property
    def inbox_path(self) -> str:
        return URL(self.inbox).path

    @property
    def shared_inbox(self) -> str:
        return self.instance.url("/inbox")

    async def signer(self) -> tuple[str, rsa.RSAPrivateKey]:
        """For ``Fetcher(signer=actor.signer)``."""
        return self.key_id, signatures.load_private_key(self.private_pem)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@context": AS_CONTEXT,
            "id": self.id,
            "type": self.type,
            "preferredUsername": self.username,
            "name": self.username.capitalize(),
            "inbox": self.inbox,
            "outbox": f"{self.id}/outbox",
            "followers": f"{self.id}/followers",
            "following": f"{self.id}/following",
            "url": self.id,
            "manuallyApprovesFollowers": False,
            "endpoints": {"sharedInbox": self.shared_inbox},
            "publicKey": {"id": self.key_id, "owner": self.id, "publicKeyPem": self.public_pem},
        }
        doc.update(self.extra)
        return doc


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------- the instance


class FakeInstance:
    """A fake ActivityPub server on ``http://HOST:PORT`` (see the module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.31",
        software: str = "mastodon",
        *,
        port: int = 0,
        require_signatures: bool = True,
        inbox_status: int = 202,
    ) -> None:
        self.host = host
        self.port = port
        self.software = software
        self.require_signatures = require_signatures
        self.inbox_status = inbox_status
        self.received: list[Received] = []
        self.actors: dict[str, FakeActor] = {}
        self._objects: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        self._routes: dict[tuple[str, str], Handler] = {}
        self._keys: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.instance_actor: FakeActor

    # -- life cycle

    async def __aenter__(self) -> FakeInstance:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._client = aiohttp.ClientSession(trust_env=False)
        self.instance_actor = self._make_actor("actor", "Application", "/actor")

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- addresses

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def domain(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def new_id(self, kind: str = "objects") -> str:
        return self.url(f"/{kind}/{next(_counter)}")

    # -- content

    def add_actor(self, username: str, type: str = "Person", **extra: Any) -> FakeActor:
        layout = _LAYOUTS.get(self.software, _LAYOUTS["mastodon"])
        return self._make_actor(username, type, layout.get(type, "/users/{}").format(username), extra)

    def _make_actor(
        self, username: str, type_: str, path: str, extra: dict[str, Any] | None = None
    ) -> FakeActor:
        private_pem, public_pem = signatures.generate_key_pair()
        actor = FakeActor(self, username, type_, self.url(path), private_pem, public_pem, extra or {})
        self.actors[username] = actor
        self._keys[actor.key_id] = public_pem
        return actor

    def add_object(
        self, doc: dict[str, Any], *, content_type: str = AS_TYPE, status: int = 200
    ) -> dict[str, Any]:
        url = URL(doc["id"])
        if url.raw_authority != self.domain:
            raise ValueError("the object's id must be on this instance")
        self.add_response(url.raw_path_qs, doc, status=status, content_type=content_type)
        return doc

    def add_response(
        self,
        path: str,
        body: bytes | dict[str, Any],
        *,
        status: int = 200,
        content_type: str = AS_TYPE,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        self._objects[path] = (status, content_type, raw, dict(headers or {}))

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.add_response(path, b"", status=status, content_type="text/plain", headers={"Location": location})

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def trust_key(self, key_id: str, public_pem: str) -> None:
        self._keys[key_id] = public_pem

    def inbox_activities(self) -> list[Any]:
        inboxes = {a.inbox_path for a in self.actors.values()} | {"/inbox"}
        return [r.json for r in self.received if r.method == "POST" and r.path in inboxes and r.signature_ok]

    async def wait_for(self, predicate: Callable[[Received], bool], within: float = 5.0) -> Received:
        """The first recorded request matching ``predicate``; fails after ``within`` s."""

        async def first() -> Received | None:
            return next((record for record in self.received if predicate(record)), None)

        return await eventually(first, f"{self.domain} receives what the test waits for", within=within)

    # -- outgoing

    async def send(
        self,
        inbox_url: str,
        activity: dict[str, Any] | None,
        actor: FakeActor | None = None,
        *,
        variant: str = "ok",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """POST ``activity`` (or raw ``body``) to ``inbox_url``, signed as ``variant`` says."""
        raw = body if body is not None else json.dumps(activity).encode()
        signer = actor or self._actor_of(activity)
        extra = {"Content-Type": AS_TYPE, "Accept": AS_ACCEPT, **(headers or {})}
        sent = signed_headers("POST", inbox_url, raw, signer.key, variant, extra)
        return await self._request("POST", inbox_url, sent, raw)

    async def fetch(
        self, url: str, actor: FakeActor | None = None, *, variant: str = "ok", accept: str = AS_ACCEPT
    ) -> Response:
        """A GET of ``url`` signed by ``actor`` (default: the instance actor)."""
        signer = actor or self.instance_actor
        sent = signed_headers("GET", url, None, signer.key, variant, {"Accept": accept})
        return await self._request("GET", url, sent, None)

    def _actor_of(self, activity: dict[str, Any] | None) -> FakeActor:
        wanted = (activity or {}).get("actor")
        for actor in self.actors.values():
            if actor.id == wanted:
                return actor
        return self.instance_actor

    async def _request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Response:
        assert self._client is not None, "start the instance first"
        async with self._client.request(
            method, URL(url), headers=headers, data=body, allow_redirects=False
        ) as resp:
            return Response(resp.status, dict(resp.headers), await resp.read())

    # -- incoming

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = await self._record(request, body)
        custom = self._routes.get((request.method, request.path))
        if custom is not None:
            return await custom(request)
        if request.path.startswith(_OPEN_PREFIXES):
            return self._well_known(request)
        if request.method == "POST":
            return self._inbox(request, record)
        if request.method == "GET":
            return self._serve(request, record)
        return web.Response(status=405)

    async def _record(self, request: web.Request, body: bytes) -> Received:
        headers = {k: v for k, v in request.headers.items()}
        ok, error, key_id = await self._verify(
            request, headers, body, may_fetch=self._needs_signature(request)
        )
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = Received(request.method, request.raw_path, headers, body, parsed, ok, error, key_id)
        self.received.append(record)
        return record

    async def _verify(
        self, request: web.Request, headers: dict[str, str], body: bytes, *, may_fetch: bool
    ) -> tuple[bool, str | None, str | None]:
        try:
            params = signatures.parse(headers)
        except SignatureError as exc:
            return False, exc.reason, None
        if params.key_id not in self._keys and not may_fetch:
            # Open paths (instance actor, discovery) never fetch keys: two instances
            # fetching each other's instance actor would otherwise loop forever.
            return False, "unknown key (not fetched on open paths)", params.key_id
        try:
            pem = await self._public_key(params.key_id)
            key = signatures.load_public_key(pem)
            signatures.verify_request(request.method, request.raw_path, headers, body or None, params, key)
        except (SignatureError, aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            return False, f"ours: {exc}", params.key_id
        if not _httpsig_opinion(request, headers, pem, params):
            return False, "httpsig: signature refused", params.key_id
        return True, None, params.key_id

    async def _public_key(self, key_id: str) -> str:
        if key_id not in self._keys:
            resp = await self.fetch(key_id.split("#", 1)[0])
            doc = resp.json()
            key = doc.get("publicKey", {})
            if key.get("id") != key_id:
                raise KeyError("key not found at its id")
            self._keys[key_id] = key["publicKeyPem"]
        return self._keys[key_id]

    def _needs_signature(self, request: web.Request) -> bool:
        """Inbox POSTs always; GETs of actors and objects while ``require_signatures``;
        never the instance actor, WebFinger or NodeInfo (as Mastodon's authorized fetch)."""
        if request.method == "POST":
            return True
        open_path = (
            request.path.startswith(_OPEN_PREFIXES) or request.path == URL(self.instance_actor.id).path
        )
        return self.require_signatures and not open_path

    def _inbox(self, request: web.Request, record: Received) -> web.Response:
        inboxes = {a.inbox_path for a in self.actors.values()} | {"/inbox"}
        if request.path not in inboxes:
            return web.Response(status=404)
        if not record.signature_ok:
            return web.Response(status=401, text=record.signature_error or "")
        return web.Response(status=self.inbox_status)

    def _serve(self, request: web.Request, record: Received) -> web.Response:
        found = self._objects.get(request.raw_path) or self._objects.get(request.path)
        actor = next((a for a in self.actors.values() if URL(a.id).path == request.path), None)
        if found is None and actor is None:
            return web.Response(status=404)
        if self._needs_signature(request) and not record.signature_ok:
            return web.Response(status=401, text=record.signature_error or "")
        if actor is not None:
            return web.json_response(actor.document(), content_type=AS_TYPE)
        assert found is not None
        status, content_type, raw, headers = found
        response = web.Response(status=status, body=raw, headers=headers)
        response.headers["Content-Type"] = content_type
        return response

    def _well_known(self, request: web.Request) -> web.Response:
        if request.path == "/.well-known/webfinger":
            return self._webfinger(request.query.get("resource", ""))
        if request.path == "/.well-known/nodeinfo":
            link = {
                "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                "href": self.url("/nodeinfo/2.1"),
            }
            return web.json_response({"links": [link]})
        if request.path == "/nodeinfo/2.1":
            return web.json_response(self._nodeinfo())
        return web.Response(status=404)

    def _webfinger(self, resource: str) -> web.Response:
        match = re.fullmatch(r"acct:([^@]+)@(.+)", resource)
        actor = None
        if match and match.group(2) == self.domain:
            actor = self.actors.get(match.group(1))
        actor = actor or next((a for a in self.actors.values() if a.id == resource), None)
        if actor is None:
            return web.Response(status=404)
        jrd = {
            "subject": f"acct:{actor.username}@{self.domain}",
            "aliases": [actor.id],
            "links": [{"rel": "self", "type": AS_TYPE, "href": actor.id}],
        }
        return web.json_response(jrd, content_type="application/jrd+json")

    def _nodeinfo(self) -> dict[str, Any]:
        users = sum(1 for a in self.actors.values() if a.type == "Person")
        return {
            "version": "2.1",
            "software": {"name": self.software, "version": "4.3.0"},
            "protocols": ["activitypub"],
            "services": {"inbound": [], "outbound": []},
            "openRegistrations": False,
            "usage": {
                "users": {"total": users, "activeMonth": users, "activeHalfyear": users},
                "localPosts": 0,
            },
            "metadata": {},
        }


def _httpsig_opinion(
    request: web.Request, headers: dict[str, str], pem: str, params: signatures.SignatureParams
) -> bool:
    """httpsig's own verifier (pycryptodome), told the algorithm we accept — never the
    one the request claims, which is exactly the hole we close."""
    fixed = dict(headers)
    for name in fixed:
        if name.lower() == "signature":
            value = re.sub(r'algorithm="[^"]*"', 'algorithm="rsa-sha256"', fixed[name])
            fixed[name] = value if "algorithm=" in value else value + ',algorithm="rsa-sha256"'
    try:
        verifier = HeaderVerifier(
            headers=fixed,
            secret=pem.encode(),
            required_headers=list(params.headers),
            method=request.method,
            path=request.raw_path,
            sign_header="signature",
        )
        return bool(verifier.verify())
    except Exception:  # httpsig raises bare Exception for a missing header
        return False
