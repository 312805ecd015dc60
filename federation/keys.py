"""RSA key pairs of our actors, encrypted at rest with the node secret.

A private key never sits in the database in clear: ``actors.private_key_enc`` holds
``nonce (12 bytes) || AES-256-GCM(PKCS#8 PEM)``, the AES key derived from
``VBG_SECRET_KEY`` with HKDF-SHA256 and a fixed label, the actor's URI as
associated data (a ciphertext copied onto another actor's row does not decrypt).

Parsing a PEM costs milliseconds; signing costs a fraction of one. Decrypted and
parsed key objects are therefore cached in-process, keyed by the actor URI *and*
a digest of the ciphertext, so a rotated key (or another database behind the
same URL, as in tests) is never served from a stale entry.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.settings import Settings

KEY_SIZE = 2048
NONCE_SIZE = 12
HKDF_INFO = b"vbg-node/actor-private-keys/v1"
_MAX_CACHED = 4096


class KeyDecryptError(Exception):
    """A stored private key does not decrypt (wrong node secret or tampered row)."""


@dataclass(frozen=True)
class KeyPair:
    public_pem: str
    private_key_enc: bytes


def _aes_key(settings: Settings) -> bytes:
    return _derive(settings.secret_key.reveal())


@lru_cache(maxsize=8)
def _derive(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO)
    return hkdf.derive(secret.encode("utf-8"))


def public_pem(private_key: rsa.RSAPrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def encrypt_private_key(settings: Settings, actor_uri: str, private_key: rsa.RSAPrivateKey) -> bytes:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(_aes_key(settings)).encrypt(nonce, pem, actor_uri.encode("utf-8"))


def generate(settings: Settings, actor_uri: str) -> KeyPair:
    """A fresh RSA-2048 pair: the public PEM and the encrypted private key."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    return KeyPair(public_pem(private_key), encrypt_private_key(settings, actor_uri, private_key))


_private_cache: dict[tuple[str, bytes], rsa.RSAPrivateKey] = {}


def decrypt_private_key(settings: Settings, actor_uri: str, private_key_enc: bytes) -> rsa.RSAPrivateKey:
    """The actor's private key object (cached per actor and ciphertext)."""
    cache_key = (actor_uri, hashlib.sha256(private_key_enc).digest())
    cached = _private_cache.get(cache_key)
    if cached is not None:
        return cached
    nonce, ciphertext = private_key_enc[:NONCE_SIZE], private_key_enc[NONCE_SIZE:]
    try:
        pem = AESGCM(_aes_key(settings)).decrypt(nonce, ciphertext, actor_uri.encode("utf-8"))
    except InvalidTag as exc:
        raise KeyDecryptError(f"private key of {actor_uri} does not decrypt with this node secret") from exc
    # A key generate() made and sealed (AES-GCM authenticates it): its RSA
    # consistency checks cost ~36 ms per key, in a delivery worker's first fan-out.
    key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyDecryptError(f"private key of {actor_uri} is not RSA")
    if len(_private_cache) >= _MAX_CACHED:
        _private_cache.clear()
    _private_cache[cache_key] = key
    return key


@lru_cache(maxsize=_MAX_CACHED)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """Parse a public key PEM once (cached by its text). Raises ``ValueError`` if not RSA."""
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key
