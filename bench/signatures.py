"""Signature benchmark: RSA-2048 signs and verifies per CPU-second on this machine.

Measured in the same run so ratios survive a noisy machine (docs/architecture.md §4's library split):

- ``cryptography`` alone: PKCS#1 v1.5 SHA-256 sign and verify of a signing string;
- httpsig's own path (pycryptodome): a ``HeaderSigner`` reused, and one built per
  request (key import each time); its ``HeaderVerifier`` (built per request, as it must be);
- ours, end to end: ``sign_request`` (Date, Digest, signing string, Signature header)
  and ``parse`` + ``verify_request`` (every docs/architecture.md §4 check, cached key).

Prints figures; asserts nothing. One core, single thread; CPU time, not wall time.

    .venv/bin/python bench/signatures.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from httpsig.sign import HeaderSigner  # noqa: E402
from httpsig.utils import generate_message  # noqa: E402
from httpsig.verify import HeaderVerifier  # noqa: E402

from federation import signatures  # noqa: E402

INBOX = "https://partner.example/inbox"
KEY_ID = "https://node.example/actor#main-key"
BODY = (
    b'{"@context": "https://www.w3.org/ns/activitystreams", "type": "Create", "object": {"type": "Note"}}' * 8
)
SIGNED = ["(request-target)", "host", "date", "digest"]


def per_cpu_second(fn: Callable[[], object], seconds: float) -> float:
    """Calls of ``fn`` per CPU-second, over at least ``seconds`` of CPU time."""
    fn()  # warm caches (key parsing) the way a running node has them warm
    calls, started = 0, time.process_time()
    while True:
        fn()
        calls += 1
        spent = time.process_time() - started
        if spent >= seconds:
            return calls / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per measurement")
    seconds = 0.1 if figures.smoke() else parser.parse_args().seconds

    private_pem, public_pem = signatures.generate_key_pair()
    private = signatures.load_private_key(private_pem)
    public = signatures.load_public_key(public_pem)
    headers = signatures.sign_request("POST", INBOX, BODY, KEY_ID, private)
    message = generate_message(SIGNED, headers, method="POST", path="/inbox")
    raw_signature = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
    unsigned = {k: headers[k] for k in ("Host", "Date", "Digest")}

    def crypto_sign() -> bytes:
        return private.sign(message, padding.PKCS1v15(), hashes.SHA256())

    def crypto_verify() -> None:
        public.verify(raw_signature, message, padding.PKCS1v15(), hashes.SHA256())

    reused = HeaderSigner(
        KEY_ID, private_pem, algorithm="rsa-sha256", headers=SIGNED, sign_header="signature"
    )

    def httpsig_reused() -> object:
        return reused.sign(dict(unsigned), method="POST", path="/inbox")

    def httpsig_per_request() -> object:
        signer = HeaderSigner(
            KEY_ID, private_pem, algorithm="rsa-sha256", headers=SIGNED, sign_header="signature"
        )
        return signer.sign(dict(unsigned), method="POST", path="/inbox")

    httpsig_headers = httpsig_reused()

    def httpsig_verify() -> object:
        verifier = HeaderVerifier(
            httpsig_headers, public_pem.encode(), method="POST", path="/inbox", sign_header="signature"
        )
        return verifier.verify()

    def ours_sign() -> object:
        return signatures.sign_request("POST", INBOX, BODY, KEY_ID, private)

    def ours_verify() -> None:
        params = signatures.parse(headers)
        signatures.verify_request("POST", "/inbox", headers, BODY, params, public)

    rows = [
        ("cryptography sign (RSA-2048, PKCS#1 v1.5, SHA-256)", crypto_sign),
        ("cryptography verify", crypto_verify),
        ("httpsig HeaderSigner reused (pycryptodome)", httpsig_reused),
        ("httpsig HeaderSigner built per request", httpsig_per_request),
        ("httpsig HeaderVerifier per request", httpsig_verify),
        ("ours: sign_request (POST, Digest, Signature)", ours_sign),
        ("ours: parse + verify_request (all checks)", ours_verify),
    ]
    results = {}
    print(f"signatures per CPU-second, one core ({seconds:.1f} CPU-s each)")
    for label, fn in rows:
        results[label] = per_cpu_second(fn, seconds)
        print(f"  {label:<52} {results[label]:>10,.0f} /s")
    sign, verify = results[rows[0][0]], results[rows[1][0]]
    figures.record("raw RSA-2048 sign rate, one core", sign, "/s", group="machine")
    figures.record("raw RSA-2048 verify rate, one core", verify, "/s", group="machine")
    print("ratios (same run)")
    print(f"  sign_request / cryptography sign        {results[rows[5][0]] / sign:6.2f}")
    print(f"  verify_request / cryptography verify    {results[rows[6][0]] / verify:6.2f}")
    print(f"  cryptography sign / httpsig reused      {sign / results[rows[2][0]]:6.1f}x")
    print(f"  cryptography sign / httpsig per request {sign / results[rows[3][0]]:6.1f}x")


if __name__ == "__main__":
    main()
