"""HTTP signatures, draft-cavage as Mastodon speaks it (docs/architecture.md §4).

Outgoing::

    headers = sign_request("POST", inbox_url, body, key_id, private_key,
                           {"Content-Type": "application/activity+json"})

signs ``(request-target) host date digest`` (GET: ``(request-target) host date``)
with ``rsa-sha256``. Incoming::

    params = parse(request.headers)                       # SignatureError 401
    key = load_public_key(pem_of(params.key_id))          # the caller finds the key
    verify_request(method, path_with_query(...), headers, body, params, key)

Library split: ``httpsig`` only builds and parses the strings; the RSA work is done by
``cryptography`` with key objects parsed once (``lru_cache`` on the PEM). httpsig's own
verifier is never used on incoming requests: it takes the algorithm from the request
and accepts ``hmac-*``, which lets anyone "sign" with the sender's public key as the
HMAC secret. Here the algorithm is fixed: ``rsa-sha256`` and ``hs2019`` are both
verified as RSASSA-PKCS1-v1_5 with SHA-256; anything else is refused.

What ``verify_request`` checks beyond the RSA signature, because httpsig does not:
``(request-target)`` signed (it carries the query string: :func:`verify_fetch` alone, for
GET and HEAD, also accepts the path without it), ``date`` signed and within
±1 hour (Mastodon's window), ``host`` signed on GET/HEAD, ``digest`` signed on POST
(and whenever there is a body) and equal to the raw body's digest. ``Digest`` must carry
``SHA-256=`` (what Mastodon and our senders use); a ``SHA-512=`` value, if also present,
must match too — an unknown algorithm in the list is ignored, a wrong known one refuses.

RFC 9421 (HTTP Message Signatures: ``Signature-Input`` + ``Signature``, as Fedify and
newer Mastodon send first) is verified too, by the ``http-message-signatures`` library
(structured fields, signature base, ``Content-Digest``), with the same rules: one
signature, RSASSA-PKCS1-v1_5 SHA-256 only (``alg`` absent or ``rsa-v1_5-sha256``;
anything else 401, so the sender falls back to draft-cavage), ``created`` required and
within ±1 hour, ``expires`` not past, ``@method`` and the target (``@target-uri``, or
``@authority`` with ``@path`` and ``@query`` when there is one) covered, and
``content-digest`` covered and equal to the body's digest whenever there is a body. The
target URI is rebuilt from the node's public URL, so a signature made for another server
(or another path) does not verify here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib.util
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.request import parse_http_list

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from yarl import URL

from federation.errors import SignatureError
from node import metrics

log = logging.getLogger(__name__)


def _httpsig_strings() -> ModuleType:
    """httpsig's draft-cavage string helpers (``httpsig.utils``), loaded without running
    the package's ``__init__``: that one imports setuptools' deprecated ``pkg_resources``
    only to read its own version (~6.5 MB of memory and ~0.3 s in every process, and an
    ImportError once setuptools drops it) and httpsig's signer and verifier, which we do
    not use (docs/architecture.md §4). Falls back to the plain import if the layout ever changes."""
    spec = importlib.util.find_spec("httpsig")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "utils.py"
        found = importlib.util.spec_from_file_location("httpsig.utils", path)
        if found is not None and found.loader is not None and path.is_file():
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
            return module
    import httpsig.utils

    utils: ModuleType = httpsig.utils
    return utils


_httpsig = _httpsig_strings()
build_signature_template = _httpsig.build_signature_template
generate_message = _httpsig.generate_message
parse_signature_header = _httpsig.parse_signature_header

ACCEPTED_ALGORITHMS = frozenset({"rsa-sha256", "hs2019"})
CLOCK_SKEW = timedelta(hours=1)
MAX_SIGNATURE_HEADER = 8192
GET_HEADERS = ("(request-target)", "host", "date")
POST_HEADERS = ("(request-target)", "host", "date", "digest")
SYNC_HEADER = "collection-synchronization"  # FEP-8fcf, signed with a group's deliveries
# Pseudo-headers whose value comes from the Signature parameters, not from a header.
_PSEUDO = frozenset({"(created)", "(expires)"})


@dataclass(frozen=True)
class SignatureParams:
    """The parsed signature. ``algorithm`` is what the sender *claimed*; ``scheme`` is
    ``cavage`` (``headers``: the signed header names) or ``rfc9421`` (``headers``: the
    covered component names, ``label``: the signature's label)."""

    key_id: str
    algorithm: str
    headers: tuple[str, ...]
    signature: bytes
    created: int | None = None
    expires: int | None = None
    scheme: str = "cavage"
    label: str = ""


# ---------------------------------------------------------------- keys


def generate_key_pair() -> tuple[str, str]:
    """A new RSA-2048 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_pem.decode("ascii"), public_pem_of(key)


def public_pem_of(key: rsa.RSAPrivateKey) -> str:
    """The public half of ``key`` as the PEM an actor's ``publicKeyPem`` carries."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """Parse a public key PEM once (cached); SignatureError if it is not an RSA key."""
    return _load_public_key(pem.encode("ascii", "replace") if isinstance(pem, str) else pem)


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """Parse an unencrypted private key PEM once (cached); ValueError if it is not RSA."""
    return _load_private_key(pem.encode("ascii") if isinstance(pem, str) else pem)


@lru_cache(maxsize=4096)
def _load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.strip())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError("unreadable public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("public key is not RSA")
    return key


@lru_cache(maxsize=256)
def _load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("private key is not RSA")
    return key


# ---------------------------------------------------------------- signing


def http_date(moment: datetime | None = None) -> str:
    """An RFC 7231 IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return format_datetime((moment or datetime.now(UTC)).astimezone(UTC), usegmt=True)


def digest_header(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def host_and_target(url: str) -> tuple[str, str]:
    """The ``Host`` value and the ``(request-target)`` path of ``url`` as aiohttp sends them.

    yarl normalises the URL exactly as aiohttp will on the wire, so what we sign is what
    the peer receives (query string included, fragment never sent).
    """
    return host_and_target_of(URL(url))


def host_and_target_of(parsed: URL) -> tuple[str, str]:
    """:func:`host_and_target` of a URL already parsed (a delivery's target is parsed
    once, for the address check and for this)."""
    if not parsed.is_absolute() or parsed.raw_host is None:
        raise ValueError(f"not an absolute URL: {str(parsed)!r}")
    host = parsed.raw_host
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parsed.explicit_port is not None and not parsed.is_default_port():
        host = f"{host}:{parsed.explicit_port}"
    return host, parsed.raw_path_qs


def sign_request(
    method: str,
    url: str,
    body: bytes | None,
    key_id: str,
    private_key: rsa.RSAPrivateKey | str | bytes,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers to send: ``headers`` plus Host, Date, Digest (when there is a body), Signature."""
    if '"' in key_id or "\\" in key_id:
        raise ValueError("key id must not contain quotes or backslashes")
    key = private_key if isinstance(private_key, rsa.RSAPrivateKey) else load_private_key(private_key)
    host, target = host_and_target(url)
    out = dict(headers or {})
    out["Host"] = host
    out["Date"] = http_date()
    signed: tuple[str, ...] = GET_HEADERS
    if body is not None:
        out["Digest"] = digest_header(body)
        signed = POST_HEADERS
    message = generate_message(list(signed), out, host=host, method=method, path=target)
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    out["Signature"] = signature_header(key_id, "rsa-sha256", signed, signature)
    return out


# Made once (stateless): one delivery signs with them, thousands a second.
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class PostSigner:
    """Signs POSTs with one actor's key, for deliveries: the same headers as
    :func:`sign_request` (``(request-target) host date digest``, ``rsa-sha256``), with
    what does not change per request prepared once — the ``Signature`` header around
    the signature (httpsig's template) and the parsed key. The caller gives the Digest
    (computed once per body) and the Date (once per second)."""

    def __init__(self, key_id: str, key: rsa.RSAPrivateKey) -> None:
        if '"' in key_id or "\\" in key_id:
            raise ValueError("key id must not contain quotes or backslashes")
        self.key_id = key_id
        self.key = key
        template = build_signature_template(key_id, "rsa-sha256", list(POST_HEADERS), sign_header="signature")
        self._before, self._after = template.split('signature="%s"', 1)
        synced = build_signature_template(
            key_id, "rsa-sha256", [*POST_HEADERS, SYNC_HEADER], sign_header="signature"
        )
        self._synced_before, self._synced_after = synced.split('signature="%s"', 1)

    def signature(self, host: str, target: str, date: str, digest: str, sync: str | None = None) -> str:
        """The ``Signature`` header of ``POST target`` to ``host`` with these headers
        (and ``sync``, a ``Collection-Synchronization`` value, signed too: FEP-8fcf
        honours it only signed).

        The signed string is httpsig's ``generate_message`` for POST_HEADERS, written
        out (tests check both agree): one line per header, lower-case names."""
        signed = f"(request-target): post {target}\nhost: {host}\ndate: {date}\ndigest: {digest}"
        before, after = self._before, self._after
        if sync is not None:
            signed += f"\n{SYNC_HEADER}: {sync}"
            before, after = self._synced_before, self._synced_after
        signature = self.key.sign(signed.encode("ascii"), _PKCS1, _SHA256)
        return f'{before}signature="{binascii.b2a_base64(signature, newline=False).decode()}"{after}'


def signature_header(key_id: str, algorithm: str, signed: Iterable[str], signature: bytes) -> str:
    """The ``Signature`` header value (httpsig's template, signature filled in)."""
    template = build_signature_template(key_id, algorithm, list(signed), sign_header="signature")
    # Not ``template % sig``: a key id may contain "%" (percent-encoded URLs).
    result: str = template.replace('signature="%s"', f'signature="{base64.b64encode(signature).decode()}"')
    return result


# ---------------------------------------------------------------- parsing


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def parse(headers: Mapping[str, str]) -> SignatureParams:
    """Read the draft-cavage ``Signature`` header; SignatureError (401) when absent or unusable."""
    lowered = _lower(headers)
    if "signature-input" in lowered:
        return _parse_rfc9421(lowered)
    raw = lowered.get("signature", "").strip()
    if not raw:
        raise SignatureError("missing signature")
    if len(raw) > MAX_SIGNATURE_HEADER:
        raise SignatureError("signature header too long")
    values = _parse_params(raw)
    key_id, encoded = values.get("keyid", ""), values.get("signature", "")
    if not key_id or not encoded:
        raise SignatureError("signature header without keyId or signature")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("signature is not base64") from exc
    return SignatureParams(
        key_id=key_id,
        algorithm=values.get("algorithm", "hs2019").lower(),
        headers=tuple(values.get("headers", "date").lower().split()),
        signature=signature,
        created=_optional_int(values.get("created")),
        expires=_optional_int(values.get("expires")),
    )


# The shape every real sender uses: key="value" pairs, values without quotes or
# backslashes. Such a header reads the same to any parser, so it skips httpsig's
# character-by-character ``parse_http_list`` (half the cost of a verification).
_SIMPLE_PARAMS = re.compile(r'\s*[A-Za-z]+="[^"\\]*"\s*(?:,\s*[A-Za-z]+="[^"\\]*"\s*)*')
_PARAM = re.compile(r'([A-Za-z]+)="([^"\\]*)"')


def _parse_params(raw: str) -> Mapping[str, str]:
    """Signature parameters, lower-cased names; httpsig's parser for anything unusual.

    A parameter given twice (two ``keyId``, two ``signature`` …) makes the header
    ambiguous — parsers differ on which one counts — so it is refused (401)."""
    if _SIMPLE_PARAMS.fullmatch(raw):
        pairs = _PARAM.findall(raw)
        names = [name.lower() for name, _ in pairs]
        values = dict(zip(names, (value for _, value in pairs), strict=True))
    else:
        names = [item.partition("=")[0].strip().lower() for item in parse_http_list(raw)]
        values = {k.lower(): v for k, v in parse_signature_header(raw).items()}
    if len(names) != len(set(names)):
        raise SignatureError("signature header repeats a parameter")
    return values


def _parse_rfc9421(headers: Mapping[str, str]) -> SignatureParams:
    """The one RFC 9421 signature of a request (its key id, for the key lookup); the
    verification itself is :func:`verify_request`'s."""
    import http_sf  # only RFC 9421 senders pay for it

    raw_input, raw_signature = headers.get("signature-input", ""), headers.get("signature", "")
    if len(raw_input) > MAX_SIGNATURE_HEADER or len(raw_signature) > MAX_SIGNATURE_HEADER:
        raise SignatureError("signature header too long")
    try:
        inputs = cast(Any, http_sf.parse(raw_input.encode("latin-1"), tltype="dictionary"))
        values = cast(Any, http_sf.parse(raw_signature.encode("latin-1"), tltype="dictionary"))
    except (http_sf.StructuredFieldError, ValueError, UnicodeError) as exc:
        raise SignatureError("malformed RFC 9421 signature headers") from exc
    if not isinstance(inputs, dict) or not isinstance(values, dict) or len(inputs) != 1:
        raise SignatureError("RFC 9421: exactly one signature expected")
    label, (components, params) = next(iter(inputs.items()))
    signature = values.get(label, (None, None))[0]
    key_id = params.get("keyid")
    if not isinstance(components, list) or not isinstance(signature, bytes) or not isinstance(key_id, str):
        raise SignatureError("RFC 9421 signature without components, keyid or value")
    return SignatureParams(
        key_id=key_id,
        algorithm=str(params.get("alg", RFC9421_ALGORITHM)),
        headers=tuple(str(name) for name, _ in components),
        signature=signature,
        scheme="rfc9421",
        label=label,
    )


def _optional_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise SignatureError("malformed created/expires parameter") from exc


def path_with_query(raw_path: bytes, query_string: bytes) -> str:
    """The ``(request-target)`` path of an ASGI request: the RAW path (Starlette's
    ``request.url.path`` is percent-decoded) plus ``?query`` when there is one."""
    path = raw_path.decode("latin-1") or "/"
    return f"{path}?{query_string.decode('latin-1')}" if query_string else path


# ---------------------------------------------------------------- verifying


def verify_request(
    method: str,
    path_with_query: str,
    headers: Mapping[str, str],
    body: bytes | None,
    params: SignatureParams,
    public_key: rsa.RSAPublicKey,
    *,
    now: datetime | None = None,
    expected_host: str | None = None,
    origin: str | None = None,
    header_lines: Sequence[tuple[str, str]] | None = None,
) -> None:
    """Raise SignatureError (401) unless the request is signed as docs/architecture.md §4 requires.

    ``headers`` are the request's headers as received; ``expected_host`` (the node's
    domain), when given, must be the ``Host`` the request came with, so a request
    signed for another server cannot be replayed here. For an RFC 9421 signature,
    ``origin`` is the node's public ``scheme://host`` (the target URI is rebuilt from
    it; without it, ``https://`` and the ``Host`` header) and ``header_lines`` the
    header lines as received (repeated fields kept; default: ``headers``); its
    ``created`` is checked against the clock (``now`` applies to draft-cavage only).
    """
    lowered = _lower(headers)
    method = method.upper()
    if params.scheme == "rfc9421":
        if expected_host is not None and lowered.get("host", "").lower() != expected_host.lower():
            raise SignatureError("request not addressed to this host")
        base = origin or f"https://{lowered.get('host', '')}"
        lines = header_lines if header_lines is not None else list(headers.items())
        _verify_rfc9421(method, base.rstrip("/") + path_with_query, lines, body, params, public_key)
        return
    _check_algorithm(params.algorithm)
    _check_signed_headers(method, params.headers, body)
    _check_date(lowered.get("date"), params, now or datetime.now(UTC))
    if expected_host is not None and lowered.get("host", "").lower() != expected_host.lower():
        raise SignatureError("request not addressed to this host")
    if "digest" in params.headers:
        _check_digest(lowered.get("digest"), body or b"")
    message = _signing_string(method, path_with_query, lowered, params)
    try:
        public_key.verify(params.signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc


RFC9421_ALGORITHM = "rsa-v1_5-sha256"

# How many verified signed GETs used each ``(request-target)`` form since the process
# started: ``with_query`` (what the draft and Mastodon sign) or ``path_only``; also
# exported as ``vbg_signed_fetches_total{target}`` (node.metrics).
REQUEST_TARGET_FORMS: Counter[str] = Counter()


def verify_fetch(
    method: str,
    path_with_query: str,
    headers: Mapping[str, str],
    params: SignatureParams,
    public_key: rsa.RSAPublicKey,
    **options: Any,
) -> str:
    """:func:`verify_request` for a signed GET or HEAD (no body); returns the form of
    ``(request-target)`` that verified: ``with_query`` or ``path_only``.

    NodeBB 4.15 signs ``GET /t/1/context?page=1`` as ``get /t/1/context``, and Mastodon
    has accepted both forms for years, so when the signature over the full target fails
    the same draft-cavage signature is checked over the path alone. Reading is all such
    a request can do: POSTs (and RFC 9421, whose ``@query`` is its own component) stay
    strict. Each use of the short form is counted and logged with the signer's key id.
    """
    try:
        verify_request(method, path_with_query, headers, None, params, public_key, **options)
    except SignatureError:
        path, query_sep, _ = path_with_query.partition("?")
        if not query_sep or method.upper() not in {"GET", "HEAD"} or params.scheme != "cavage":
            raise
        verify_request(method, path, headers, None, params, public_key, **options)
        REQUEST_TARGET_FORMS["path_only"] += 1
        metrics.count_signed_fetch("path_only")
        log.info(
            "signed %s of %s verified with (request-target) without its query (key %s; %d such so far)",
            method.upper(), path, params.key_id[:200], REQUEST_TARGET_FORMS["path_only"],
        )  # fmt: skip
        return "path_only"
    REQUEST_TARGET_FORMS["with_query"] += 1
    metrics.count_signed_fetch("with_query")
    return "with_query"


def header_lines(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """An ASGI request's header lines as text, repeats kept (``verify_request``'s
    ``header_lines`` for RFC 9421)."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]


class _HeaderLines:
    """Header lines as http-message-signatures reads them (``items()`` keeps repeats)."""

    def __init__(self, lines: Sequence[tuple[str, str]]) -> None:
        self.lines = lines

    def items(self) -> Iterable[tuple[str, str]]:
        return self.lines

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self.lines))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self.lines)


@dataclass(frozen=True)
class _Message:
    method: str
    url: str
    headers: _HeaderLines


class _OneKey:
    """The key resolver http-message-signatures asks: the key already looked up."""

    def __init__(self, key_id: str, key: rsa.RSAPublicKey) -> None:
        self.key_id, self.key = key_id, key

    def resolve_public_key(self, key_id: str) -> rsa.RSAPublicKey | None:
        return self.key if key_id == self.key_id else None


def _verify_rfc9421(
    method: str,
    url: str,
    lines: Sequence[tuple[str, str]],
    body: bytes | None,
    params: SignatureParams,
    key: rsa.RSAPublicKey,
) -> None:
    if params.algorithm != RFC9421_ALGORITHM:
        raise SignatureError(f"unsupported RFC 9421 algorithm {params.algorithm[:32]!r}")
    covered = set(params.headers)
    target = "@target-uri" in covered or {"@authority", "@path"} <= covered
    if "?" in url and "@target-uri" not in covered and "@query" not in covered:
        target = False
    if "@method" not in covered or not target:
        raise SignatureError("RFC 9421 signature does not cover the method and target")
    # Loaded on the first RFC 9421 request only (the draft-cavage path never needs it).
    from http_message_signatures import HTTPMessageSignaturesException, HTTPMessageVerifier
    from http_message_signatures.algorithms import RSA_V1_5_SHA256

    verifier = HTTPMessageVerifier(
        signature_algorithm=RSA_V1_5_SHA256, key_resolver=cast(Any, _OneKey(params.key_id, key))
    )
    verifier.max_clock_skew = CLOCK_SKEW
    message = _Message(method, url, _HeaderLines(lines))
    try:
        # ``created`` required, at most CLOCK_SKEW old or ahead, ``expires`` not past
        # (the library's clock), the Content-Digest matched against the body
        verifier.verify(message, max_age=CLOCK_SKEW, body=body or b"")
    except (HTTPMessageSignaturesException, ValueError, TypeError, KeyError) as exc:
        raise SignatureError(f"RFC 9421 signature does not verify: {exc}") from exc


def _check_algorithm(algorithm: str) -> None:
    # Never trust the claimed algorithm: only these two, both verified as RSA-SHA256.
    if algorithm not in ACCEPTED_ALGORITHMS:
        raise SignatureError(f"unsupported signature algorithm {algorithm[:32]!r}")


def _check_signed_headers(method: str, signed: tuple[str, ...], body: bytes | None) -> None:
    required = {"(request-target)", "date"}
    if method in {"GET", "HEAD"}:
        required.add("host")
    if method == "POST" or body:
        required.add("digest")
    missing = required.difference(signed)
    if missing:
        raise SignatureError("unsigned required headers: " + " ".join(sorted(missing)))


def _check_date(date: str | None, params: SignatureParams, now: datetime) -> None:
    if not date:
        raise SignatureError("missing date header")
    try:
        sent = _parse_http_date(date)
    except (TypeError, ValueError) as exc:
        raise SignatureError("malformed date header") from exc
    if abs(now - sent) > CLOCK_SKEW:
        raise SignatureError("date outside the accepted window")
    stamp = now.timestamp()
    if params.created is not None and params.created > stamp + CLOCK_SKEW.total_seconds():
        raise SignatureError("signature created in the future")
    if params.expires is not None and params.expires < stamp:
        raise SignatureError("signature expired")


@lru_cache(maxsize=1024)
def _parse_http_date(value: str) -> datetime:
    """A ``Date`` header as an aware datetime; cached: a busy sender repeats the same
    second many times, and parsing costs more than the RSA check's bookkeeping."""
    sent = parsedate_to_datetime(value)
    return sent if sent.tzinfo is not None else sent.replace(tzinfo=UTC)


_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def _check_digest(header: str | None, body: bytes) -> None:
    if not header:
        raise SignatureError("missing digest header")
    found: dict[str, str] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            found[name.strip().lower()] = value.strip()
    if "sha-256" not in found:
        raise SignatureError("digest without SHA-256")
    for name, value in found.items():
        algo = _DIGESTS.get(name)
        if algo is None:
            continue
        expected = base64.b64encode(algo(body).digest()).decode("ascii")
        if not hmac.compare_digest(expected, value):
            raise SignatureError("digest does not match the body")


def _signing_string(method: str, path: str, headers: dict[str, str], params: SignatureParams) -> bytes:
    # Only the signed headers: httpsig copies what it is given into a case-insensitive dict.
    values = {name: headers[name] for name in params.headers if name in headers}
    for pseudo in _PSEUDO.intersection(params.headers):
        number = params.created if pseudo == "(created)" else params.expires
        if number is None:
            raise SignatureError(f"{pseudo} signed without its parameter")
        values[pseudo] = str(number)
    absent = [h for h in params.headers if h != "(request-target)" and h not in values]
    if absent:
        raise SignatureError("signed header missing from the request: " + absent[0][:40])
    # httpsig's generate_message, written out (names are lower-case already, every one
    # present): one "name: value" line per signed header (tests check both agree).
    target = f"(request-target): {method.lower()} {path}"
    lines = [target if name == "(request-target)" else f"{name}: {values[name]}" for name in params.headers]
    try:
        return "\n".join(lines).encode("ascii")
    except UnicodeEncodeError as exc:
        raise SignatureError("non-ASCII value in a signed header") from exc
