"""RFC 9421 signatures (HTTP Message Signatures) at the verifier: what Fedify and newer
Mastodon send first is accepted when well formed, and refused with 401 otherwise.

The signer here is written apart from the verifier (which uses the
http-message-signatures library): the signature base is assembled by hand from the RFC."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from federation import signatures
from federation.errors import SignatureError
from federation.signatures import load_public_key, parse, verify_request
from tests.fakefedi import KeyPair

ORIGIN = "https://node.example"
KEY_ID = "https://masto.example/users/alice#main-key"
BODY = b'{"type":"Create","id":"https://masto.example/1"}'


@pytest.fixture(scope="module")
def key() -> KeyPair:
    private_pem, public_pem = signatures.generate_key_pair()
    return KeyPair(KEY_ID, private_pem, public_pem)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class Knobs:
    """How the hand-made signature deviates from a good one."""

    url: str = ORIGIN + "/inbox"
    components: tuple[str, ...] = ("@method", "@target-uri", "content-digest")
    created: int | None = field(default_factory=lambda: int(time.time()))
    alg: str | None = "rsa-v1_5-sha256"
    digest_of: bytes | None = None  # the body the Content-Digest is computed over
    signer: KeyPair | None = None
    labels: int = 1


def rfc9421_headers(key: KeyPair, method: str, body: bytes | None, knobs: Knobs) -> dict[str, str]:
    headers = {"Host": "node.example", "Content-Type": "application/activity+json"}
    if body is not None:
        digest = hashlib.sha256(knobs.digest_of if knobs.digest_of is not None else body).digest()
        headers["Content-Digest"] = f"sha-256=:{_b64(digest)}:"
    values = {"@method": method, "@target-uri": knobs.url, "@authority": "node.example", "@path": "/inbox"}
    lines = []
    for name in knobs.components:
        value = values.get(name) or headers[name.title()]
        lines.append(f'"{name}": {value}')
    params = "(" + " ".join(f'"{c}"' for c in knobs.components) + ")"
    if knobs.created is not None:
        params += f";created={knobs.created}"
    params += f';keyid="{key.key_id}"'
    if knobs.alg is not None:
        params += f';alg="{knobs.alg}"'
    lines.append(f'"@signature-params": {params}')
    private = signatures.load_private_key((knobs.signer or key).private_pem)
    signature = private.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    inputs = [f"sig{i}={params}" for i in range(1, knobs.labels + 1)]
    values_ = [f"sig{i}=:{_b64(signature)}:" for i in range(1, knobs.labels + 1)]
    headers["Signature-Input"] = ", ".join(inputs)
    headers["Signature"] = ", ".join(values_)
    return headers


def check(key: KeyPair, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
    verify_request(
        method,
        path,
        headers,
        body,
        parse(headers),
        load_public_key(key.public_pem),
        expected_host="node.example",
        origin=ORIGIN,
    )


def test_a_well_formed_rfc9421_post_verifies(key: KeyPair) -> None:
    headers = rfc9421_headers(key, "POST", BODY, Knobs())
    params = parse(headers)
    assert (params.scheme, params.key_id, params.label) == ("rfc9421", KEY_ID, "sig1")
    assert params.headers == ("@method", "@target-uri", "content-digest")
    check(key, "POST", "/inbox", headers, BODY)


def test_authority_and_path_cover_the_target_too(key: KeyPair) -> None:
    components = ("@method", "@authority", "@path", "content-digest")
    check(key, "POST", "/inbox", rfc9421_headers(key, "POST", BODY, Knobs(components=components)), BODY)


def test_a_signed_get_verifies(key: KeyPair) -> None:
    headers = rfc9421_headers(
        key, "GET", None, Knobs(url=ORIGIN + "/c/psy", components=("@method", "@target-uri"))
    )
    check(key, "GET", "/c/psy", headers, None)


@pytest.mark.parametrize(
    ("case", "knobs", "body"),
    [
        ("another key", "stranger", BODY),
        ("body changed after signing", Knobs(), BODY + b" "),
        ("digest of another body", Knobs(digest_of=b"{}"), BODY),
        ("created two hours ago", Knobs(created=int(time.time()) - 7200), BODY),
        ("created two hours ahead", Knobs(created=int(time.time()) + 7200), BODY),
        ("no created", Knobs(created=None), BODY),
        ("hmac algorithm claimed", Knobs(alg="hmac-sha256"), BODY),
        ("ed25519 algorithm claimed", Knobs(alg="ed25519"), BODY),
        ("signed for another server", Knobs(url="https://elsewhere.example/inbox"), BODY),
        ("signed for another path", Knobs(url=ORIGIN + "/u/alice/inbox"), BODY),
        ("method not covered", Knobs(components=("@target-uri", "content-digest")), BODY),
        ("target not covered", Knobs(components=("@method", "content-digest")), BODY),
        ("digest not covered", Knobs(components=("@method", "@target-uri")), BODY),
        ("two signatures", Knobs(labels=2), BODY),
    ],
)
def test_a_bad_rfc9421_signature_is_refused(key: KeyPair, case: str, knobs: Knobs | str, body: bytes) -> None:
    if knobs == "stranger":
        private_pem, public_pem = signatures.generate_key_pair()
        knobs = Knobs(signer=KeyPair(KEY_ID, private_pem, public_pem))
    assert isinstance(knobs, Knobs)
    headers = rfc9421_headers(key, "POST", BODY, knobs)
    with pytest.raises(SignatureError):
        check(key, "POST", "/inbox", headers, body)


@pytest.mark.parametrize(
    "inputs",
    ["sig1=(", 'sig1=("@method");keyid=12', "sig1=not-a-list", '"x"', "sig1=(" + '"@method" ' * 3000 + ")"],
)
def test_malformed_rfc9421_headers_are_refused_cleanly(inputs: str) -> None:
    with pytest.raises(SignatureError):
        parse({"Signature-Input": inputs, "Signature": "sig1=:AAAA:"})


def test_a_host_header_for_another_server_is_refused(key: KeyPair) -> None:
    headers = rfc9421_headers(key, "POST", BODY, Knobs())
    headers["Host"] = "elsewhere.example"
    with pytest.raises(SignatureError):
        check(key, "POST", "/inbox", headers, BODY)


@pytest.mark.parametrize(
    "digest", ["sha-256=:!!:", "sha-256=abc", "md5=:AAAA:", "", "sha-256=:AAAA:, sha-256=:AAAA:"]
)
def test_a_malformed_content_digest_is_refused_not_a_500(key: KeyPair, digest: str) -> None:
    # Given a signature that covers a Content-Digest nobody could match
    headers = rfc9421_headers(key, "POST", BODY, Knobs())
    headers["Content-Digest"] = digest
    with pytest.raises(SignatureError):
        check(key, "POST", "/inbox", headers, BODY)
