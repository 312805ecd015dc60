"""HTTP signatures (docs/architecture.md §4): what we send verifies, and every forgery is refused with 401."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding
from httpsig.utils import generate_message, parse_signature_header
from httpsig.verify import HeaderVerifier

from federation import signatures
from federation.errors import SignatureError
from federation.signatures import load_public_key, parse, sign_request, verify_request
from tests.fakefedi import VARIANTS, FakeInstance, KeyPair, signed_headers

INBOX = "https://partner.example/inbox"
KEY_ID = "https://node.example/actor#main-key"


@pytest.fixture(scope="module")
def key() -> KeyPair:
    private_pem, public_pem = signatures.generate_key_pair()
    return KeyPair(KEY_ID, private_pem, public_pem)


def verify(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    key: KeyPair,
    *,
    expected_host: str | None = None,
    origin: str | None = None,
) -> None:
    public_key = load_public_key(key.public_pem)
    verify_request(
        method, path, headers, body, parse(headers), public_key, expected_host=expected_host, origin=origin
    )


def refusal(
    method: str, path: str, headers: dict[str, str], body: bytes | None, key: KeyPair
) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        verify(method, path, headers, body, key)
    return caught.value


# ---------------------------------------------------------------- what we send


def test_signed_post_carries_host_date_digest_and_verifies(key: KeyPair) -> None:
    # Given an activity for a remote inbox
    body = b'{"type": "Follow"}'
    # When we sign the POST
    headers = sign_request("POST", INBOX + "?x=1", body, KEY_ID, key.private_pem, {"Content-Type": "a/b"})
    # Then the headers are what Mastodon expects, and they verify
    assert headers["Host"] == "partner.example"
    assert headers["Content-Type"] == "a/b"
    assert abs(parsedate_to_datetime(headers["Date"]) - datetime.now(UTC)) < timedelta(seconds=5)
    assert headers["Digest"] == "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    params = parse_signature_header(headers["Signature"])
    assert params["keyId"] == KEY_ID and params["algorithm"] == "rsa-sha256"
    assert params["headers"] == "(request-target) host date digest"
    verify("POST", "/inbox?x=1", headers, body, key)


def test_signed_get_covers_query_and_port(key: KeyPair) -> None:
    # Given a GET of a paged collection on a non-default port
    headers = sign_request("GET", "http://127.0.0.31:8123/c/x/outbox?page=2", None, KEY_ID, key.private_pem)
    # Then Host keeps the port, no Digest is sent and the query string is covered
    assert headers["Host"] == "127.0.0.31:8123"
    assert "Digest" not in headers
    assert parse(headers).headers == ("(request-target)", "host", "date")
    verify("GET", "/c/x/outbox?page=2", headers, None, key)
    assert "does not verify" in refusal("GET", "/c/x/outbox?page=3", headers, None, key).reason


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_signed_get_without_the_query_in_its_target_verifies_as_a_fetch(key: KeyPair, method: str) -> None:
    # Given a GET signed as NodeBB 4.15 signs it: (request-target) from the path alone
    url = "https://node.example/t/7/context?page=1"
    headers = signed_headers(method, url, None, key, "path_only")
    before = dict(signatures.REQUEST_TARGET_FORMS)
    # When it is verified as a fetch, Then the short form is accepted and counted
    form = signatures.verify_fetch(
        method, "/t/7/context?page=1", headers, parse(headers), load_public_key(key.public_pem)
    )
    assert form == "path_only"
    assert signatures.REQUEST_TARGET_FORMS["path_only"] == before.get("path_only", 0) + 1
    # But the strict verifier still refuses it, and another path does not verify either
    assert "does not verify" in refusal(method, "/t/7/context?page=1", headers, None, key).reason
    with pytest.raises(SignatureError):
        signatures.verify_fetch(
            method, "/t/8/context?page=1", headers, parse(headers), load_public_key(key.public_pem)
        )
    # And a full-form signature is counted as such
    full = signed_headers(method, url, None, key)
    assert (
        signatures.verify_fetch(
            method, "/t/7/context?page=1", full, parse(full), load_public_key(key.public_pem)
        )
        == "with_query"
    )


def test_posts_stay_strict_about_the_query_in_their_target(key: KeyPair) -> None:
    # Given a POST to a URL with a query, signed over the path alone
    body = b'{"type": "Follow"}'
    headers = signed_headers("POST", INBOX + "?x=1", body, key, "path_only")
    # Then neither verifier accepts it
    assert "does not verify" in refusal("POST", "/inbox?x=1", headers, body, key).reason
    with pytest.raises(SignatureError):
        signatures.verify_fetch(
            "POST", "/inbox?x=1", headers, parse(headers), load_public_key(key.public_pem)
        )


def test_key_id_with_percent_signs_is_kept_verbatim(key: KeyPair) -> None:
    key_id = "https://node.example/u/%C3%A9lise#main-key"
    headers = sign_request("GET", INBOX, None, key_id, key.private_pem)
    assert parse(headers).key_id == key_id


def test_delivery_signer_signs_what_sign_request_signs(key: KeyPair) -> None:
    # Given the delivery worker's signer (frame built once) and a POST to a port and a query
    signer = signatures.PostSigner(KEY_ID, signatures.load_private_key(key.private_pem))
    body = b'{"type": "Announce"}'
    host, target = signatures.host_and_target("http://127.0.0.31:8123/inbox?x=1")
    headers = {"Host": host, "Date": signatures.http_date(), "Digest": signatures.digest_header(body)}
    # When it signs
    headers["Signature"] = signer.signature(host, target, headers["Date"], headers["Digest"])
    # Then the header is the one sign_request writes (PKCS#1 v1.5 is deterministic) …
    message = generate_message(list(signatures.POST_HEADERS), headers, host=host, method="POST", path=target)
    expected = signatures.signature_header(
        KEY_ID,
        "rsa-sha256",
        signatures.POST_HEADERS,
        signatures.load_private_key(key.private_pem).sign(message, padding.PKCS1v15(), hashes.SHA256()),
    )
    assert headers["Signature"] == expected
    # … it verifies, and a key id that would break out of its quotes is refused
    verify("POST", target, headers, body, key)
    with pytest.raises(ValueError):
        signatures.PostSigner('k",headers="date', signatures.load_private_key(key.private_pem))


def test_second_implementation_and_hs2019_verify(key: KeyPair) -> None:
    # Given requests signed by the fake fediverse's own signer, as rsa-sha256 and hs2019
    for variant in ("ok", "hs2019"):
        post = signed_headers("POST", INBOX, b"{}", key, variant)
        get = signed_headers("GET", INBOX + "?a=b", None, key, variant)
        # Then both verify (hs2019 is verified as RSA-SHA256)
        verify("POST", "/inbox", post, b"{}", key)
        verify("GET", "/inbox?a=b", get, None, key)


# Known answers: draft-cavage-http-signatures appendix C key and request, with the
# signature httpsig's test-suite records for it (RSA PKCS#1 v1.5 is deterministic).
SPEC_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
oYi+1hqp1fIekaxsyQIDAQAB
-----END PUBLIC KEY-----
"""
SPEC_HEADERS = {
    "Host": "example.com",
    "Date": "Thu, 05 Jan 2014 21:31:40 GMT",
    "Content-Type": "application/json",
    "Digest": "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    "Content-Length": "18",
    "Signature": 'keyId="Test",algorithm="rsa-sha256",'
    'headers="(request-target) host date content-type digest content-length",'
    'signature="Ef7MlxLXoBovhil3AlyjtBwAL9g4TN3tibLj7uuNB3CROat/9KaeQ4hW2NiJ+pZ6HQEOx9vYZAyi+7cmIkmJ'
    'szJCut5kQLAwuX+Ms/mUFvpKlSo9StS2bMXDBNjOh4Auj774GFj4gwjS+3NhFeoqyr/MuN6HsEnkvn6zdgfE2i0="',
}
SPEC_BODY = b'{"hello": "world"}'
SPEC_NOW = datetime(2014, 1, 5, 21, 40, tzinfo=UTC)


def test_reference_request_from_the_specification_verifies() -> None:
    # Given the specification's signed POST, verified at the time it was made
    params = parse(SPEC_HEADERS)
    key = load_public_key(SPEC_PUBLIC_KEY)
    # Then it verifies with its query string …
    verify_request("POST", "/foo?param=value&pet=dog", SPEC_HEADERS, SPEC_BODY, params, key, now=SPEC_NOW)
    # … and not once the query string, the body or a signed header is changed
    for path, headers, body in [
        ("/foo?param=value&pet=cat", SPEC_HEADERS, SPEC_BODY),
        ("/foo?param=value&pet=dog", SPEC_HEADERS, b'{"hello": "moon"}'),
        ("/foo?param=value&pet=dog", {**SPEC_HEADERS, "Content-Length": "19"}, SPEC_BODY),
    ]:
        with pytest.raises(SignatureError):
            verify_request("POST", path, headers, body, params, key, now=SPEC_NOW)
    # … nor a day later (the date is signed, the window is one hour)
    with pytest.raises(SignatureError, match="window"):
        verify_request("POST", "/foo?param=value&pet=dog", SPEC_HEADERS, SPEC_BODY, params, key)


# ---------------------------------------------------------------- refusals (docs/architecture.md §4)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_the_fake_fediverse_rfc9421_signatures_verify(key: KeyPair, method: str) -> None:
    # RFC 9421 (tests/test_signatures_rfc9421.py has its refusals): the fake instances'
    # own signer, written apart from ours, and our verifier agree
    body = b'{"type": "Create"}' if method == "POST" else None
    headers = signed_headers(method, INBOX + "?q=1", body, key, "rfc9421")
    assert parse(headers).scheme == "rfc9421"
    verify(
        method,
        "/inbox?q=1",
        headers,
        body,
        key,
        expected_host="partner.example",
        origin="https://partner.example",
    )
    with pytest.raises(SignatureError):
        verify(method, "/inbox?q=2", headers, body, key, origin="https://partner.example")


@pytest.mark.parametrize(
    ("method", "variant", "reason"),
    [
        ("POST", "unsigned", "missing signature"),
        ("POST", "wrong_key", "does not verify"),
        ("POST", "hmac_public_key", "unsupported signature algorithm 'hmac-sha256'"),
        ("GET", "hmac_public_key", "unsupported signature algorithm 'hmac-sha256'"),
        ("POST", "rsa_sha512", "unsupported signature algorithm 'rsa-sha512'"),
        ("POST", "stale_date", "date outside the accepted window"),
        ("POST", "future_date", "date outside the accepted window"),
        ("POST", "bad_digest", "digest does not match the body"),
        ("POST", "unsigned_digest", "unsigned required headers: digest"),
        ("POST", "no_request_target", "unsigned required headers: (request-target)"),
        ("GET", "no_request_target", "unsigned required headers: (request-target)"),
        ("GET", "no_host", "unsigned required headers: host"),
        ("POST", "no_date", "unsigned required headers: date"),
    ],
)
def test_forged_or_incomplete_signatures_are_refused_with_401(
    key: KeyPair, method: str, variant: str, reason: str
) -> None:
    # Given a request signed (or not) the way an attacker or a sloppy server would
    body = b'{"type": "Create"}' if method == "POST" else None
    headers = signed_headers(method, INBOX + "?q=1", body, key, variant)
    # When we verify it
    error = refusal(method, "/inbox?q=1", headers, body, key)
    # Then it is refused as unauthenticated, for the right reason
    assert error.status == 401
    assert reason in error.reason


def test_hmac_with_the_public_key_would_fool_httpsig_but_not_us(key: KeyPair) -> None:
    # Given the classic forgery: HMAC-SHA256 keyed with the victim's PUBLIC key
    headers = signed_headers("POST", INBOX, b"{}", key, "hmac_public_key")
    # Then httpsig's own verifier, which trusts the claimed algorithm, accepts it …
    httpsig_says = HeaderVerifier(
        headers, key.public_pem.encode(), method="POST", path="/inbox", sign_header="signature"
    ).verify()
    assert httpsig_says is True
    # … and ours refuses it
    assert refusal("POST", "/inbox", headers, b"{}", key).status == 401


def test_body_tampering_after_signing_is_refused(key: KeyPair) -> None:
    headers = signed_headers("POST", INBOX, b'{"a": 1}', key)
    assert "digest does not match" in refusal("POST", "/inbox", headers, b'{"a": 2}', key).reason


def test_post_without_digest_header_but_digest_listed_is_refused(key: KeyPair) -> None:
    headers = signed_headers("POST", INBOX, b"{}", key)
    del headers["Digest"]
    assert "missing digest" in refusal("POST", "/inbox", headers, b"{}", key).reason


def test_digest_must_be_sha256_and_any_sha512_must_match(key: KeyPair) -> None:
    body = b"{}"
    sha512 = "SHA-512=" + base64.b64encode(hashlib.sha512(body).digest()).decode()
    # Given a signed Digest that lists only SHA-512: refused (SHA-256 is required)
    only_512 = signed_headers("POST", INBOX, body, key)
    only_512["Digest"] = sha512
    assert "without SHA-256" in refusal("POST", "/inbox", only_512, body, key).reason
    # Given SHA-256 and a correct SHA-512 (re-signed over that Digest): accepted
    sha256 = signatures.digest_header(body)
    verify("POST", "/inbox", _resign_with_digest(key, body, f"{sha256},{sha512}"), body, key)
    # Given SHA-256 and a wrong SHA-512: refused
    bad = _resign_with_digest(key, body, f"{sha256},SHA-512=AAAA")
    assert "digest does not match" in refusal("POST", "/inbox", bad, body, key).reason


def _resign_with_digest(key: KeyPair, body: bytes, digest: str) -> dict[str, str]:
    headers = signed_headers("POST", INBOX, body, key)
    headers["Digest"] = digest
    signed = ["(request-target)", "host", "date", "digest"]
    message = generate_message(signed, headers, method="POST", path="/inbox")
    private = signatures.load_private_key(key.private_pem)
    signature = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
    headers["Signature"] = signatures.signature_header(key.key_id, "rsa-sha256", signed, signature)
    return headers


def test_date_changed_after_signing_is_refused(key: KeyPair) -> None:
    headers = signed_headers("GET", INBOX, None, key)
    headers["Date"] = signatures.http_date(datetime.now(UTC) - timedelta(minutes=1))
    assert "does not verify" in refusal("GET", "/inbox", headers, None, key).reason


def test_request_replayed_to_another_host_is_refused(key: KeyPair) -> None:
    # Given a GET signed for partner.example, replayed to us with its Host header intact
    headers = signed_headers("GET", INBOX, None, key)
    params = parse(headers)
    public = load_public_key(key.public_pem)
    # Then naming our host as the expected one refuses it
    with pytest.raises(SignatureError, match="not addressed to this host"):
        verify_request("GET", "/inbox", headers, None, params, public, expected_host="node.example")
    verify_request("GET", "/inbox", headers, None, params, public, expected_host="Partner.Example")


@pytest.mark.parametrize(
    "value",
    [
        'keyId="x",algorithm="rsa-sha256",headers="date"',  # no signature
        'algorithm="rsa-sha256",signature="AAAA"',  # no keyId
        'keyId="x",signature="not base64!!"',
        "garbage",
        'keyId="x",signature="' + "A" * 9000 + '"',
    ],
)
def test_malformed_signature_headers_are_401_not_500(value: str) -> None:
    with pytest.raises(SignatureError) as caught:
        parse({"Signature": value})
    assert caught.value.status == 401


def test_signature_without_algorithm_is_treated_as_hs2019(key: KeyPair) -> None:
    headers = signed_headers("GET", INBOX, None, key)
    headers["Signature"] = headers["Signature"].replace('algorithm="rsa-sha256",', "")
    assert parse(headers).algorithm == "hs2019"
    verify("GET", "/inbox", headers, None, key)


def test_blocked_domain_error_is_403() -> None:
    error = SignatureError.blocked("bad.example")
    assert error.status == 403 and "bad.example" in error.reason


# ---------------------------------------------------------------- keys


def test_keys_are_rsa_2048_and_parsed_once(key: KeyPair) -> None:
    public = load_public_key(key.public_pem)
    assert public.key_size == 2048
    assert load_public_key(key.public_pem) is public
    assert signatures.load_private_key(key.private_pem) is signatures.load_private_key(
        key.private_pem.encode()
    )


def test_unusable_public_keys_are_signature_errors() -> None:
    ed_pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for pem in (ed_pem.decode(), "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----", "é"):
        with pytest.raises(SignatureError):
            load_public_key(pem)


def test_path_with_query_uses_the_raw_path() -> None:
    assert signatures.path_with_query(b"/u/%C3%A9/inbox", b"a=1") == "/u/%C3%A9/inbox?a=1"
    assert signatures.path_with_query(b"/inbox", b"") == "/inbox"


# ---------------------------------------------------------------- the fake fediverse agrees


async def test_fake_instances_accept_only_well_signed_deliveries() -> None:
    # Given two fake instances that do not know each other's keys yet
    async with FakeInstance("127.0.0.41") as sender, FakeInstance("127.0.0.42", software="lemmy") as receiver:
        alice = sender.add_actor("alice")
        group = receiver.add_actor("lobby", type="Group")
        follow = {"id": sender.new_id("activities"), "type": "Follow", "actor": alice.id, "object": group.id}
        # When alice delivers a Follow signed correctly and in every broken way
        statuses = {v: (await sender.send(group.inbox, follow, variant=v)).status for v in VARIANTS}
        # Then the receiver fetched her key by its id, took the good ones (Host need not be
        # signed on POST; an inbox URL has no query to leave out), refused the rest
        accepted = {v for v, status in statuses.items() if status == 202}
        assert accepted == {"ok", "hs2019", "no_host", "path_only", "all_headers"}
        assert {statuses[v] for v in VARIANTS if v not in accepted} == {401}
        assert receiver.inbox_activities() == [follow] * 5
        assert group.inbox_path == "/c/lobby/inbox"
        key_fetch = next(r for r in sender.received if r.path == "/users/alice")
        assert key_fetch.signature_ok and key_fetch.key_id == receiver.instance_actor.key_id


@pytest.mark.parametrize(
    "value",
    [
        'keyId="https://a.example/u/x#main-key",algorithm="rsa-sha256",headers="(request-target) host date",signature="YQ=="',
        ' keyId="a" , signature="YQ==" ',
        'keyId="a,b",signature="YQ=="',
        'keyId=a,signature="YQ=="',
        'keyId="a\\"b",signature="YQ=="',
        'keyId="a";signature="YQ=="',
    ],
)
def test_signature_parameters_read_as_httpsig_reads_them(value: str) -> None:
    # The fast path for ordinary headers and httpsig's parser must never disagree
    theirs = {k.lower(): v for k, v in parse_signature_header(value).items()}
    assert dict(signatures._parse_params(value)) == theirs


@pytest.mark.parametrize(
    "signed",
    [
        ("(request-target)", "host", "date", "digest"),
        ("date",),
        ("host", "(request-target)", "content-type", "(created)", "(expires)", "date"),
    ],
)
def test_the_signed_string_is_the_one_httpsig_builds(signed: tuple[str, ...]) -> None:
    # The verifier writes the signed string itself (the inbox's hot path): it must be
    # httpsig's, line for line, whatever the signed headers and their order
    headers = {"host": "node.example", "date": "Thu, 05 Jan 2014 21:31:40 GMT", "digest": "SHA-256=x",
               "content-type": "application/activity+json"}  # fmt: skip
    params = signatures.SignatureParams("k", "hs2019", signed, b"s", created=1402170695, expires=1402170699)
    values = {**headers, "(created)": "1402170695", "(expires)": "1402170699"}
    theirs = generate_message(list(signed), values, method="POST", path="/inbox?a=b")
    assert signatures._signing_string("POST", "/inbox?a=b", headers, params) == theirs


@pytest.mark.parametrize(
    "value",
    ['keyId="a",signature="YQ==",keyId="b"', 'keyId="a", signature="YQ==", KEYID=a'],
)
def test_a_repeated_signature_parameter_is_ambiguous_and_refused(value: str) -> None:
    # (httpsig keeps the last one; another parser may keep the first: issue 8)
    with pytest.raises(SignatureError, match="repeats"):
        signatures._parse_params(value)


def test_httpsig_string_helpers_load_without_pkg_resources() -> None:
    import subprocess
    import sys

    code = (
        "import federation.signatures as s, httpsig.utils as u;"
        "print(s.generate_message(['date'], {'date': 'x'}) == u.generate_message(['date'], {'date': 'x'}))"
    )
    before = (
        "import sys, federation.signatures; print('pkg_resources' in sys.modules, 'httpsig' in sys.modules)"
    )
    run = [sys.executable, "-c"]
    assert subprocess.run([*run, before], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]
    # the same functions as the package's own module
    assert subprocess.run([*run, code], capture_output=True, text=True, check=True).stdout.strip() == "True"
